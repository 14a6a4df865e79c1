"""Is a difference between two runs more than the draw of test users? A paired bootstrap over users.

Both runs rank the same users' test targets; resampling users with replacement (the same users for both runs)
gives the spread of the relative change in NDCG@k that another draw of users of the same kind would show. It
says nothing of the spread between training seeds, which the seed tables measure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import Split, leave_one_out, load_dataset
from .evaluate import ndcg_gains, rank_targets
from .io import load_run_model
from .recall import recall_ranks
from .report import load_block, load_run, split_block
from .stages import k10_recall
from .train import TrainConfig


def resampled_means(values: Sequence[np.ndarray], n_boot: int, seed: int = 0, chunk: int = 100) -> np.ndarray:
    """(n_boot, len(values)): the mean of each (U,) array of the same users over one resample of the users (with
    replacement), the same resample for every array, resample by resample."""
    n, rng, out = len(values[0]), np.random.default_rng(seed), []
    for s in range(0, n_boot, chunk):  # (chunk, U) indices at a time: 2000 x 22k at once would be 360 MB
        idx = rng.integers(0, n, size=(min(chunk, n_boot - s), n))
        out.append(np.stack([v[idx].mean(1) for v in values], 1))
    return np.concatenate(out)


def paired_bootstrap(base_ranks: np.ndarray, ranks: np.ndarray, k: int = 10, n_boot: int = 2000, seed: int = 0,
                     target: float = 0.03, chunk: int = 100) -> dict:
    """Relative change of mean NDCG@k from `base_ranks` to `ranks` ((U,) 0-based ranks of the same users, inf: a
    miss), with its bootstrap 95% interval and the share of resamples at or below 0 and at or above `target`."""
    a, b = ndcg_gains(base_ranks, k), ndcg_gains(ranks, k)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired ranks of the same users, not shapes {a.shape} and {b.shape}")
    if not a.sum() > 0:
        raise ValueError(f"the baseline hits no target within {k}: no relative change")
    m = resampled_means([a, b], n_boot, seed, chunk)
    r = m[:, 1] / np.maximum(m[:, 0], 1e-12) - 1.0
    lo, hi = np.percentile(r, [2.5, 97.5])
    return {"k": k, "users": len(a), "base": float(a.mean()), "run_ndcg": float(b.mean()),
            "rel": float(b.mean() / a.mean() - 1.0), "ci95": [float(lo), float(hi)], "n_boot": n_boot,
            "p_le_0": float(np.mean(r <= 0)), "target": target, "p_ge_target": float(np.mean(r >= target))}


def run_ranks(run_dir: str | Path, block: str, split: Split) -> np.ndarray:
    """(U,) test ranks of a finished run folder's final weights (best.safetensors): one-stage for `test`, the
    two-stage list at K = 10 with the run's split and append option for `test_two_stage`. NOTE: checked against
    the run's metrics.json, so that the figures are those of the weights the table reports."""
    run_dir = Path(run_dir)
    _, _, m = load_block(f"{run_dir}:{block}", block)
    cfg = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    model = load_run_model(run_dir)
    if block == "test":
        ranks = rank_targets(model, split.test_hist, split.test_target, split.users, cfg.eval_batch)
    elif block == "test_two_stage":
        (n, mm), append = k10_recall(cfg)
        ranks = recall_ranks(model, split.test_hist, split.test_target, split.users, n, mm, append=append,
                             batch_size=cfg.eval_batch)
    else:
        raise ValueError(f"{run_dir}: the bootstrap reads test or test_two_stage, not {block!r}")
    got, want = float(ndcg_gains(ranks, 10).mean()), m[block]["NDCG@10"]
    if abs(got - want) > 1e-6:
        raise ValueError(f"{run_dir}: its weights give {block} NDCG@10 {got:.6f}, its metrics.json {want:.6f}")
    return ranks


def significance_table(runs: Sequence[str], baseline: str, baseline_block: str = "test", block: str = "test",
                       n_boot: int = 2000, seed: int = 0, target: float = 0.03) -> tuple[str, list[dict]]:
    """One row a run (FOLDER[:BLOCK], default `block`): its NDCG@10 change against `baseline` with the paired
    bootstrap's 95% interval over test users. The folders need their weights (best.safetensors), not only
    metrics.json, and one data set."""
    data = {load_run(split_block(r, block)[0]).get("data") for r in [*runs, baseline]}
    if len(data) != 1:
        raise ValueError(f"the bootstrap pairs users of one data set, not {sorted(map(str, data))}")
    split = leave_one_out(load_dataset(data.pop()))
    base = run_ranks(baseline, baseline_block, split)
    rows = []
    for spec in runs:
        d, blk = split_block(spec, block)
        rows.append({"run": d, "block": blk, **paired_bootstrap(base, run_ranks(d, blk, split), 10, n_boot, seed,
                                                                  target)})
    t = f"{100 * target:g}%"
    lines = [f"| run | block | NDCG@10 | change | 95% interval (users) | P(change <= 0) | P(change >= +{t}) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["ci95"]
        lines.append(f"| {Path(r['run']).name} | {r['block']} | {r['run_ndcg']:.5f} | {100 * r['rel']:+.2f}% | "
                     f"{100 * lo:+.2f}% .. {100 * hi:+.2f}% | {r['p_le_0']:.3f} | {r['p_ge_target']:.3f} |")
    lines.append(f"\nbase: {Path(baseline).name}, block {baseline_block!r}, NDCG@10 {rows[0]['base']:.5f}; "
                 f"{n_boot} paired resamples of the {rows[0]['users']} test users (seed {seed})")
    return "\n".join(lines) + "\n", rows
