"""Validation and test NDCG@10 (one- and two-stage) along the line from a pre-trained run to its prompt-tuned run.

    python -m bench.mix_start TUNED_RUN START_RUN [a a ...]

Each `a` gives the weights (1 - a) * start + a * tuned: a = 0 is the start, 1 the tuned run, a > 1 extrapolates
past it. What `--set mix_start=...` chooses from on validation at the end of prompt-tuning (model/soup.py), here
for any weights after the fact, test included, for the record. The recall options (split, append) are the tuned
run's. Prints one markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from model.data import Split, leave_one_out, load_dataset
from model.evaluate import evaluate
from model.io import load_run_model
from model.soup import interpolate
from model.stages import k10_recall, two_stage_k10
from model.train import TrainConfig


def ndcg10_row(cfg: TrainConfig, model, split: Split) -> list[float]:
    """NDCG@10 on validation and test, one-stage and two-stage (the run's K=10 recall): one table row."""
    row = []
    for hist, target in ((split.valid_hist, split.valid_target), (split.test_hist, split.test_target)):
        row.append(evaluate(model, hist, target, split.users, cfg.eval_batch)["NDCG@10"])
        row.append(two_stage_k10(cfg, model, hist, target, split.users)["NDCG@10"])
    return row  # valid, valid two-stage, test, test two-stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tuned", type=Path)
    ap.add_argument("start", type=Path)
    ap.add_argument("alphas", type=float, nargs="*", default=[0.0, 0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(**json.loads((args.tuned / "config.json").read_text()))
    split = leave_one_out(load_dataset(cfg.data))
    split10, append = k10_recall(cfg)  # for the table's title: two_stage_k10 uses the same
    model = load_run_model(args.tuned).eval()
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    start = load_run_model(args.start).state_dict()
    print(f"NDCG@10 of (1 - a) * `{args.start}` + a * `{args.tuned}` (two-stage: K=10 split {split10}, "
          f"append {append})\n")
    print("| a | valid | valid two-stage | test | test two-stage |")
    print("|---|---|---|---|---|")
    for a in args.alphas:
        model.load_state_dict(interpolate(start, tuned, a))
        print(f"| {a:g} | " + " | ".join(f"{x:.5f}" for x in ndcg10_row(cfg, model, split)) + " |", flush=True)


if __name__ == "__main__":
    main()
