"""Checkpoints without pickle: model and Adam state as safetensors, the rest as JSON metadata.

Writes are atomic (temporary file, then rename), so a run killed mid-write keeps its last good one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer=None, meta: dict | None = None) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = dict(meta or {})
    if optimizer is not None:
        st = optimizer.state_dict()
        for pid, state in st["state"].items():
            for k, v in state.items():
                tensors[f"opt.{pid}.{k}"] = torch.as_tensor(v).cpu().contiguous()
        info["param_groups"] = st["param_groups"]
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(info)})
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer=None, restore_rng: bool = False,
                    missing_ok: tuple[str, ...] = ()) -> dict:
    """Load weights (and optimizer state, torch's RNG) into place; -> the checkpoint's metadata. missing_ok: names
    of the model's parameters the file may lack (they keep their values); any other mismatch is an error."""
    from safetensors import safe_open

    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        info = json.loads(f.metadata()["meta"])
    missing, unexpected = model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                                                strict=False)
    missing = [k for k in missing if k not in missing_ok]
    if missing or unexpected:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(model).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
    if optimizer is not None and "param_groups" in info:
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    if restore_rng:
        torch.set_rng_state(tensors["rng.torch"])
    return info


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return {k[6:]: v for k, v in load_file(str(path)).items() if k.startswith("model.")}
