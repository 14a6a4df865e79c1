"""The FAISS index against the exact torch reference, exclusion, files, and ANN recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from index import ann_recall, build_index, load_index, resolve_kind
from model.recall import torch_search


def _data(n: int = 1000, d: int = 16, b: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n + 1, d)).astype(np.float32), rng.normal(size=(b, d)).astype(np.float32)


def test_flat_matches_torch_search_with_exclusions() -> None:
    table, q = _data()
    rng = np.random.default_rng(1)
    exclude = [rng.integers(1, len(table), size=int(rng.integers(0, 60))) for _ in range(len(q))]
    got_ids, got_sc = build_index(table, "flat", threads=1).search(q, 50, exclude)
    ref_ids, ref_sc = torch_search(torch.from_numpy(table))(q, 50, exclude)
    np.testing.assert_array_equal(got_ids, ref_ids)
    np.testing.assert_allclose(got_sc, ref_sc, rtol=1e-4, atol=1e-4)


def test_exclusion_padding_and_exhaustion() -> None:
    table, q = _data(n=20, b=2)
    table[0] = 100.0  # padding row would win every search if it were indexed
    idx = build_index(table, "flat")
    ex = [np.arange(1, 16), np.array([], dtype=np.int64)]
    ids, sc = idx.search(q, 10, ex)
    assert set(ids[0][ids[0] > 0].tolist()) <= set(range(16, 21)) and (ids[0] == -1).sum() == 5
    assert np.isneginf(sc[0][ids[0] == -1]).all()
    assert 0 not in ids and len(set(ids[1].tolist())) == 10
    ids, _ = idx.search(q, 30, None)  # more than the catalog: -1 padding, no duplicates
    assert (ids[:, 20:] == -1).all() and all(len(set(r[:20].tolist())) == 20 for r in ids)


def test_refetch_when_filtering_leaves_too_few() -> None:
    table, q = _data(n=500, b=1)
    idx = build_index(table, "hnsw")
    top = idx.search(q, 100)[0][0]
    ids, _ = idx.search(q, 10, [top[:90]])  # most of the first fetch is excluded
    assert (ids > 0).all() and not set(ids[0].tolist()) & set(top[:90].tolist())


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_and_ann_recall(kind: str, tmp_path: Path) -> None:
    table, q = _data(n=3000, d=16, b=50)
    idx = build_index(table, kind, threads=1)
    idx.save(tmp_path / "items.faiss")
    loaded = load_index(tmp_path / "items.faiss", threads=1)
    assert (loaded.kind, loaded.n_items, loaded.params) == (kind, 3000, idx.params)
    np.testing.assert_array_equal(loaded.search(q, 10)[0], idx.search(q, 10)[0])
    r = ann_recall(loaded, table, q, k=10)
    assert r == 1.0 if kind == "flat" else r >= 0.8


def test_auto_kind_and_errors() -> None:
    assert resolve_kind("auto", 1000) == "flat"
    assert resolve_kind("auto", 500_000) == "hnsw"
    assert resolve_kind("auto", 5_000_000) == "ivf"
    with pytest.raises(ValueError, match="index kind"):
        resolve_kind("lsh", 10)
    table, q = _data(n=10)
    with pytest.raises(ValueError, match="queries"):
        build_index(table).search(q[:, :3], 5)
