"""Training-curve plots (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import json
from pathlib import Path


def plot_curves(metrics_jsonl: str | Path, out_png: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line.strip()]
    if not rows:
        return
    x = list(range(1, len(rows) + 1))  # epochs of all stages, one after the other
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(x, [r["loss"] for r in rows], marker=".")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    for key in ("HR@10", "NDCG@10", "HR@50", "NDCG@50"):
        if key in rows[0].get("valid", {}):
            b.plot(x, [r["valid"][key] for r in rows], marker=".", label=f"valid {key}")
    if any("valid_two_stage" in r for r in rows):
        xs = [i for i, r in zip(x, rows, strict=True) if "valid_two_stage" in r]
        b.plot(xs, [r["valid_two_stage"]["NDCG@10"] for r in rows if "valid_two_stage" in r], marker=".",
               label="valid two-stage NDCG@10")
    for i in range(1, len(rows)):
        if rows[i].get("stage") != rows[i - 1].get("stage"):
            for ax in (a, b):
                ax.axvline(x[i] - 0.5, color="grey", ls="--", lw=0.8)
    b.set_xlabel("epoch")
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_selection(rows: list[dict], out_png: str | Path, base: tuple[str, float, float] | None = None,
                   target: float = 0.03, title: str = "") -> None:
    """Does validation pick what test confirms? One point a run: the validation NDCG@10 its weights were chosen on
    (x, `report.selected_on`) against its table block's NDCG@10 (y), rows as `report.compare_runs(...,
    selection=True)` returns them. base: (label, its validation, its test NDCG@10) draws the baseline's lines and
    the line `target` above its test figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r["valid_selected_on"], r["NDCG@10"], Path(r["run"]).name) for r in rows
           if r.get("valid_selected_on") is not None]
    if not pts:
        raise ValueError("no run records the validation its weights were chosen on: nothing to plot")
    fig, ax = plt.subplots(figsize=(10, 4.8))
    fig.subplots_adjust(left=0.08, right=0.62, bottom=0.12, top=0.9)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], zorder=3)
    for i, (x, y, _) in enumerate(pts, 1):  # numbers on the points, names listed beside the axes: they overlap less
        ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    fig.text(0.64, 0.9, "\n".join(f"{i}: {name}" for i, (_, _, name) in enumerate(pts, 1)), fontsize=7, va="top",
             family="monospace")
    if base is not None:
        label, bx, by = base
        ax.axhline(by, color="grey", ls="--", lw=0.9, label=f"{label}: test")
        ax.axhline(by * (1 + target), color="tab:red", ls=":", lw=0.9, label=f"{label} test +{100 * target:g}%")
        ax.axvline(bx, color="grey", ls="-.", lw=0.9, label=f"{label}: validation")
    ax.set_xlabel("validation NDCG@10 the weights were chosen on")
    ax.set_ylabel(" / ".join(sorted({r["block"] for r in rows})) + " NDCG@10")
    ax.margins(x=0.1, y=0.1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_targets(summary: list[dict], out_png: str | Path, target: float = 0.03) -> None:
    """RecGPT's paired NDCG@10 gain over our SASRec, one bar a (data set, setting) of `targets.verdicts`: the mean
    over the pairs, whiskers from the lowest to the highest pair; hatched bars are capped (not converged) runs. Rows
    are labelled with the setting's number in targets.md (`#`) and its name cut to fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.45 * len(summary) + 1.6))
    y = list(range(len(summary)))[::-1]  # the first row on top, as in the table
    for yi, v in zip(y, summary, strict=True):
        mean, lo, hi = (100 * v[k] for k in ("gain mean", "gain min", "gain max"))
        ax.barh(yi, mean, color="tab:green" if v["converged"] else "lightgrey",
                hatch="" if v["converged"] else "//", edgecolor="black", lw=0.5)
        if v["n"] > 1:
            ax.plot([lo, hi], [yi, yi], color="black", lw=1.2)
    ax.axvline(100 * target, color="tab:red", ls="--", lw=1, label=f"target +{100 * target:.0f}%")
    ax.axvline(0, color="black", lw=0.6)
    labels = [f"#{v.get('#', i)} {v['data']}: {_cut(v['setting'], 70)} (n={v['n']})" for i, v in enumerate(summary, 1)]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("RecGPT two-stage NDCG@10 vs our SASRec (%); grey hatched: capped runs")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(out_png, dpi=110, bbox_inches="tight")  # the setting labels
    plt.close(fig)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3].rstrip() + "..."


def plot_targets_headline(current: list[dict], out_png: str | Path, target: float = 0.03) -> None:
    """The code's defaults against our SASRec, one row a data set (`targets.current_settings`): a bar for the mean
    paired NDCG@10 gain, one dot a seed's pair, the mean written beside; hatched bars are capped runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.7 * len(current) + 1.4))
    y = list(range(len(current)))[::-1]
    for yi, v in zip(y, current, strict=True):
        mean = 100 * v["gain mean"]
        ax.barh(yi, mean, height=0.6, color="tab:green" if v["converged"] else "lightgrey",
                hatch="" if v["converged"] else "//", edgecolor="black", lw=0.5, alpha=0.8)
        gains = [100 * g for g in v["seed gains"]]
        ax.scatter(gains, [yi] * len(gains), color="black", s=14, zorder=3)
        ax.annotate(f"{mean:+.1f}% ({v['pairs >= +3%']}/{v['n']} pairs >= +{100 * target:g}%)",
                    (max([mean, *gains]), yi), textcoords="offset points", xytext=(6, -3), fontsize=8)
    ax.axvline(100 * target, color="tab:red", ls="--", lw=1, label=f"target +{100 * target:g}%")
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(y, [f"{v['data']} (n={v['n']})" for v in current], fontsize=9)
    ax.set_xlim(min(0.0, *(100 * g for v in current for g in v["seed gains"])) - 0.5,
                max(100 * target, *(100 * g for v in current for g in v["seed gains"])) + 4.0)
    ax.set_xlabel("RecGPT two-stage NDCG@10 vs our SASRec (%): bar the mean, dots the seeds; hatched: a capped run")
    ax.set_title("The code's defaults a data set (docs/results/targets.md)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_options(rows: list[dict], datasets: list[str], options: list[str], out_png: str | Path) -> None:
    """Each option's test two-stage NDCG@10 change against its SASRec (`options.option_rows`): one dot a run, one row
    an option, one colour (and a small offset) a data set; hollow dots did not stop by patience."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.38 * len(options) + 1.6))
    colours = dict(zip(datasets, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"], strict=False))
    for j, ds in enumerate(datasets):
        dy = 0.3 - 0.6 * j / max(1, len(datasets) - 1)  # the first data set on top within a row
        for k, converged in enumerate((True, False)):
            pts = [(100 * r["gain NDCG@10"], len(options) - 1 - options.index(r["option"]) + dy) for r in rows
                   if r["data"] == ds and (r["stopped"] == "patience") == converged]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.scatter(x, y, s=28, color=colours.get(ds) if converged else "none", edgecolors=colours.get(ds),
                           linewidths=1.2, label=ds if k == 0 else f"{ds} (not converged)", zorder=3)
    ax.axvline(3, color="tab:red", ls="--", lw=1, label="+3% target")
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(range(len(options))[::-1], [o if len(o) < 60 else o[:57] + "..." for o in options], fontsize=7)
    ax.set_ylim(-0.6, len(options) - 0.4)
    ax.set_xlabel("test two-stage NDCG@10 vs its SASRec (%), one dot a run")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(axis="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110, bbox_inches="tight")
    plt.close(fig)
