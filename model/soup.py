"""Greedy weight soup of one training stage's best epochs (Wortsman et al. 2022, "Model soups").

During a stage, the weights of its `n` best epochs by validation are kept on disk beside the run
(STAGE.epochE.safetensors, the score in their metadata, so --resume keeps them). At the end of the stage,
the best epoch is the soup's first ingredient; each next-best epoch joins it when the average of the
weights so far and its own scores at least as well on validation as the soup without it. The stage's
result is the soup, chosen on validation only: never worse there than the best single epoch.

NOTE: why: prompt-tuning's validation curve is flat within +-0.0005 NDCG@10 for 10 epochs, so picking one
epoch on it is noisy; on Beauty the test NDCG@10 of the best single epoch moved by 0.0015 between runs
that differ only in dropout masks (docs/results/history.md, session 6). Averaging epochs of one
fine-tuning trajectory is what model soups and SWA do against that noise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from .checkpoint import load_weights, save_checkpoint

K = TypeVar("K", bound=Hashable)  # names an ingredient of a soup: an epoch, a run


def _epoch_files(out: Path, stage: str) -> dict[int, Path]:
    pat = re.compile(rf"{re.escape(stage)}\.epoch(\d+)\.safetensors$")
    return {int(m.group(1)): p for p in out.glob(f"{stage}.epoch*.safetensors") if (m := pat.match(p.name))}


def kept_epochs(out: Path, stage: str) -> dict[int, float]:
    """{epoch: validation score} of the epochs kept for the soup so far."""
    from safetensors import safe_open

    kept = {}
    for epoch, path in _epoch_files(out, stage).items():
        with safe_open(str(path), "pt") as f:
            kept[epoch] = float(json.loads(f.metadata()["meta"])["select"])
    return kept


def keep_epoch(out: Path, stage: str, model: torch.nn.Module, epoch: int, score: float, n: int) -> None:
    """Keep this epoch's weights when they are among the stage's `n` best so far; drop the one it displaces."""
    if n <= 1:
        return
    kept = kept_epochs(out, stage)
    kept = {e: s for e, s in kept.items() if e < epoch}  # NOTE: a --resume rewinds: later files are stale
    for e in set(_epoch_files(out, stage)) - set(kept):
        _epoch_files(out, stage)[e].unlink()
    if len(kept) >= n and score <= min(kept.values()):
        return
    save_checkpoint(out / f"{stage}.epoch{epoch}.safetensors", model, meta={"epoch": epoch, "select": score})
    kept[epoch] = score
    while len(kept) > n:
        worst = min(kept, key=lambda e: (kept[e], -e))
        _epoch_files(out, stage)[worst].unlink()
        del kept[worst]


def greedy_soup(out: Path, stage: str, model: torch.nn.Module, validate: Callable[[], float]) -> dict:
    """Replace the model's weights by the greedy soup of the kept epochs; returns what was tried and chosen.

    The kept files are removed afterwards."""
    kept = kept_epochs(out, stage)
    files = _epoch_files(out, stage)
    order = sorted(kept, key=lambda e: (-kept[e], e))  # best first; ties: the earlier epoch
    if len(order) < 2:
        for p in files.values():
            p.unlink()
        return {}

    def score(_members: list[int], state: dict[str, torch.Tensor]) -> float:
        model.load_state_dict(state)
        return validate()

    chosen, state, tried = greedy_mean(order, lambda e: load_weights(files[e]), score)
    model.load_state_dict(state)
    for p in files.values():
        p.unlink()
    return {"epochs": chosen, "valid_select": tried[chosen[-1]], "best_single": tried[order[0]],
            "tried": {str(e): s for e, s in tried.items()}}


def greedy_mean(order: Sequence[K], load: Callable[[K], dict[str, torch.Tensor]],
                score: Callable[[list[K], dict[str, torch.Tensor]], float]
                ) -> tuple[list[K], dict[str, torch.Tensor], dict[K, float]]:
    """The greedy soup of ingredients given best first: the first is the soup's start, and each next one joins
    when the mean of the weights with it scores at least as well as the mean without it.

    `load(key)` gives an ingredient's weights (one at a time: the soup is a float64 running total) and
    `score(members, state)` the score of `state`, the mean of the members' weights. Returns the members, their
    mean, and each ingredient's score when it was tried (the first's: alone); the last member's is the soup's."""
    first = load(order[0])
    dtypes = {k: v.dtype for k, v in first.items()}

    def mean(total: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        return {k: (v / n).to(dtypes[k]) if v.is_floating_point() else v for k, v in total.items()}

    total = {k: v.double() if v.is_floating_point() else v for k, v in first.items()}
    chosen = [order[0]]
    tried = {order[0]: score(chosen, first)}
    for key in order[1:]:
        w = load(key)
        cand = {k: t + w[k].double() if t.is_floating_point() else t for k, t in total.items()}
        tried[key] = score([*chosen, key], mean(cand, len(chosen) + 1))
        if tried[key] >= tried[chosen[-1]]:  # the soup's score is its last member's
            chosen, total = [*chosen, key], cand
    return chosen, mean(total, len(chosen)), tried


def mix_with_start(start: Path, model: torch.nn.Module, validate: Callable[[], float], alphas: Sequence[float]
                   ) -> dict:
    """Mix a fine-tuning stage's result with the weights it started from, (1 - a) * start + a * result, with
    `a` chosen on validation among `alphas` and 1 (no mix), so the mix is never worse there than the result.

    WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"): the line between a pre-trained
    model and its fine-tuned copy often holds points better than either end. The model must hold the stage's
    result (its soup or best epoch) when called; it holds the chosen mix after."""
    result = {k: v.detach().clone() for k, v in model.state_dict().items()}
    begin = load_weights(start)
    tries = sorted({1.0, *(float(x) for x in alphas)}, reverse=True)  # ties: the larger a (nearer the result)
    if not all(0.0 <= a <= 1.0 for a in tries):
        raise ValueError(f"mix_start weights must lie in [0, 1], not {list(alphas)}")
    scores: dict[float, float] = {}
    for a in tries:
        model.load_state_dict(interpolate(begin, result, a))
        scores[a] = validate()
    chosen = max(scores, key=lambda a: (scores[a], a))
    model.load_state_dict(interpolate(begin, result, chosen))
    return {"alpha": chosen, "valid_select": scores[chosen], "unmixed": scores[1.0],
            "tried": {str(a): s for a, s in scores.items()}}


def interpolate(begin: dict[str, torch.Tensor], end: dict[str, torch.Tensor], a: float) -> dict[str, torch.Tensor]:
    """(1 - a) * begin + a * end for float weights (computed in float64); other tensors from `end`."""
    if a == 1.0:
        return end
    return {k: ((1 - a) * begin[k].double() + a * v.double()).to(v.dtype) if v.is_floating_point() else v
            for k, v in end.items()}


def mean_state(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of float weights (computed in float64); other tensors from the first state."""
    first = states[0]
    return {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in first.items()}
