"""Markdown and JSON tables comparing runs, built from each run's metrics.json (never typed by hand)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .evaluate import KS

COLUMNS = [f"HR@{k}" for k in KS] + [f"NDCG@{k}" for k in KS]
REL_COLUMNS = ["HR@10", "NDCG@10"]


def load_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a finished run folder?")
    return json.loads(path.read_text())


def compare_runs(
    run_dirs: Sequence[str | Path], block: str = "test", baseline: str | Path | None = None,
    baseline_block: str = "test",
) -> tuple[str, list[dict]]:
    """One row a run: its model, data, loss, the metrics of `block` (test, valid, test_two_stage), epochs, wall
    time; with `baseline` (a run folder) also each row's relative change in HR@10 and NDCG@10 against that run's
    `baseline_block` (one-stage test by default: "our SASRec" is scored one-stage)."""
    rows = []
    for d in run_dirs:
        m = load_run(d)
        if block not in m:
            raise KeyError(f"{d}: metrics.json has no {block!r} block (has {sorted(m)})")
        rows.append({"run": str(d), "model": m.get("model"), "data": m.get("data"), "loss": m.get("loss"),
                     "wall_s": m.get("wall_s"), "epochs": m.get("epochs"), **m[block]})
    rel = REL_COLUMNS if baseline is not None else []
    if baseline is not None:
        base = load_run(baseline)
        if baseline_block not in base:
            raise KeyError(f"{baseline}: metrics.json has no {baseline_block!r} block (has {sorted(base)})")
        for r in rows:
            for c in rel:
                r[f"{c} vs base"] = r[c] / base[baseline_block][c] - 1.0
    cols = COLUMNS + [f"{c} vs base" for c in rel]
    head = "| run | model | data | loss | " + " | ".join(cols) + " | epochs | wall s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + len(rel) + 6)]
    for r in rows:
        vals = " | ".join([f"{r[c]:.4f}" if c in r else "" for c in COLUMNS]
                          + [f"{100 * r[f'{c} vs base']:+.1f}%" for c in rel])
        lines.append(f"| {Path(r['run']).name} | {r['model']} | {r['data']} | {r['loss']} | {vals} | "
                     f"{r['epochs']} | {r['wall_s']} |")
    if baseline is not None:
        lines.append(f"\nbase: {Path(baseline).name}, block {baseline_block!r}")
    return "\n".join(lines) + "\n", rows
