"""Build a model from its saved config and load trained weights (safetensors; no pickle)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .baselines import BERT4Rec, GRU4Rec, PopModel
from .checkpoint import load_weights
from .comirec import ComiRecSA
from .gpt import GPTConfig, GPTRec

ARCHS = {"gpt": GPTRec, "gru": GRU4Rec, "bert": BERT4Rec, "comirec": ComiRecSA}


def model_spec(model) -> dict:
    """What is needed to rebuild `model`: its architecture kind and config."""
    return {"kind": model.kind, "config": model.cfg.to_dict()}


def build_from_spec(spec: dict):
    cfg = GPTConfig(**spec["config"])
    if spec["kind"] == "pop":
        return PopModel(cfg.n_items, [], cfg.max_len)
    if spec["kind"] not in ARCHS:
        raise ValueError(f"unknown model kind {spec['kind']!r}")
    return ARCHS[spec["kind"]](cfg)


def load_model(spec: dict, weights: dict[str, torch.Tensor]):
    """An eval-mode model from a spec (model.json) and its state dict."""
    model = build_from_spec(spec)
    model.load_state_dict(weights)
    if hasattr(model, "eval"):
        model.eval()
    return model


def load_run_model(run_dir: str | Path, checkpoint: str = "best"):
    """A checkpoint of a finished run folder: `best` (the final model), or e.g. `pretrain.best`."""
    run_dir = Path(run_dir)
    spec = json.loads((run_dir / "model.json").read_text())
    if spec["kind"] == "pop":
        from safetensors.torch import load_file

        return load_model(spec, load_file(str(run_dir / f"{checkpoint}.safetensors")))
    return load_model(spec, load_weights(run_dir / f"{checkpoint}.safetensors"))
