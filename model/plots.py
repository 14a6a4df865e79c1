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
