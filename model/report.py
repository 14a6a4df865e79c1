"""Markdown and JSON tables comparing runs, built from each run's metrics.json (never typed by hand)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .evaluate import KS

COLUMNS = [f"HR@{k}" for k in KS] + [f"NDCG@{k}" for k in KS]


def load_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a finished run folder?")
    return json.loads(path.read_text())


def compare_runs(run_dirs: Sequence[str | Path], block: str = "test") -> tuple[str, list[dict]]:
    """One row a run: its model, data, loss, the metrics of `block` (test, valid, test_two_stage), wall time."""
    rows = []
    for d in run_dirs:
        m = load_run(d)
        if block not in m:
            raise KeyError(f"{d}: metrics.json has no {block!r} block (has {sorted(m)})")
        rows.append({"run": str(d), "model": m.get("model"), "data": m.get("data"), "loss": m.get("loss"),
                     "wall_s": m.get("wall_s"), "epochs": m.get("epochs"), **m[block]})
    head = "| run | model | data | loss | " + " | ".join(COLUMNS) + " | wall s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 5)]
    for r in rows:
        vals = " | ".join(f"{r[c]:.4f}" if c in r else "" for c in COLUMNS)
        lines.append(f"| {Path(r['run']).name} | {r['model']} | {r['data']} | {r['loss']} | {vals} | {r['wall_s']} |")
    return "\n".join(lines) + "\n", rows
