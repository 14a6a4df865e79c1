"""Validation and test NDCG@10 of prompt-tuned runs that share one start, and of their weight soups.

    python -m bench.seed_soup START_RUN TUNED_RUN [TUNED_RUN ...]

The tuned runs are prompt stages fine-tuned from the same start (the same `--init`) with different seeds; fine-tuned
copies of one model can be averaged in weight space (Wortsman et al. 2022, "Model soups": the uniform and the greedy
soup). Rows: the start, each tuned run, the uniform soup of all tuned runs, and the greedy soup (runs in order of
their validation two-stage NDCG@10, each kept when the average with it scores at least as well there). Choices are
made on validation only; test is printed for the record. The recall options (split, append) are the first tuned
run's. Prints one markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bench.mix_start import ndcg10_row
from model.data import leave_one_out, load_dataset
from model.io import load_run_model
from model.soup import greedy_mean, mean_state
from model.stages import k10_recall
from model.train import TrainConfig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("start", type=Path)
    ap.add_argument("tuned", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(**json.loads((args.tuned[0] / "config.json").read_text()))
    for run in args.tuned:
        init = json.loads((run / "config.json").read_text()).get("init")
        if init is None or Path(init).resolve() != args.start.resolve():
            raise SystemExit(f"{run} was not fine-tuned from {args.start} (its init: {init})")
    split = leave_one_out(load_dataset(cfg.data))
    split10, append = k10_recall(cfg)
    model = load_run_model(args.tuned[0]).eval()
    states = {str(run): load_run_model(run).state_dict() for run in args.tuned}
    start = load_run_model(args.start).state_dict()

    def score(state: dict[str, torch.Tensor]) -> list[float]:
        model.load_state_dict(state)
        return ndcg10_row(cfg, model, split)  # valid, valid two-stage, test, test two-stage

    print(f"NDCG@10 of runs fine-tuned from `{args.start}` and their weight soups (two-stage: K=10 split "
          f"{split10}, append {append})\n")
    print("| weights | valid | valid two-stage | test | test two-stage |")
    print("|---|---|---|---|---|")

    def line(name: str, row: list[float]) -> None:
        print(f"| {name} | " + " | ".join(f"{x:.5f}" for x in row) + " |", flush=True)

    line("start", score(start))
    rows = {(name,): score(s) for name, s in states.items()}  # by the runs in a soup
    for (name,), row in rows.items():
        line(f"`{Path(name).name}`", row)
    if len(states) < 2:
        return
    line(f"uniform soup of {len(states)}", score(mean_state(list(states.values()))))

    def soup_score(members: list[str], state: dict[str, torch.Tensor]) -> float:
        if tuple(members) not in rows:  # a run alone was scored above
            rows[tuple(members)] = score(state)
        return rows[tuple(members)][1]  # chosen on validation two-stage

    order = sorted(states, key=lambda n: -rows[(n,)][1])
    chosen, _, _ = greedy_mean(order, states.__getitem__, soup_score)
    line("greedy soup of " + ", ".join(f"`{Path(n).name}`" for n in chosen), rows[tuple(chosen)])


if __name__ == "__main__":
    main()
