"""How often a model's own prompt already holds the item it is then trained to predict.

    python -m bench.prompt_hits RUN [RUN ...] [--k 1] [--threads 2]

Prompt-tuning with placement `last` generates k items after each training window's inputs (greedy, never an item of
the window) and trains the prompt positions to predict the window's real last item. Where the prompt already holds
that item, those positions learn to name an item that is in their own input, which stage 2 of the recall never
returns (it leaves out what it appended): `--set prompt_exclude=shown` drops them from the loss. Prints, per run,
the share of training windows whose prompt holds the target (the windows the prompt stage trains on, the model in
eval mode as generation runs), and the same for validation (history -> the validation item).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from model.batching import training_windows
from model.data import leave_one_out, load_dataset
from model.io import load_run_model
from model.prompt import generate_last


def hit_share(model: torch.nn.Module, windows: torch.Tensor, users: torch.Tensor, k: int, batch: int = 1024) -> float:
    """Share of windows (B, L + 1) whose greedy k-item prompt after the inputs holds the last item."""
    hits = 0
    for s in range(0, len(windows), batch):
        w, u = windows[s:s + batch], users[s:s + batch]
        gen = generate_last(model, w[:, :-1], u, k, mode="greedy")  # (b, k)
        hits += int((gen == w[:, -1:]).any(1).sum())
    return hits / len(windows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--k", type=int, default=1, help="prompt length (greedy)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"| run | train windows whose prompt (k={args.k}) holds the target | validation |")
    print("|---|---|---|")
    windows: dict[tuple[str, int], tuple] = {}  # (data, max_len) -> training and validation windows, made once
    for run in args.runs:
        data = json.loads((run / "config.json").read_text())["data"]
        model = load_run_model(run).eval()
        max_len = model.cfg.max_len
        if (data, max_len) not in windows:
            split = leave_one_out(load_dataset(data))
            valid = [np.append(h[-max_len:], t) for h, t in zip(split.valid_hist, split.valid_target, strict=True)]
            # user ids: position + 1 in both, as training_windows gives them
            windows[data, max_len] = (*training_windows(split.train, max_len), *training_windows(valid, max_len))
        train_w, train_u, valid_w, valid_u = windows[data, max_len]
        tr = hit_share(model, train_w, train_u, args.k)
        va = hit_share(model, valid_w, valid_u, args.k)
        print(f"| {run.name} | {tr:.4f} ({len(train_w)}) | {va:.4f} ({len(valid_w)}) |", flush=True)


if __name__ == "__main__":
    main()
