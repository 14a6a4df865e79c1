"""Full-ranking evaluation: every item is a candidate, the user's history (and padding) is masked.

Two entry points give the same numbers: `ranks_from_scores` for a score matrix (one-stage models)
and `ranks_from_lists` for ordered recall lists (the two-stage recall). Ranks are 0-based; a miss
(target not reachable or not in the list) is `inf`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

KS: tuple[int, ...] = (5, 10, 20, 50)


def ndcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """(U,) each user's NDCG@k: 1 / log2(rank + 2) for a 0-based rank below k, else 0 (one target per user)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    gains = np.zeros_like(ranks)
    hit = ranks < k
    gains[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return gains


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """HR@K, NDCG@K for each K and MRR, averaged over users (one target per user)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = float(np.mean(ranks < k))
    for k in ks:
        out[f"NDCG@{k}"] = float(ndcg_gains(ranks, k).mean())
    out["MRR"] = float(np.mean(np.where(np.isfinite(ranks), 1.0 / (ranks + 1.0), 0.0)))
    return out


def ranks_from_lists(lists: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """lists: (U, K) recalled item ids in order; targets: (U,). Rank = position in the list, else inf."""
    lists = np.asarray(lists)
    hit = lists == np.asarray(targets)[:, None]  # (U, K)
    return np.where(hit.any(1), hit.argmax(1), np.inf).astype(np.float64)


def history_mask(histories: Sequence[np.ndarray], n_cols: int) -> Tensor:
    """(B, n_cols) bool: True where the item is in the user's history, and for padding column 0."""
    rows = np.concatenate([np.full(len(h), r) for r, h in enumerate(histories)]) if histories else []
    cols = np.concatenate(list(histories)) if histories else []
    mask = torch.zeros(len(histories), n_cols, dtype=torch.bool)
    mask[torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)] = True
    mask[:, 0] = True
    return mask


def ranks_from_scores(scores: Tensor, targets: Tensor, excluded: Tensor) -> Tensor:
    """scores: (B, n_items + 1); targets: (B,); excluded: (B, n_items + 1) bool.

    Rank = number of candidate items scoring strictly higher than the target. A target that is
    itself excluded (Yelp repeats an item of the history) cannot be recalled: inf."""
    target_score = scores.gather(1, targets[:, None])  # (B, 1)
    scores = scores.masked_fill(excluded, -torch.inf)
    rank = (scores > target_score).sum(1).double()
    return torch.where(excluded.gather(1, targets[:, None]).squeeze(1), torch.inf, rank)


def model_device(model) -> torch.device:
    """Where a model's weights live (Pop, which has none, scores on the CPU)."""
    table = model.item_embeddings() if hasattr(model, "item_embeddings") else None
    return table.device if isinstance(table, Tensor) else torch.device("cpu")


def pad_left(seqs: Sequence[np.ndarray], max_len: int, width: int | None = None) -> Tensor:
    """The last max_len items of each sequence, left-padded with 0 to a common width (B, T)."""
    width = width or max(1, min(max_len, max((len(s) for s in seqs), default=1)))
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        s = s[-min(max_len, width):]
        if len(s):
            out[r, width - len(s):] = s
    return torch.from_numpy(out)


@torch.no_grad()
def score_histories(model, histories: Sequence[np.ndarray], users: np.ndarray) -> Tensor:
    """(B, n_items + 1) scores of every item for each history, through the model's own `score` if any."""
    if hasattr(model, "score"):
        return model.score(histories, users)
    dev = model_device(model)
    items = pad_left(histories, model.cfg.max_len).to(dev)
    return model.encode(items, torch.as_tensor(users, device=dev)) @ model.item_embeddings().T


@torch.no_grad()
def rank_targets(
    model, histories: Sequence[np.ndarray], targets: np.ndarray, users: np.ndarray, batch_size: int = 1024
) -> np.ndarray:
    """(U,) 0-based full-ranking rank of each target among all items, the history masked (inf: unreachable)."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    # NOTE: batches of similar length: a batch is as wide as its longest history, and most are short
    order = np.argsort([len(h) for h in histories], kind="stable")
    ranks = torch.empty(len(histories), dtype=torch.float64)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        h = [histories[i] for i in idx]
        sc = score_histories(model, h, users[idx])
        excluded = history_mask(h, sc.shape[1]).to(sc.device)
        tg = torch.as_tensor(targets[idx], device=sc.device)
        ranks[torch.from_numpy(idx)] = ranks_from_scores(sc, tg, excluded).cpu()
    if was_training:
        model.train()
    return ranks.numpy()


def evaluate(
    model,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    users: np.ndarray,
    batch_size: int = 1024,
    ks: Sequence[int] = KS,
) -> dict[str, float]:
    """Full-ranking metrics of `model` for (history -> target) pairs, the history masked."""
    return metrics_from_ranks(rank_targets(model, histories, targets, users, batch_size), ks)
