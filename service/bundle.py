"""A versioned, checksummed serving bundle made from a training run folder. No pickle anywhere.

Layout (every file listed in manifest.json with its sha256):
    weights.safetensors   model state dict (no "model." prefix)
    model.json            {"kind": ..., "config": GPTConfig}
    idmap.json            external <-> internal ids
    popular.json          {"items": internal ids by training count, "counts": [...]} (cold start)
    metrics.json          the run's offline metrics
    items.faiss (+ .json) the FAISS index over item embeddings rows 1..n
    manifest.json         {"format", "version", "created", "source_run", "model_kind", "n_items", "dim",
                           "index": {"kind", "params"}, "files": {name: sha256}}
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from index import ItemIndex, build_index, load_index
from model.checkpoint import load_weights
from model.data import IdMap, sha256_file
from model.io import load_model

FORMAT = 1
INDEX_FILE = "items.faiss"
TOP_POPULAR = 1000


class BundleError(ValueError):
    """A bundle that cannot be loaded; the message names the offending file."""


@dataclass
class Bundle:
    """Everything one model version serves with; immutable once loaded (reload builds a new one)."""

    path: Path
    version: str
    manifest: dict
    model: torch.nn.Module
    idmap: IdMap
    index: ItemIndex
    popular: np.ndarray  # internal ids, most popular first
    popular_counts: np.ndarray
    metrics: dict

    @property
    def max_len(self) -> int:
        return int(self.model.cfg.max_len)

    @property
    def default_append(self) -> str | int:
        """What stage 2 appends unless a variant says otherwise: what the run was evaluated with offline
        (a prompt-tuned model appends its prompt length's items), else all N."""
        return self.metrics.get("test_two_stage", {}).get("append", "all")

    def item_table(self) -> np.ndarray:
        return self.model.item_embeddings().detach().numpy()


# ---------------------------------------------------------------------------------------------- writing


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2))


def _run_weights(run_dir: Path, kind: str) -> dict[str, torch.Tensor]:
    path = run_dir / "best.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a finished run folder?")
    return load_file(str(path)) if kind == "pop" else load_weights(path)


def _write_manifest(out: Path, base: dict) -> dict:
    files = sorted(
        p.name
        for p in out.iterdir()
        if p.is_file() and p.name != "manifest.json" and not p.name.endswith(".tmp")
    )
    manifest = {**base, "files": {name: sha256_file(out / name) for name in files}}
    tmp = out / "manifest.json.tmp"
    _write_json(tmp, manifest)
    os.replace(tmp, out / "manifest.json")  # NOTE: the manifest last: a half-written bundle never verifies
    return manifest


def export_bundle(
    run_dir: str | Path,
    out_dir: str | Path,
    index_kind: str = "auto",
    version: str | None = None,
    threads: int | None = None,
) -> dict:
    """Write a bundle for a finished run; returns its manifest. `out_dir` is replaced if it exists."""
    run_dir, out = Path(run_dir), Path(out_dir)
    for need in ("model.json", "idmap.json", "popularity.json", "metrics.json"):
        if not (run_dir / need).exists():
            raise FileNotFoundError(f"{run_dir / need} not found: is {run_dir} a finished run folder?")
    spec = json.loads((run_dir / "model.json").read_text())
    weights = _run_weights(run_dir, spec["kind"])
    model = load_model(spec, weights)
    if not hasattr(model, "item_embeddings") or not hasattr(model, "encode"):
        raise ValueError(f"{run_dir}: a {spec['kind']!r} model has no item embeddings to serve from an index")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(tmp / "weights.safetensors"))
    for name in ("model.json", "idmap.json", "metrics.json"):
        shutil.copyfile(run_dir / name, tmp / name)
    counts = np.asarray(json.loads((run_dir / "popularity.json").read_text()), dtype=np.int64)
    counts[0] = -1  # padding is never popular
    order = np.argsort(-counts, kind="stable")[: min(TOP_POPULAR, len(counts) - 1)]
    _write_json(tmp / "popular.json", {"items": order.tolist(), "counts": counts[order].tolist()})
    table = model.item_embeddings().detach().numpy()
    idx = build_index(table, index_kind, threads=threads)
    idx.save(tmp / INDEX_FILE)
    created = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = {
        "format": FORMAT,
        "created": created,
        "source_run": str(run_dir.resolve()),
        "model_kind": spec["kind"],
        "n_items": int(table.shape[0] - 1),
        "dim": int(table.shape[1]),
        "index": {"kind": idx.kind, "params": idx.params},
    }
    weights_hash = sha256_file(tmp / "weights.safetensors")[:8]
    base["version"] = version or f"{run_dir.resolve().name}-{created}-{weights_hash}"
    manifest = _write_manifest(tmp, base)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return manifest


def rebuild_index(bundle_dir: str | Path, index_kind: str = "auto", threads: int | None = None) -> dict:
    """Rebuild a bundle's FAISS index (verifying the bundle first) and rewrite its manifest."""
    out = Path(bundle_dir)
    manifest = verify(out)
    spec = json.loads((out / "model.json").read_text())
    model = load_model(spec, load_file(str(out / "weights.safetensors")))
    idx = build_index(model.item_embeddings().detach().numpy(), index_kind, threads=threads)
    idx.save(out / INDEX_FILE)
    base = {k: v for k, v in manifest.items() if k != "files"}
    base["index"] = {"kind": idx.kind, "params": idx.params}
    base["index_rebuilt"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return _write_manifest(out, base)


# ---------------------------------------------------------------------------------------------- reading


def verify(bundle_dir: str | Path) -> dict:
    """The manifest, after checking that every listed file exists and matches its sha256."""
    root = Path(bundle_dir)
    mpath = root / "manifest.json"
    if not mpath.exists():
        raise BundleError(f"{mpath} not found: not a bundle (make one with `recgpt export RUN_DIR OUT_DIR`)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{mpath}: bundle format {manifest.get('format')!r}, this service reads {FORMAT}")
    files = manifest.get("files", {})
    for need in ("weights.safetensors", "model.json", "idmap.json", "popular.json", INDEX_FILE):
        if need not in files:
            raise BundleError(f"{mpath}: {need} is not listed")
    for name, digest in files.items():
        p = root / name
        if "/" in name or not p.is_file():
            raise BundleError(f"{p}: listed in the manifest but missing")
        if sha256_file(p) != digest:
            raise BundleError(f"{p}: sha256 does not match the manifest (modified or corrupt file)")
    return manifest


def load_bundle(bundle_dir: str | Path, faiss_threads: int | None = None) -> Bundle:
    """Verify and load a bundle into a new, fully built Bundle (never touches one already serving)."""
    root = Path(bundle_dir)
    manifest = verify(root)
    spec = json.loads((root / "model.json").read_text())
    model = load_model(spec, load_file(str(root / "weights.safetensors")))
    idmap = IdMap.load(root / "idmap.json")
    pop = json.loads((root / "popular.json").read_text())
    index = load_index(root / INDEX_FILE, threads=faiss_threads)
    if index.n_items != idmap.n_items or index.dim != model.item_embeddings().shape[1]:
        raise BundleError(
            f"{root / INDEX_FILE}: {index.n_items} x {index.dim} does not fit the model's "
            f"{idmap.n_items} items x {model.item_embeddings().shape[1]}"
        )
    metrics = json.loads((root / "metrics.json").read_text()) if (root / "metrics.json").exists() else {}
    return Bundle(
        path=root,
        version=str(manifest["version"]),
        manifest=manifest,
        model=model,
        idmap=idmap,
        index=index,
        popular=np.asarray(pop["items"], dtype=np.int64),
        popular_counts=np.asarray(pop["counts"], dtype=np.float64),
        metrics=metrics,
    )
