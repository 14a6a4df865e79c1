"""A FAISS inner-product index over an item table, searched through the recall's SearchFn contract.

Row 0 of the table is padding and is never indexed; rows 1..n are added with ids = internal item ids,
so FAISS returns internal ids directly. Takes numpy arrays only: never imports model/ or service/.

NOTE: thread safety. FAISS searches on one index may run concurrently, but adding to or training an
index while it is searched is undefined. This module never mutates an index after `build_index`
returns; a reload builds a new `ItemIndex` and the caller swaps one reference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

KINDS = ("flat", "hnsw", "ivf", "auto")
# auto: exact up to this many items, HNSW up to AUTO_IVF_FROM, IVF beyond
AUTO_HNSW_FROM = 100_000
AUTO_IVF_FROM = 2_000_000


def set_threads(threads: int | None) -> None:
    """FAISS's OpenMP threads (process-wide). NOTE: left unset, FAISS uses every core and fights torch."""
    if threads is not None and threads > 0:
        faiss.omp_set_num_threads(int(threads))


def resolve_kind(kind: str, n_items: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"index kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind != "auto":
        return kind
    if n_items < AUTO_HNSW_FROM:
        return "flat"
    return "hnsw" if n_items < AUTO_IVF_FROM else "ivf"


@dataclass
class ItemIndex:
    """A built (immutable) FAISS index; `search` is a SearchFn."""

    index: faiss.Index
    kind: str
    n_items: int  # internal ids 1..n_items are indexed
    dim: int
    params: dict = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ search

    def _raw(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, self.index.ntotal))
        scores, ids = self.index.search(queries, k)
        return ids.astype(np.int64, copy=False), scores.astype(np.float32, copy=False)

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids (B, k) int64 (-1 = none) and scores (B, k) float32 (-inf = none).

        Per row: drops the row's excluded ids, ids already returned, padding (0) and ids outside 1..n.
        Over-fetches by the number of exclusions and re-searches with a doubled k when filtering (or an
        approximate index returning -1) left too few."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must be (B, {self.dim}), got {q.shape}")
        B = q.shape[0]
        exclude = exclude if exclude is not None else [np.empty(0, np.int64)] * B
        if len(exclude) != B:
            raise ValueError(f"exclude has {len(exclude)} rows for {B} queries")
        out_ids = np.full((B, k), -1, dtype=np.int64)
        out_sc = np.full((B, k), -np.inf, dtype=np.float32)
        if k <= 0 or B == 0:
            return out_ids, out_sc
        banned = [set(np.asarray(e, dtype=np.int64).ravel().tolist()) for e in exclude]
        fetch = k + max((len(b) for b in banned), default=0)
        pending = np.arange(B)
        while len(pending):
            ids, sc = self._raw(q[pending], fetch)
            exhausted = ids.shape[1] >= self.index.ntotal
            again = []
            for j, r in enumerate(pending):
                got = self._filter(ids[j], sc[j], banned[r], k)
                out_ids[r, : len(got)] = [g[0] for g in got]
                out_sc[r, : len(got)] = [g[1] for g in got]
                if len(got) < k and not exhausted:
                    again.append(r)
            pending = np.asarray(again, dtype=np.int64)
            fetch *= 2
        return out_ids, out_sc

    def _filter(
        self, ids: np.ndarray, scores: np.ndarray, banned: set[int], k: int
    ) -> list[tuple[int, float]]:
        seen: set[int] = set()
        got: list[tuple[int, float]] = []
        for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
            if i < 1 or i > self.n_items or i in banned or i in seen:
                continue
            seen.add(i)
            got.append((i, s))
            if len(got) == k:
                break
        return got

    def __call__(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.search(queries, k, exclude)

    # ------------------------------------------------------------------------------------------ files

    def save(self, path: str | Path) -> None:
        """The index (faiss.write_index, no pickle) and a JSON sidecar PATH.json with kind and params.
        Both are written to temporary names, then renamed."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)
        meta = {"kind": self.kind, "n_items": self.n_items, "dim": self.dim, "params": self.params}
        side = meta_path(path)
        side.with_name(side.name + ".tmp").write_text(json.dumps(meta, indent=2))
        os.replace(side.with_name(side.name + ".tmp"), side)


def meta_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def _apply_params(index: faiss.Index, kind: str, params: dict) -> None:
    # NOTE: efSearch / nprobe are query-time settings: re-applied after every load, not trusted to the file
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if kind == "hnsw":
        faiss.downcast_index(inner).hnsw.efSearch = int(params.get("ef_search", 128))
    elif kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = int(params.get("nprobe", 16))


def build_index(
    table: np.ndarray,
    kind: str = "flat",
    threads: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 200,
    ef_search: int = 128,
    nlist: int | None = None,
    nprobe: int = 16,
) -> ItemIndex:
    """Index rows 1..n of `table` (n + 1, d) with ids 1..n. kind: flat | hnsw | ivf | auto."""
    set_threads(threads)
    table = np.asarray(table, dtype=np.float32)
    if table.ndim != 2 or table.shape[0] < 2:
        raise ValueError(f"item table must be (n_items + 1, d) with n_items >= 1, got {table.shape}")
    vecs = np.ascontiguousarray(table[1:])
    n, d = vecs.shape
    ids = np.arange(1, n + 1, dtype=np.int64)
    kind = resolve_kind(kind, n)
    params: dict = {}
    if kind == "flat":
        index: faiss.Index = faiss.IndexIDMap(faiss.IndexFlatIP(d))
        index.add_with_ids(vecs, ids)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ef_construction
        index = faiss.IndexIDMap(inner)
        index.add_with_ids(vecs, ids)
        params = {"m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search}
    else:
        nlist = nlist or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))  # NOTE: FAISS wants >= 39 points/list
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vecs)
        index.add_with_ids(vecs, ids)
        params = {"nlist": nlist, "nprobe": min(nprobe, nlist)}
    _apply_params(index, kind, params)
    return ItemIndex(index=index, kind=kind, n_items=n, dim=d, params=params)


def load_index(path: str | Path, threads: int | None = None) -> ItemIndex:
    """A new ItemIndex from `save`'s files (callers swap it in; the old one is never touched)."""
    set_threads(threads)
    path = Path(path)
    meta = json.loads(meta_path(path).read_text())
    index = faiss.read_index(str(path))
    _apply_params(index, meta["kind"], meta["params"])
    if index.ntotal != meta["n_items"] or index.d != meta["dim"]:
        raise ValueError(
            f"{path}: index holds {index.ntotal} x {index.d}, its sidecar says "
            f"{meta['n_items']} x {meta['dim']}"
        )
    return ItemIndex(
        index=index, kind=meta["kind"], n_items=meta["n_items"], dim=meta["dim"], params=meta["params"]
    )


def exact_search(table: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids (rows 1..n) by brute force in numpy: the reference for `ann_recall`."""
    s = np.asarray(queries, np.float32) @ np.asarray(table, np.float32)[1:].T
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(s, top, 1).argsort(1)[:, ::-1]
    return np.take_along_axis(top, order, 1) + 1


def ann_recall(index: ItemIndex, table: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Mean |ANN top-k ∩ exact top-k| / k over the queries."""
    exact = exact_search(table, queries, k)
    approx, _ = index.search(queries, k)
    hits = [len(set(a[a > 0].tolist()) & set(e.tolist())) for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(hits) / exact.shape[1])
