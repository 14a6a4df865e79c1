"""Two-stage recall: the one implementation that offline evaluation and the service share.

Stage 1 encodes the history and retrieves N items (history excluded). Stage 2 appends (some of)
those items with segment 1, extends the encoding through the key/value cache, and retrieves M more
(history and stage-1 items excluded). M = 0 is one-stage recall.

The search is a parameter: `torch_search` (exact top-k, offline) or a FAISS index (online, see
index/). `model/` never imports `index/` or `service/`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .evaluate import KS, metrics_from_ranks, model_device, pad_left, ranks_from_lists

# queries (B, d) float32, k, excluded internal ids per row -> ids (B, k) int64 (-1 = none), scores (B, k)
SearchFn = Callable[[np.ndarray, int, Sequence[np.ndarray]], tuple[np.ndarray, np.ndarray]]

STAGE_1, STAGE_2 = 1, 2


@dataclass
class RecallResult:
    items: np.ndarray  # (B, n + m) internal ids in order; -1 where the catalog ran out
    scores: np.ndarray  # (B, n + m)
    stages: np.ndarray  # (B, n + m) 1 or 2


def torch_search(item_table: Tensor) -> SearchFn:
    """Exact inner-product top-k over the item table (row 0 = padding, never returned)."""
    table = item_table.detach()

    def search(queries: np.ndarray, k: int, exclude: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(table.device)
        s = q @ table.T  # (B, n_items + 1)
        s[:, 0] = -torch.inf
        lens = [len(ex) for ex in exclude]
        if sum(lens):  # every row's exclusions in one scatter (one kernel on a GPU, not one a row)
            rows = np.repeat(np.arange(len(lens)), lens)
            cols = np.concatenate([np.asarray(ex, dtype=np.int64) for ex in exclude])
            s[torch.from_numpy(rows).to(s.device), torch.from_numpy(cols).to(s.device)] = -torch.inf
        k_eff = min(k, s.shape[1])
        val, idx = s.topk(k_eff, dim=1)  # ties: torch's order; FAISS parity is tested on tie-free scores
        ids = torch.where(torch.isinf(val), torch.full_like(idx, -1), idx).cpu()
        val = val.cpu()
        if k_eff < k:
            ids = torch.cat([ids, torch.full((len(ids), k - k_eff), -1)], 1)
            val = torch.cat([val, torch.full((len(val), k - k_eff), -torch.inf)], 1)
        return ids.numpy().astype(np.int64), val.numpy()

    return search


def multi_interest_search(search: SearchFn, interests: np.ndarray, k: int, exclude: Sequence[np.ndarray]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Each of a user's K interest vectors (B, K, d) retrieves k items; the lists merge by best score."""
    B, K, d = interests.shape
    ids, sc = search(interests.reshape(B * K, d), k, [e for e in exclude for _ in range(K)])
    ids, sc = ids.reshape(B, K * k), sc.reshape(B, K * k)
    out_ids, out_sc = np.full((B, k), -1, np.int64), np.full((B, k), -np.inf, np.float32)
    for r in range(B):
        best: dict[int, float] = {}
        for i, s in zip(ids[r], sc[r], strict=True):
            if i > 0 and s > best.get(int(i), -np.inf):
                best[int(i)] = float(s)
        top = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        out_ids[r, :len(top)] = [i for i, _ in top]
        out_sc[r, :len(top)] = [s for _, s in top]
    return out_ids, out_sc


def parse_append(append: str | int, name: str = "append") -> str | int:
    """What stage 2 appends, checked: 'all', 'reversed', or a count j >= 1 (returned as an int)."""
    if append in ("all", "reversed"):
        return append
    if str(append).isdigit() and int(append) >= 1:
        return int(append)
    raise ValueError(f"{name} must be 'all', 'reversed' or a count >= 1, not {append!r}")


def _appended(ids1: np.ndarray, append: str | int) -> np.ndarray:
    """Which stage-1 items go into the sequence: 'all' (in rank order), 'reversed' (best last), or the top j."""
    append = parse_append(append)
    if append == "all":
        return ids1
    if append == "reversed":
        return ids1[:, ::-1]
    return ids1[:, :append]


@torch.no_grad()
def two_stage_recall(
    model,
    histories: Sequence[np.ndarray],
    users: np.ndarray,
    n: int,
    m: int,
    search: SearchFn,
    exclude: Sequence[np.ndarray] | None = None,
    append: str | int = "all",
) -> RecallResult:
    """K = n + m items per history. `exclude` adds ids (beyond the history) that must not be returned."""
    B = len(histories)
    extra = exclude if exclude is not None else [np.empty(0, np.int64)] * B
    dev = model_device(model)
    items = pad_left(histories, model.cfg.max_len).to(dev)
    u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=dev)
    banned = [np.concatenate([np.asarray(h, np.int64), np.asarray(e, np.int64)])
              for h, e in zip(histories, extra, strict=True)]
    if hasattr(model, "encode_interests"):  # ComiRec: several queries a user; appended items re-encode
        def q_search(it: Tensor, k: int, ban: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            return multi_interest_search(search, model.encode_interests(it).cpu().numpy(), k, ban)

        ids1, sc1 = q_search(items, n, banned)
        if m <= 0:
            return RecallResult(ids1, sc1, np.full(ids1.shape, STAGE_1))
        app = torch.from_numpy(np.ascontiguousarray(_appended(ids1, append)).clip(min=0)).to(dev)
        banned2 = [np.concatenate([b, r[r > 0]]) for b, r in zip(banned, ids1, strict=True)]
        ids2, sc2 = q_search(torch.cat([items, app], 1), m, banned2)
        return RecallResult(np.concatenate([ids1, ids2], 1), np.concatenate([sc1, sc2], 1),
                            np.concatenate([np.full(ids1.shape, STAGE_1), np.full(ids2.shape, STAGE_2)], 1))
    if hasattr(model, "encode_with_cache"):
        h1, cache = model.encode_with_cache(items, u)
    else:
        h1, cache = model.encode(items, u), None
    ids1, sc1 = search(h1.cpu().numpy(), n, banned)
    if m <= 0:
        return RecallResult(ids1, sc1, np.full(ids1.shape, STAGE_1))

    app = torch.from_numpy(np.ascontiguousarray(_appended(ids1, append)).clip(min=0)).to(dev)  # -1 -> padding
    if cache is not None:
        h2, _ = model.extend(cache, app)  # only the appended positions are computed
    else:
        full = torch.cat([items, app], 1)
        seg = torch.cat([torch.zeros_like(items), torch.ones_like(app)], 1)
        h2 = model.encode(full, u, seg) if getattr(model, "kind", "") == "gpt" else model.encode(full, u)
    banned2 = [np.concatenate([b, r[r > 0]]) for b, r in zip(banned, ids1, strict=True)]
    ids2, sc2 = search(h2.cpu().numpy(), m, banned2)
    return RecallResult(
        np.concatenate([ids1, ids2], 1),
        np.concatenate([sc1, sc2], 1),
        np.concatenate([np.full(ids1.shape, STAGE_1), np.full(ids2.shape, STAGE_2)], 1),
    )


DEFAULT_SPLITS: dict[int, tuple[int, int]] = {5: (4, 1), 10: (9, 1), 20: (18, 2), 50: (45, 5)}


@torch.no_grad()
def recall_ranks(
    model, histories: Sequence[np.ndarray], targets: np.ndarray, users: np.ndarray, n: int, m: int,
    search: SearchFn | None = None, append: str | int = "all", batch_size: int = 1024,
) -> np.ndarray:
    """(U,) 0-based position of each target in its two-stage list of n + m items (inf: not in it). The model is
    used as it is (call .eval() first)."""
    search = search or torch_search(model.item_embeddings())
    order = np.argsort([len(h) for h in histories], kind="stable")  # batches of similar length
    ranks = np.empty(len(histories))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        res = two_stage_recall(model, [histories[i] for i in idx], users[idx], n, m, search, append=append)
        ranks[idx] = ranks_from_lists(res.items, targets[idx])
    return ranks


def evaluate_recall(
    model,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    users: np.ndarray,
    splits: dict[int, tuple[int, int]] | None = None,
    search: SearchFn | None = None,
    append: str | int = "all",
    batch_size: int = 1024,
) -> dict:
    """Full-ranking metrics of the K-lists, each K with its own (N, M) split; MRR over the largest list."""
    splits = splits or DEFAULT_SPLITS
    search = search or torch_search(model.item_embeddings())
    was_training = model.training
    model.eval()
    out: dict = {}
    for k, (n, m) in sorted(splits.items()):
        if n + m != k:
            raise ValueError(f"split for K={k} is {n}+{m}, which is not {k}")
        ranks = recall_ranks(model, histories, targets, users, n, m, search, append, batch_size)
        mk = metrics_from_ranks(ranks, [k])
        out[f"HR@{k}"], out[f"NDCG@{k}"] = mk[f"HR@{k}"], mk[f"NDCG@{k}"]
        if k == max(splits):
            out["MRR"] = mk["MRR"]
    out["splits"] = {str(k): list(v) for k, v in sorted(splits.items())}
    if was_training:
        model.train()
    return {key: out[key] for key in [f"HR@{k}" for k in sorted(splits)] + [f"NDCG@{k}" for k in sorted(splits)]
            + ["MRR", "splits"]}


def split_lists(stage1: np.ndarray, stage2: np.ndarray, k: int, n: int) -> np.ndarray:
    """(B, k) the two-stage list of split n + (k - n) from a longer stage-1 list and a stage-2 list that left out
    the history and the appended items only: stage1[:, :n], then the first k - n stage-2 items not in it (-1 pads
    where the catalog ran out)."""
    s1 = stage1[:, :n]
    keep = (stage2 >= 0) & ~(stage2[:, :, None] == s1[:, None, :]).any(-1)  # (B, L)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept items first, in stage-2 order
    s2 = np.take_along_axis(stage2, order, 1)[:, :k - n]
    s2 = np.where(np.take_along_axis(keep, order, 1)[:, :k - n], s2, -1)
    return np.concatenate([s1, s2], 1)


@torch.no_grad()
def split_grid_ranks(
    model, histories: Sequence[np.ndarray], targets: np.ndarray, users: np.ndarray, grid: dict[int, Sequence[int]],
    append: int, search: SearchFn | None = None, batch_size: int = 1024,
) -> dict[tuple[int, int], np.ndarray]:
    """(U,) ranks in the two-stage K-list of every split (K, N) of grid with N >= append, as `recall_ranks(n=N,
    m=K-N, append=append)` gives them, from one recall for the whole grid instead of one a split.

    NOTE: exact because stage 2 appends the top `append` stage-1 items, which do not depend on N: one recall with
    n=append retrieves max K stage-2 items (history and appended items excluded), one with m=0 the stage-1 list of
    max K, and `split_lists` cuts each split's list from the two (tested against recall_ranks split by split)."""
    append = int(parse_append(append))
    k_max = max(grid)
    pairs = [(k, n) for k, ns in sorted(grid.items()) for n in ns if append <= n <= k]
    search = search or torch_search(model.item_embeddings())
    was_training = model.training
    model.eval()
    order = np.argsort([len(h) for h in histories], kind="stable")
    ranks = {pair: np.empty(len(histories)) for pair in pairs}
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        hist = [histories[i] for i in idx]
        stage1 = two_stage_recall(model, hist, users[idx], k_max, 0, search).items
        stage2 = two_stage_recall(model, hist, users[idx], append, k_max, search, append=append).items[:, append:]
        for k, n in pairs:
            lists = split_lists(stage1, stage2, k, n) if n < k else stage1[:, :k]
            ranks[(k, n)][idx] = ranks_from_lists(lists, targets[idx])
    if was_training:
        model.train()
    return ranks


__all__ = ["KS", "RecallResult", "SearchFn", "torch_search", "two_stage_recall", "recall_ranks", "evaluate_recall",
           "split_lists", "split_grid_ranks"]
