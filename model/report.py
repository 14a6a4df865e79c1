"""Markdown and JSON tables comparing runs, built from each run's metrics.json (never typed by hand)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .evaluate import KS

COLUMNS = [f"HR@{k}" for k in KS] + [f"NDCG@{k}" for k in KS]
REL_COLUMNS = ["HR@10", "NDCG@10"]


def refuse_manifest_overwrite(out: Path, manifest: str | Path) -> None:
    """A report written to OUT.json must not replace the manifest it was made from (`--out` pointing at it)."""
    if out.with_suffix(".json").resolve() == Path(manifest).resolve():
        raise ValueError(f"--out would write {out.with_suffix('.json')} over the manifest {manifest}")


def load_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a finished run folder?")
    return json.loads(path.read_text())


def epoch_rows(run_dir: str | Path) -> list[dict]:
    """The run's metrics.jsonl, one dict an epoch of every stage ([] when the folder has none)."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


# pretrain_*: pre-training alone of a `--stages pretrain,prompt` run (stages.earlier_stages_alone)
BLOCKS = ("test", "valid", "test_two_stage", "pretrain_test", "pretrain_valid", "pretrain_test_two_stage")


def split_block(spec: str | Path, default: str) -> tuple[str, str]:
    """'RUN_DIR:BLOCK' (BLOCK one of BLOCKS) -> (RUN_DIR, BLOCK); a plain RUN_DIR takes `default`."""
    run, sep, block = str(spec).rpartition(":")
    return (run, block) if sep and block in BLOCKS else (str(spec), default)


def load_block(spec: str | Path, default: str) -> tuple[str, str, dict]:
    """'RUN_DIR[:BLOCK]' -> (RUN_DIR, BLOCK, the run's whole metrics.json); an error when it lacks the block."""
    d, blk = split_block(spec, default)
    m = load_run(d)
    if blk not in m:
        raise KeyError(f"{d}: metrics.json has no {blk!r} block (has {sorted(m)})")
    return d, blk, m


def selected_on(run_dir: str | Path, m: dict | None = None) -> float | None:
    """The validation NDCG@10 the run's final weights were chosen on: its last stage's mix with its start, else
    that stage's soup, else the score of the stage's last best epoch in metrics.jsonl (two-stage validation for
    prompt-tuning, one-stage otherwise); None when the run records none of them. m: its metrics.json, if read.
    NOTE: a model with a user module serves the vector chosen on validation at the end (`infer_user`): its figure
    is that choice's, the validation of the model as served (runs before session 58 chose their epochs on users'
    own vectors, whatever they served)."""
    m = load_run(run_dir) if m is None else m
    if "infer_user" in m:
        return float(m["infer_user"]["valid_NDCG@10"][m["infer_user"]["chosen"]])
    last = str(m.get("stages", "pretrain")).split(",")[-1]
    for end in ("mix_start", "soup"):
        score = m.get(end, {}).get(last, {}).get("valid_select")
        if score is not None:
            return float(score)
    best = [r for r in epoch_rows(run_dir) if r.get("stage") == last and r.get("best")]
    return float(best[-1].get("valid_two_stage", best[-1]["valid"])["NDCG@10"]) if best else None


def compare_runs(
    run_dirs: Sequence[str | Path], block: str = "test", baseline: str | Path | Sequence[str | Path] | None = None,
    baseline_block: str = "test", selection: bool = False,
) -> tuple[str, list[dict]]:
    """One row a run: its model, data, loss, the metrics of its block, epochs, wall time. A run is a folder, or
    FOLDER:BLOCK (test, valid, test_two_stage) to override `block` for that row (e.g. SASRec one-stage beside
    RecGPT two-stage). With `baseline` (one run folder, or several: each row is compared with the baseline of
    its own data set) also each row's relative change in HR@10 and NDCG@10 against that run's `baseline_block`
    (one-stage test by default: "our SASRec" is scored one-stage). With `selection`, also the validation NDCG@10
    each run's weights were chosen on (`selected_on`)."""
    rows = []
    for spec in run_dirs:
        d, blk, m = load_block(spec, block)
        rows.append({"run": d, "block": blk, "model": m.get("model"), "data": m.get("data"), "loss": m.get("loss"),
                     "wall_s": m.get("wall_s"), "epochs": m.get("epochs"), **m[blk]})
        if selection:
            rows[-1]["valid_selected_on"] = selected_on(d, m)
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
    sel = ["valid NDCG@10 selected on"] if selection else []
    cols = COLUMNS + [f"{c} vs base" for c in rel] + sel
    head = "| run | block | model | data | loss | " + " | ".join(cols) + " | epochs | wall s |"
    lines = [head, "|" + "---|" * (len(cols) + 7)]
    for r in rows:
        chosen = r.get("valid_selected_on")
        vals = " | ".join([f"{r[c]:.4f}" if c in r else "" for c in COLUMNS]
                          + [f"{100 * r[f'{c} vs base']:+.1f}%" if f"{c} vs base" in r else "" for c in rel]
                          + ([f"{chosen:.5f}" if chosen is not None else ""] if selection else []))
        lines.append(f"| {Path(r['run']).name} | {r['block']} | {r['model']} | {r['data']} | {r['loss']} | {vals} | "
                     f"{r['epochs']} | {r['wall_s']} |")
    if base_of:
        names = ", ".join(f"{Path(b).name}" for b, _ in base_of.values())
        each = " (each data set its own)" if len(base_of) > 1 else ""
        lines.append(f"\nbase: {names}, block {baseline_block!r}{each}")
    return "\n".join(lines) + "\n", rows


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as "mean ± std over n seeds"; 0 for one value)."""
    # the main table's convention (experiments._fmt): numpy, ddof=1
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def parse_group(spec: str) -> tuple[str, list[str]]:
    """'LABEL=RUN[:BLOCK],RUN[:BLOCK],...' -> (LABEL, [RUN[:BLOCK], ...]); the label ends at the last '='."""
    label, eq, runs = spec.rpartition("=")
    specs = [s for s in runs.split(",") if s]
    if not (label and eq and specs):
        raise ValueError(f"--group wants LABEL=RUN[:BLOCK],RUN[:BLOCK],..., not {spec!r}")
    return label, specs


def seed_groups(groups: Sequence[tuple[str, Sequence[str]]], block: str = "test",
                baseline: str | None = None) -> tuple[str, list[dict]]:
    """One row a group of runs (the same setting over several seeds): each metric's mean ± sample std over the
    group's runs. With `baseline` (one group's label) also the paired relative change in HR@10 and NDCG@10: the
    i-th run of a group against the i-th run of the baseline group, which must have the same seed, summarised as
    mean ± std and min..max over the pairs, and how many pairs reach +3%. Pairing by seed removes what a seed
    moves in both (the data order, the shared pre-training) from the spread of the difference."""
    rows, runs_of = [], {}
    for label, specs in groups:
        if label in runs_of:
            raise ValueError(f"two groups named {label!r}")
        runs = []
        for spec in specs:
            d, blk, m = load_block(spec, block)
            runs.append({"run": d, "block": blk, "seed": m.get("seed"), "data": m.get("data"), **m[blk]})
        if len({r["data"] for r in runs}) > 1:
            raise ValueError(f"group {label!r} mixes data sets: {sorted({str(r['data']) for r in runs})}")
        runs_of[label] = runs
        row = {"group": label, "n": len(runs), "data": runs[0]["data"], "seeds": [r["seed"] for r in runs],
               "runs": [f"{r['run']}:{r['block']}" for r in runs]}
        for c in COLUMNS:
            row[c], row[f"{c} std"] = mean_std([r[c] for r in runs])
        rows.append(row)
    if baseline is not None:
        if baseline not in runs_of:
            raise ValueError(f"--paired-baseline {baseline!r} is not a group (groups: {list(runs_of)})")
        base = runs_of[baseline]
        for row in rows:
            runs = runs_of[row["group"]]
            if [r["seed"] for r in runs] != [b["seed"] for b in base] or runs[0]["data"] != base[0]["data"]:
                raise ValueError(f"group {row['group']!r} (seeds {row['seeds']}) does not pair with {baseline!r} "
                                 f"(seeds {[b['seed'] for b in base]}): same data set and seeds, in the same order")
            for c in REL_COLUMNS:
                rel = [r[c] / b[c] - 1.0 for r, b in zip(runs, base, strict=True)]
                row[f"{c} vs base"] = rel
                row[f"{c} vs base mean"], row[f"{c} vs base std"] = mean_std(rel)
    rel = REL_COLUMNS if baseline is not None else []
    head = ("| group | n | seeds | " + " | ".join(COLUMNS)
            + "".join(f" | {c} vs base (paired) | {c} pairs >= +3%" for c in rel) + " |")
    lines = [head, "|" + "---|" * (3 + len(COLUMNS) + 2 * len(rel))]
    for r in rows:
        cells = [f"{r[c]:.4f} ± {r[f'{c} std']:.4f}" for c in COLUMNS]
        for c in rel:
            v = r[f"{c} vs base"]
            cells += [f"{100 * r[f'{c} vs base mean']:+.1f}% ± {100 * r[f'{c} vs base std']:.1f} "
                      f"({100 * min(v):+.1f}..{100 * max(v):+.1f})", f"{sum(x >= 0.03 for x in v)}/{len(v)}"]
        lines.append(f"| {r['group']} | {r['n']} | {','.join(map(str, r['seeds']))} | " + " | ".join(cells) + " |")
    lines.append("\nmean ± sample std over each group's runs" + (f"; paired: each run against the run of group "
                                                                 f"{baseline!r} with its seed" if rel else ""))
    lines += [f"- {label}: " + ", ".join(f"{Path(r['run']).name}:{r['block']}" for r in runs)
              for label, runs in runs_of.items()]
    return "\n".join(lines) + "\n", rows


def stop_reason(run_dir: Path, m: dict) -> tuple[str, int]:
    """(how the run's last stage ended, that stage's epochs): see `stopped_by`. The epochs are counted in
    metrics.jsonl, else taken from metrics.json (a one-stage run)."""
    cfg = json.loads((run_dir / "config.json").read_text())
    stage = str(m.get("stages", "pretrain")).split(",")[-1]
    n = sum(r.get("stage") == stage for r in epoch_rows(run_dir)) or int(m["epochs"])
    best = int(m.get("best_epoch", {}).get(stage, 0))
    if n - best >= int(cfg.get("patience", 10)):
        return "patience", n
    if n >= int(cfg.get("epochs", 0) or 1 << 30):
        return "epoch limit", n
    return ("time cap" if cfg.get("max_minutes") else "unknown"), n


def stopped_by(run_dir: str | Path, m: dict | None = None) -> str:
    """How the run's last stage ended: 'patience' (early stopping: converged on validation), 'time cap',
    'epoch limit', or 'unknown' (e.g. stopped by hand). NOTE: only 'patience' makes a converged run."""
    return stop_reason(Path(run_dir), load_run(run_dir) if m is None else m)[0]
