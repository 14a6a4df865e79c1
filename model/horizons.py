"""Where does a lead on validation come from: the validation target, or the input test adds?

Leave-one-out scores validation as s[:-2] -> s[-2] and test as s[:-1] -> s[-1]. The two differ twice: in the
target (s[-2], the item every run's weights are chosen on, against s[-1]) and in the input (test's holds s[-2],
an item no training sequence has as input). Two more views of the same users pull them apart:

| view | input | target |
|---|---|---|
| valid | s[:-2] | s[-2] |
| valid, 2 ahead | s[:-3] | s[-2] |
| test, 2 ahead | s[:-2] | s[-1] |
| test | s[:-1] | s[-1] |

"valid, 2 ahead" against "test, 2 ahead" holds the horizon and the kind of input (training data only) and changes
the target; "test, 2 ahead" against "test" holds the target and adds s[-2] to the input. A model's lead over
another that shows on the s[-2] views only is about the target (what selection saw); one that shows on every view
but test is about the input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import Split, leave_one_out, load_dataset
from .evaluate import ndcg_gains, rank_targets
from .io import load_run_model
from .recall import recall_ranks
from .report import load_run
from .significance import paired_bootstrap, resampled_means
from .stages import k10_recall
from .train import TrainConfig

VIEWS: tuple[str, ...] = ("valid", "valid, 2 ahead", "test, 2 ahead", "test")


def views(split: Split) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """{view: (inputs, targets)} of the same users, in `split.users` order (see the module's table)."""
    # each user's whole sequence
    seqs = [np.append(h, t) for h, t in zip(split.test_hist, split.test_target, strict=True)]
    short = sum(len(s) < 4 for s in seqs)
    if short:
        raise ValueError(f"{short} users have fewer than 4 items: 'valid, 2 ahead' needs an input of one or more")
    return {"valid": (split.valid_hist, split.valid_target),
            "valid, 2 ahead": ([s[:-3] for s in seqs], split.valid_target),
            "test, 2 ahead": (split.valid_hist, split.test_target),
            "test": (split.test_hist, split.test_target)}


def view_ranks(run_dir: str | Path, split: Split) -> dict[str, dict[str, np.ndarray]]:
    """{"one-stage" | "two-stage": {view: (U,) ranks}} of a finished run's final weights (two-stage: K = 10 with
    the run's split and append option). NOTE: checked against the run's metrics.json (valid and test, one-stage),
    so that the figures are those of the weights its tables report."""
    run_dir = Path(run_dir)
    cfg = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    model, m = load_run_model(run_dir), load_run(run_dir)
    (n, mm), append = k10_recall(cfg)
    out: dict[str, dict[str, np.ndarray]] = {"one-stage": {}, "two-stage": {}}
    for view, (hist, target) in views(split).items():
        out["one-stage"][view] = rank_targets(model, hist, target, split.users, cfg.eval_batch)
        out["two-stage"][view] = recall_ranks(model, hist, target, split.users, n, mm, append=append,
                                              batch_size=cfg.eval_batch)
    for view in ("valid", "test"):
        got, want = float(ndcg_gains(out["one-stage"][view], 10).mean()), m[view]["NDCG@10"]
        if abs(got - want) > 1e-6:
            raise ValueError(f"{run_dir}: its weights give {view} NDCG@10 {got:.6f}, its metrics.json {want:.6f}")
    return out


def contrast_bootstrap(base_x: np.ndarray, run_x: np.ndarray, base_y: np.ndarray, run_y: np.ndarray, k: int = 10,
                       n_boot: int = 2000, seed: int = 0, chunk: int = 100) -> dict:
    """How much more a run gains over a base on view x than on view y: (run_x / base_x - 1) - (run_y / base_y - 1)
    of mean NDCG@k, with a 95% interval from resampling the users (the same users for all four (U,) rank arrays)."""
    g = [ndcg_gains(r, k) for r in (base_x, run_x, base_y, run_y)]
    if len({x.shape for x in g}) != 1:
        raise ValueError(f"the same users' ranks, not shapes {[x.shape for x in g]}")
    if not (g[0].any() and g[2].any()):
        raise ValueError(f"a base view hits no target within {k}: no relative change")
    m = resampled_means(g, n_boot, seed, chunk)
    d = m[:, 1] / np.maximum(m[:, 0], 1e-12) - m[:, 3] / np.maximum(m[:, 2], 1e-12)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {"diff": float(g[1].mean() / g[0].mean() - g[3].mean() / g[2].mean()), "ci95": [float(lo), float(hi)],
            "p_le_0": float(np.mean(d <= 0))}


def horizons_table(runs: dict[str, str], reference: str, pairs: Sequence[tuple[str, str]] = (),
                   n_boot: int = 2000) -> tuple[str, dict]:
    """Markdown: each run's NDCG@10 on every view (one-stage; two-stage at K = 10), its change against
    `reference`'s one-stage figure on the same view (as targets.md measures a gain), and for each (a, b) of `pairs`
    a's two-stage change against b's with a paired bootstrap's 95% interval over users, view by view and as the
    target contrast (`contrast_bootstrap`: "valid, 2 ahead" less "test, 2 ahead"). runs: {name: RUN_DIR} of one data
    set; their weights are needed."""
    if reference not in runs:
        raise ValueError(f"the reference {reference!r} is not one of the runs {sorted(runs)}")
    data = {load_run(d).get("data") for d in runs.values()}
    if len(data) != 1:
        raise ValueError(f"one data set's runs, not {sorted(map(str, data))}")
    ds = str(data.pop())
    split = leave_one_out(load_dataset(ds))
    ranks = {name: view_ranks(d, split) for name, d in runs.items()}
    ndcg = {name: {how: {v: float(ndcg_gains(r[how][v], 10).mean()) for v in VIEWS} for how in r}
            for name, r in ranks.items()}
    ref = ndcg[reference]["one-stage"]
    md = ["| run | recall | " + " | ".join(VIEWS) + " |", "|---|---|" + "---|" * len(VIEWS)]
    for name in runs:
        for how in ("one-stage", "two-stage"):
            cells = [f"{ndcg[name][how][v]:.5f}" + ("" if name == reference and how == "one-stage" else
                                                    f" ({100 * (ndcg[name][how][v] / ref[v] - 1):+.1f}%)")
                     for v in VIEWS]
            md.append(f"| {name} | {how} | " + " | ".join(cells) + " |")
    md.append(f"\nIn brackets: the change against {reference}'s one-stage NDCG@10 on the same view.")
    boots: dict = {}
    if pairs:
        per_view = ["", f"Two-stage NDCG@10 change of one run against another, view by view, with a paired "
                        f"bootstrap's 95% interval over the {len(split.users)} users ({n_boot} resamples):", "",
                    "| runs | " + " | ".join(VIEWS) + " |", "|---|" + "---|" * len(VIEWS)]
        contrast = ["", "The same change on the s[-2] target less on the s[-1] target, both two steps ahead (\"valid, "
                        "2 ahead\" less \"test, 2 ahead\"; > 0: a lead that is about the target validation sees), in "
                        "points, with its paired bootstrap interval:", "",
                    "| runs | difference | 95% interval | P(<= 0) |", "|---|---|---|---|"]
        for a, b in pairs:
            two_a, two_b = ranks[a]["two-stage"], ranks[b]["two-stage"]
            row = boots[f"{a} vs {b}"] = {v: paired_bootstrap(two_b[v], two_a[v], 10, n_boot) for v in VIEWS}
            per_view.append(f"| {a} vs {b} | " + " | ".join(
                f"{100 * r['rel']:+.1f}% ({100 * r['ci95'][0]:+.1f}..{100 * r['ci95'][1]:+.1f})"
                for r in row.values()) + " |")
            x, y = "valid, 2 ahead", "test, 2 ahead"
            c = row["target contrast"] = contrast_bootstrap(two_b[x], two_a[x], two_b[y], two_a[y], n_boot=n_boot)
            contrast.append(f"| {a} vs {b} | {100 * c['diff']:+.1f} | {100 * c['ci95'][0]:+.1f}.."
                            f"{100 * c['ci95'][1]:+.1f} | {c['p_le_0']:.3f} |")
        md += per_view + contrast
    return "\n".join(md) + "\n", {"data": ds, "runs": runs, "reference": reference, "ndcg@10": ndcg, "pairs": boots}


def horizons_report(runs: dict[str, str], reference: str, pairs: Sequence[tuple[str, str]], out: Path) -> str:
    """Writes OUT/horizons_DATA.md and .json (the table of `horizons_table` under the module's explanation)."""
    table, record = horizons_table(runs, reference, pairs)
    out = out / f"horizons_{Path(record['data']).stem}"  # a data set's name, or a file's without its suffix
    head = ["# Validation or test: which target, which input (generated by `recgpt experiments horizons`)\n",
            "Runs: " + ", ".join(f"{k} = `{v}`" for k, v in runs.items()) + ". Views of the same users' "
            "sequences s (`model/horizons.py`): valid s[:-2] -> s[-2] (what weights are chosen on); valid, 2 ahead "
            "s[:-3] -> s[-2]; test, 2 ahead s[:-2] -> s[-1]; test s[:-1] -> s[-1]. Every input but test's is "
            "training data; the history is masked, NDCG@10 over all items.\n"]
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(head) + "\n" + table
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return text
