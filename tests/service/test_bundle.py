"""Bundles: contents, checksums (a tampered file is refused by name), index rebuilds, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from service.bundle import BundleError, load_bundle, verify
from service.cli import main


def test_bundle_contents(bundle_dir: Path, run_dir: Path) -> None:
    m = verify(bundle_dir)
    assert m["version"] == "v1" and m["index"]["kind"] == "flat"
    assert set(m["files"]) == {
        "weights.safetensors",
        "model.json",
        "idmap.json",
        "popular.json",
        "metrics.json",
        "items.faiss",
        "items.faiss.json",
    }
    assert not [p for p in bundle_dir.iterdir() if p.suffix in (".pt", ".pkl", ".pth", ".bin")]
    assert all(not k.startswith("model.") for k in load_file(str(bundle_dir / "weights.safetensors")))
    assert json.loads((bundle_dir / "metrics.json").read_text()) == json.loads(
        (run_dir / "metrics.json").read_text()
    )
    b = load_bundle(bundle_dir)
    assert b.index.n_items == b.idmap.n_items and 0 not in b.popular.tolist()


@pytest.mark.parametrize("name", ["weights.safetensors", "items.faiss", "popular.json", "manifest.json"])
def test_tampered_bundle_is_refused_naming_the_file(bundle_copy: Path, name: str) -> None:
    p = bundle_copy / name
    if name == "manifest.json":
        m = json.loads(p.read_text())
        m["files"]["model.json"] = "0" * 64
        p.write_text(json.dumps(m))
        name = "model.json"
    else:
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        load_bundle(bundle_copy)


def test_missing_file_and_cli_refusal(bundle_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle_copy / "items.faiss").unlink()
    with pytest.raises(BundleError, match="items.faiss"):
        verify(bundle_copy)
    assert main(["serve", str(bundle_copy), "--port", "1"]) == 2
    assert "items.faiss" in capsys.readouterr().err


def test_cli_export_and_build_index(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    assert main(["export", str(run_dir), str(out), "--index", "auto"]) == 0
    m = verify(out)
    assert m["version"].startswith("syn-") and m["index"]["kind"] == "flat"
    assert main(["build-index", str(out), "--index", "hnsw"]) == 0
    m2 = verify(out)
    assert m2["index"]["kind"] == "hnsw" and m2["version"] == m["version"]
    assert m2["files"]["items.faiss"] != m["files"]["items.faiss"]
    assert load_bundle(out).index.kind == "hnsw"
    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "x")]) == 2


def test_a_run_that_ranks_by_its_output_head_serves_the_heads_ranking(run_dir: Path, tmp_path: Path) -> None:
    """`--set prompt_head=serve`: the exported index holds the head, and the bundle's two-stage lists are the
    offline recall's (torch top-k against the head), not the item table's."""
    import numpy as np
    import torch

    from model.data import leave_one_out, load_dataset
    from model.recall import torch_search, two_stage_recall
    from model.train import TrainConfig, run
    from service.bundle import export_bundle

    out = tmp_path / "serve"
    run(TrainConfig(data="synthetic", model="recgpt", loss="ce", stages="prompt", init=str(run_dir), epochs=1,
                    lr=3e-3, batch_size=64, dropout=0.2, d_model=32, out=str(out),
                    extra={"prompt_head": "serve"}), log=lambda *a: None)
    export_bundle(out, tmp_path / "b", index_kind="flat", version="h")
    b = load_bundle(tmp_path / "b")
    head = load_file(str(out / "best.safetensors"))["model.out_table"]
    assert np.array_equal(b.item_table(), head.numpy())
    assert not torch.equal(b.model.item_emb.weight, head)
    split = leave_one_out(load_dataset("synthetic"))
    hist, users = split.test_hist[:50], split.users[:50]
    served = two_stage_recall(b.model, hist, users, 8, 2, b.index.search, append=1)
    offline = two_stage_recall(b.model, hist, users, 8, 2, torch_search(head), append=1)
    assert np.array_equal(served.items, offline.items)
    by_items = two_stage_recall(b.model, hist, users, 8, 2, torch_search(b.model.item_emb.weight), append=1)
    assert not np.array_equal(served.items, by_items.items)
