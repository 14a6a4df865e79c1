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


BLOCKS = ("test", "valid", "test_two_stage")


def split_block(spec: str | Path, default: str) -> tuple[str, str]:
    """'RUN_DIR:BLOCK' (BLOCK one of BLOCKS) -> (RUN_DIR, BLOCK); a plain RUN_DIR takes `default`."""
    run, sep, block = str(spec).rpartition(":")
    return (run, block) if sep and block in BLOCKS else (str(spec), default)


def compare_runs(
    run_dirs: Sequence[str | Path], block: str = "test", baseline: str | Path | Sequence[str | Path] | None = None,
    baseline_block: str = "test",
) -> tuple[str, list[dict]]:
    """One row a run: its model, data, loss, the metrics of its block, epochs, wall time. A run is a folder, or
    FOLDER:BLOCK (test, valid, test_two_stage) to override `block` for that row (e.g. SASRec one-stage beside
    RecGPT two-stage). With `baseline` (one run folder, or several: each row is compared with the baseline of
    its own data set) also each row's relative change in HR@10 and NDCG@10 against that run's `baseline_block`
    (one-stage test by default: "our SASRec" is scored one-stage)."""
    rows = []
    for spec in run_dirs:
        d, blk = split_block(spec, block)
        m = load_run(d)
        if blk not in m:
            raise KeyError(f"{d}: metrics.json has no {blk!r} block (has {sorted(m)})")
        rows.append({"run": d, "block": blk, "model": m.get("model"), "data": m.get("data"), "loss": m.get("loss"),
                     "wall_s": m.get("wall_s"), "epochs": m.get("epochs"), **m[blk]})
    baselines = [baseline] if isinstance(baseline, (str, Path)) else list(baseline or [])
    rel = REL_COLUMNS if baselines else []
    base_of: dict[str | None, tuple[str, dict]] = {}  # data set -> (baseline folder, its block)
    for b in baselines:
        bm = load_run(b)
        if baseline_block not in bm:
            raise KeyError(f"{b}: metrics.json has no {baseline_block!r} block (has {sorted(bm)})")
        if bm.get("data") in base_of:
            raise ValueError(f"two baselines for data set {bm.get('data')!r}: {base_of[bm.get('data')][0]} and {b}")
        base_of[bm.get("data")] = (str(b), bm[baseline_block])
    for r in rows:
        # one baseline compares every row (as before); several compare each row with its own data set's
        _, base = next(iter(base_of.values())) if len(base_of) == 1 else base_of.get(r["data"], (None, None))
        for c in rel:
            if base is not None:
                r[f"{c} vs base"] = r[c] / base[c] - 1.0
    cols = COLUMNS + [f"{c} vs base" for c in rel]
    head = "| run | block | model | data | loss | " + " | ".join(cols) + " | epochs | wall s |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + len(rel) + 7)]
    for r in rows:
        vals = " | ".join([f"{r[c]:.4f}" if c in r else "" for c in COLUMNS]
                          + [f"{100 * r[f'{c} vs base']:+.1f}%" if f"{c} vs base" in r else "" for c in rel])
        lines.append(f"| {Path(r['run']).name} | {r['block']} | {r['model']} | {r['data']} | {r['loss']} | {vals} | "
                     f"{r['epochs']} | {r['wall_s']} |")
    if base_of:
        names = ", ".join(f"{Path(b).name}" for b, _ in base_of.values())
        each = " (each data set its own)" if len(base_of) > 1 else ""
        lines.append(f"\nbase: {names}, block {baseline_block!r}{each}")
    return "\n".join(lines) + "\n", rows
