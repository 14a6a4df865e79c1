"""The paper's tables, generated: the main table (models x datasets x seeds) and the N/M split tables (the
ablations on one data set: model/ablations.py).

Each cell is a training run (model/sweep.py: reused when its metrics.json exists, so a killed sweep resumes,
and shared by two copies of the command run side by side); the markdown tables and PNG plots in the output
folder are written from those files only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import leave_one_out, load_dataset
from .evaluate import KS, metrics_from_ranks
from .io import load_run_model
from .recall import DEFAULT_SPLITS, evaluate_recall, parse_append, split_grid_ranks
from .report import load_run
from .sweep import Job, finished, train_jobs
from .train import TrainConfig
from .user_module import saved_user_module

DATASETS = ("beauty", "sports", "toys", "yelp")
NAMES = {"beauty": "Beauty", "sports": "Sports", "toys": "Toys", "yelp": "Yelp"}
COLS = [f"HR@{k}" for k in KS] + [f"NDCG@{k}" for k in KS]

# row label -> (model, loss, stages, metrics block); "prompt0" is prompt-tuning's control: the same fine-tuning
# (init, lr, loss, selection, budget) with prompt length 0, so that "+ prompt-tuning" is not just "trained longer"
MAIN_ROWS: dict[str, tuple[str, str | None, str, str]] = {
    "pop": ("pop", None, "pretrain", "test"),
    "gru4rec": ("gru4rec", "ce", "pretrain", "test"),
    "bert4rec": ("bert4rec", "ce", "pretrain", "test"),
    "comirec": ("comirec", "ce", "pretrain", "test"),
    "sasrec (bce)": ("sasrec", "bce", "pretrain", "test"),
    "sasrec (ce)": ("sasrec", "ce", "pretrain", "test"),
    "recgpt pre-trained only": ("recgpt", "ce", "pretrain", "test"),
    "recgpt + fine-tuning without prompts (control)": ("recgpt", "ce", "pretrain,prompt0", "test_two_stage"),
    "recgpt + prompt-tuning": ("recgpt", "ce", "pretrain,prompt", "test"),
    "recgpt + prompt-tuning + two-stage recall": ("recgpt", "ce", "pretrain,prompt", "test_two_stage"),
}
FULL_ROW, CONTROL_ROW = "recgpt + prompt-tuning + two-stage recall", "recgpt + fine-tuning without prompts (control)"


def _run_dir(runs: Path, ds: str, model: str, loss: str | None, stages: str, seed: int) -> Path:
    return runs / f"{ds}-{model}-{loss}-{stages.replace(',', '+')}-s{seed}"


def _main_job(runs: Path, ds: str, seed: int, model: str, loss: str | None, stages: str) -> Job:
    """A main-table cell's run. RecGPT's prompt-tuning rows fine-tune the pre-trained-only row's run (the same
    model, not a second pre-training), so the rows differ by prompt-tuning alone; their wall time is the prompt
    stage's."""
    out, changes = _run_dir(runs, ds, model, loss, stages, seed), {"data": ds, "model": model, "loss": loss,
                                                                   "seed": seed, "stages": stages}
    if stages in ("pretrain,prompt", "pretrain,prompt0"):
        init = str(_run_dir(runs, ds, "recgpt", loss, "pretrain", seed))
        extra = {"prompt_length": 0, "two_stage_append": 1} if stages.endswith("0") else {}
        changes.update(stages="prompt", init=init, extra=extra)
    return Job(out, changes)


def _fmt(values: list[float], n_seeds: int) -> str:
    if not values:
        return "-"
    # sample standard deviation (ddof=1), as papers report "mean ± std over n seeds"
    text = f"{values[0]:.4f}" if len(values) == 1 else f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"
    return text if len(values) == n_seeds else f"{text} (n={len(values)})"


def _pct(a: float, b: float) -> str:
    return f"{100 * (a / b - 1):+.1f}%" if b else "n/a"


def _targets(ds: str, means: dict[str, dict[str, float]], capped: bool) -> list[str]:
    """Issue targets, answered from this data set's rows (test, mean over the seeds)."""
    sas = {k: means[k] for k in ("sasrec (bce)", "sasrec (ce)") if k in means}
    if FULL_ROW not in means or not sas:
        return []
    best = max(sas, key=lambda k: sas[k]["NDCG@10"])
    full, s = means[FULL_ROW], sas[best]
    lines = [f"\nFull RecGPT vs our SASRec ({best}, the better on test NDCG@10): NDCG@10 {full['NDCG@10']:.4f} vs "
             f"{s['NDCG@10']:.4f} ({_pct(full['NDCG@10'], s['NDCG@10'])}; target +3%), HR@10 {full['HR@10']:.4f} vs "
             f"{s['HR@10']:.4f} ({_pct(full['HR@10'], s['HR@10'])})."]
    if CONTROL_ROW in means:
        c = means[CONTROL_ROW]
        lines.append(f"Against the equal-budget control (the same fine-tuning without prompt items): NDCG@10 "
                     f"{full['NDCG@10']:.4f} vs {c['NDCG@10']:.4f} ({_pct(full['NDCG@10'], c['NDCG@10'])}).")
    if capped:
        lines.append("NOTE: these runs are capped by training time: the RecGPT rows after pre-training had a second "
                     "capped stage, SASRec one. The control row, not SASRec, is the equal-budget comparison for "
                     "prompt-tuning; RecGPT against SASRec at convergence needs uncapped runs.")
    return lines


def _user_vector_table(rows: dict[str, list[dict]]) -> list[str]:
    """NDCG@10 with each user's own vector and with the shared unknown-user vector (mean over the seeds);
    validation chose, test is recorded for the record (a run made before it was recorded shows -)."""
    if not rows:
        return []
    md = ["\nInference user vector of the RecGPT runs (NDCG@10; validation, two-stage after fine-tuning, "
          "chooses; test is for the record):\n",
          "| run | seeds | valid own | valid unknown | test own | test unknown | chosen |",
          "|---|---|---|---|---|---|---|"]
    for label, recs in rows.items():
        cell = []
        for block, how in [("valid_NDCG@10", "own"), ("valid_NDCG@10", "unknown"),
                           ("test_NDCG@10_not_for_selection", "own"), ("test_NDCG@10_not_for_selection", "unknown")]:
            v = [r[block][how] for r in recs if block in r]
            cell.append(_fmt(v, len(recs)))
        chosen = ", ".join(sorted({r["chosen"] for r in recs}))
        md.append(f"| the run of '{label}' | {len(recs)} | " + " | ".join(cell) + f" | {chosen} |")
    return md


def main_jobs(datasets: list[str], seeds: list[int], runs: Path) -> dict[tuple[str, str, int], Job]:
    """The main table's runs by (data set, row, seed)."""
    return {(ds, label, seed): _main_job(runs, ds, seed, *MAIN_ROWS[label][:3])
            for ds in datasets for label in MAIN_ROWS for seed in seeds}


def main_table(datasets: list[str], seeds: list[int], runs: Path, out: Path, base: TrainConfig,
               log: Callable[[str], None] = print, train: bool = True) -> str:
    """Train (or reuse) every cell and write main.md; train=False tabulates the cells already there."""
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# Main table (seeds {', '.join(map(str, seeds))}; mean ± sample std over the seeds)\n",
          "Generated by `recgpt experiments main`; every figure is read from a run's metrics.json. "
          "`(n=...)`: a cell with fewer seeds than the others.\n"]
    walls = ["| dataset | row | wall s (per seed) | epochs (best) | cap per stage, min | threads | user module |",
             "|---|---|---|---|---|---|---|"]
    jobs = main_jobs(datasets, seeds, runs)
    if train:
        train_jobs(base, list(jobs.values()), log)
    for ds in datasets:
        md += [f"\n## {NAMES.get(ds, ds)}\n", "| model | " + " | ".join(COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
        means: dict[str, dict[str, float]] = {}
        any_cap = False
        user_rows: dict[str, list[dict]] = {}  # recgpt rows: the inference user vector's figures, a seed each
        for label, (model, _, _, block) in MAIN_ROWS.items():
            vals: dict[str, list[float]] = {c: [] for c in COLS}
            w, ep, caps, threads, users = [], [], set(), set(), set()
            for seed in seeds:
                path = jobs[ds, label, seed].out
                if not finished(path):  # (--report-only: a run not trained)
                    continue
                m = load_run(path)
                for c in COLS:
                    vals[c].append(m[block][c])
                if "infer_user" in m and label != FULL_ROW:  # (the full row is the prompt row's run)
                    user_rows.setdefault(label, []).append(m["infer_user"])
                w.append(str(m["wall_s"]))
                ep.append(f"{m['epochs']} ({', '.join(str(e) for e in m.get('best_epoch', {}).values()) or '-'})")
                run_cfg = json.loads((path / "config.json").read_text())
                caps.add(run_cfg.get("max_minutes"))
                any_cap = any_cap or bool(run_cfg.get("max_minutes"))
                threads.add(run_cfg.get("threads"))
                users.add(("on" if saved_user_module(run_cfg) else "off") if model == "recgpt" else "-")
            if not vals["NDCG@10"]:
                continue
            means[label] = {c: float(np.mean(v)) for c, v in vals.items()}
            md.append(f"| {label} | " + " | ".join(_fmt(vals[c], len(seeds)) for c in COLS) + " |")
            walls.append(f"| {ds} | {label} | {', '.join(w)} | {', '.join(ep)} | "
                         f"{', '.join(str(c or 'none') for c in sorted(caps, key=str))} | "
                         f"{', '.join(map(str, sorted(threads)))} | {', '.join(sorted(users))} |")
        md += _targets(ds, means, any_cap) + _user_vector_table(user_rows)
    text = ("\n".join(md) + "\n\n## Wall time (2-core CPU), epochs and training cap\n\n"
            "The prompt-tuning rows (and their control) fine-tune the pre-trained-only row's run: their wall time "
            "and epochs are the prompt stage's alone. A capped run stopped at its cap (best epoch kept), not at "
            "early stopping. User module: whether the RecGPT runs had the paper's user module (on by default before "
            "session 6, off since; `--set user_module=true` trains the paper's model).\n\n" + "\n".join(walls) + "\n")
    (out / "main.md").write_text(text)
    return text


def _plot(xs: list, series: dict[str, list[float]], xlabel: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, ys in series.items():
        ax.plot([str(x) for x in xs], ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SPLIT_GRID: dict[int, list[int]] = {10: list(range(5, 11)), 20: [10, 14, 16, 18, 19, 20], 50: [25, 35, 40, 45, 48, 50]}


def split_curves(model, split, append: str | int) -> dict[int, dict[int, float]]:
    """Test NDCG@K of the two-stage recall for each K and N of SPLIT_GRID ({K: {N: NDCG@K}}; with a count j
    appended, the splits with N >= j). A count takes one recall for the whole grid (`split_grid_ranks`); "all"
    appends N items, so each split is its own recall."""
    hist, target, users = split.test_hist, split.test_target, split.users
    if parse_append(append) in ("all", "reversed"):
        return {K: {n: evaluate_recall(model, hist, target, users, {K: (n, K - n)}, append=append)[f"NDCG@{K}"]
                    for n in ns} for K, ns in SPLIT_GRID.items()}
    ranks = split_grid_ranks(model, hist, target, users, SPLIT_GRID, int(append))
    return {K: {n: metrics_from_ranks(ranks[(K, n)], [K])[f"NDCG@{K}"] for n in ns if (K, n) in ranks}
            for K, ns in SPLIT_GRID.items()}


def split_ablation(ds: str, models: dict, split, out: Path, appends: tuple = (1, "all"),
                   results: dict | None = None) -> list[str]:
    """Test NDCG@K of the two-stage recall for each N (M = K - N), each model and append option; a plot a K.
    results, when given, receives {(K, model name, append): {N: NDCG@K}}."""
    curves = {(mname, append): split_curves(model, split, append) for mname, model in models.items()
              for append in appends}
    md = []
    for K, ns in SPLIT_GRID.items():
        md += [f"\n## N/M split at K={K} (test NDCG@{K}; N=K is one-stage recall)\n",
               "| model | append | " + " | ".join(f"N={n}" for n in ns) + " |", "|---" * (len(ns) + 2) + "|"]
        series = {}
        for mname in models:
            for append in appends:
                vals = [curves[(mname, append)][K].get(n, float("nan")) for n in ns]
                md.append(f"| {mname} | {append} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
                series[f"{mname}, append {append}"] = vals
                if results is not None:
                    results[(K, mname, append)] = dict(zip(ns, vals, strict=True))
        _plot(ns, series, "N (stage-1 items)", f"{NAMES.get(ds, ds)}: N/M split at K={K}", out / f"{ds}_split_K{K}.png")
    return md


def interaction(ds: str, models: dict[str, tuple[object, int]], split, out: Path) -> list[str]:
    """Prompt length x N: each prompt-tuned model appends its own prompt length k at stage 2 (what it was
    tuned for); models: name -> (model, k); test NDCG@K for each N of the grid, a plot a K (a line a model)."""
    curves = {mname: split_curves(model, split, k) for mname, (model, k) in models.items()}
    md = ["\n## Prompt length x N/M split (each prompt-tuned run appends its own k items at stage 2)\n"]
    for K, ns in SPLIT_GRID.items():
        md += [f"\n### K={K} (test NDCG@{K}; N=K is one-stage recall)\n",
               "| model | k | " + " | ".join(f"N={n}" for n in ns) + " | best N |", "|---" * (len(ns) + 3) + "|"]
        series = {}
        for mname, (_, k) in models.items():
            vals = [curves[mname][K].get(n, float("nan")) for n in ns]
            best = ns[int(np.nanargmax(vals))]
            md.append(f"| {mname} | {k} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | {best} |")
            series[f"{mname} (k={k})"] = vals
        _plot(ns, series, "N (stage-1 items)", f"{NAMES.get(ds, ds)}: prompt length x split, K={K}",
              out / f"{ds}_interaction_K{K}.png")
    return md


def split_claims(results: dict[tuple[int, str, object], dict[int, float]], tuned: list[str],
                 pretrained: list[str]) -> list[str]:
    """The paper's split claims as rows of a `| claim | our numbers | verdict |` table, from split_ablation's
    results ({(K, model name, append): {N: NDCG@K}}): for each prompt-tuned model, the best N appending 1 at
    K = 10 ("N = 8 or 9 is best") and at K = 20, 50 (left open by the paper); for each model without a prompt
    stage, "two-stage recall without prompt-tuning hurts" at each K, judged at the default split (N = 9 of 10,
    18 of 20, 45 of 50) with the best N beside it. N = K is one-stage recall: a gain is over the same model's
    one-stage list."""
    md = []
    for name in tuned:
        for K in SPLIT_GRID:
            curve = results.get((K, name, 1))
            if not curve:
                continue
            best_n = max(curve, key=curve.get)
            one = curve[K]
            claim = "N = 8 or 9 of K = 10 is best" if K == 10 else f"(open) the best split at K = {K}"
            verdict = ("agree" if best_n in (8, 9) else "disagree") if K == 10 else (
                "two-stage helps" if best_n < K else "one-stage is best")
            md.append(f"| {claim} | {name}, append 1: best N={best_n} (NDCG@{K} {curve[best_n]:.4f}; "
                      f"one-stage {one:.4f}, {_pct(curve[best_n], one)}) | {verdict} |")
    for name in pretrained:
        for K in SPLIT_GRID:
            curve, default_n = results.get((K, name, 1)), DEFAULT_SPLITS[K][0]
            if not curve or default_n not in curve:
                continue
            two = {n: v for n, v in curve.items() if n < K}
            best_n = max(two, key=two.get)
            md.append(f"| two-stage recall without prompt-tuning hurts | {name}, K={K} append 1: N={default_n} "
                      f"{curve[default_n]:.4f} vs one-stage {curve[K]:.4f} ({_pct(curve[default_n], curve[K])}); "
                      f"best N={best_n} ({_pct(two[best_n], curve[K])}) | "
                      f"{'agree' if curve[default_n] < curve[K] else 'disagree'} |")
    return md


def splits_report(ds: str, runs: dict[str, str], out: Path) -> str:
    """The N/M split tables and plots for already-trained runs (`name=RUN_DIR[:checkpoint]`)."""
    out.mkdir(parents=True, exist_ok=True)
    split = leave_one_out(load_dataset(ds))
    models, tuned, pretrained = {}, {}, []
    for name, spec in runs.items():
        path, _, ckpt = spec.partition(":")
        models[name] = load_run_model(path, ckpt or "best")
        cfg = json.loads((Path(path) / "config.json").read_text())
        k = int(cfg["extra"].get("prompt_length", 1))
        if "prompt" not in cfg["stages"].split(",") or ckpt.startswith("pretrain"):
            pretrained.append(name)  # no prompt-tuning: a pre-trained run, or a run's `pretrain.*` checkpoint
        elif k >= 1 and not ckpt:
            # a run's final model with prompts goes into the prompt length x split table and the split claims
            tuned[name] = (models[name], k)
    md = [f"# Two-stage recall: N/M split on {NAMES.get(ds, ds)}\n",
          "Generated by `recgpt experiments splits`; models: " + ", ".join(f"{k} = `{v}`" for k, v in runs.items())
          + ". `append`: what stage 2 appends (1 = the top stage-1 item, as the authors' code; all = all N).\n"]
    results: dict = {}
    md += split_ablation(ds, models, split, out, results=results)
    if len(tuned) >= 2:
        md += interaction(ds, tuned, split, out)
    rows = split_claims(results, list(tuned), pretrained)
    if rows:
        md += ["\n## The paper's split claims, answered (generated)\n", "| claim | our numbers | verdict |",
               "|---|---|---|", *rows]
    text = "\n".join(md) + "\n"
    (out / f"splits_{ds}.md").write_text(text)
    return text
