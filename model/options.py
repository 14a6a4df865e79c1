"""What each prompt-stage option adds on each data set: every option's run against the SASRec it was fine-tuned from,
from the runs' metrics.json and config.json.

A manifest (JSON, written by people: which runs were fine-tuned from which SASRec, never a figure or a label):

    {"groups": [{"data": "toys", "sasrec": "runs/toys-s28-sasrec-ce-s1",
                 "runs": ["runs/toys-s28-recgpt-k1-s1", "runs/toys-s28-recgpt-k3-s1", ...]}, ...]}

Run paths are relative to the manifest's folder. A run's option is read off its config.json (the `--set` options
that differ from the defaults), so a row's label cannot disagree with what was trained. Each run is scored as
RecGPT is (prompt-tuning + two-stage recall, `test_two_stage`) against its SASRec's one-stage test, as in
`targets.md`; beside it the validation its weights were chosen on, against its SASRec's, since the defaults are
chosen on validation, never on test.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from .plots import plot_options
from .prompt import PromptConfig
from .report import load_run, mean_std, refuse_manifest_overwrite, selected_on, stop_reason
from .stages import (
    DATA_PROMPT_DEFAULTS,
    DEFAULT_MIX_START,
    DEFAULT_PRETRAIN_SOUP,
    DEFAULT_PROMPT_LR,
    DEFAULT_PROMPT_SOUP,
)
from .user_module import DEFAULT_USER_MODULE

DEFAULTS = {f"prompt_{f.name}": f.default for f in fields(PromptConfig)} | {
    "prompt_lr": DEFAULT_PROMPT_LR, "user_module": DEFAULT_USER_MODULE, "pretrain_soup": DEFAULT_PRETRAIN_SOUP,
    "soup": DEFAULT_PROMPT_SOUP, "mix_start": DEFAULT_MIX_START}
DEFAULT_LABEL = "default (prompt_length=1, placement last, greedy, every step, nothing frozen, full CE)"
CONTROL_LABEL = "prompt_length=0 (control: plain fine-tuning, no prompts)"


def option_label(extra: dict) -> str:
    """A run's `--set` options that differ from the defaults, 'key=value, ...' in key order (DEFAULT_LABEL when
    none do)."""
    diff = {k: v for k, v in sorted(extra.items()) if k not in DEFAULTS or DEFAULTS[k] != v}
    if diff == {"prompt_length": 0}:
        return CONTROL_LABEL
    return ", ".join(f"{k}={v}" for k, v in diff.items()) or DEFAULT_LABEL


def _load_of(run_dir: Path, data: str) -> dict:
    """The run's metrics.json; an error when the run is of another data set than its group."""
    m = load_run(run_dir)
    if m.get("data") != data:
        raise ValueError(f"{run_dir}: data {m.get('data')!r}, but its group is {data!r}")
    return m


def option_rows(manifest: str | Path) -> list[dict]:
    """One row a run of the manifest: its data set, option, test two-stage NDCG@10 and HR@10 against its SASRec's
    one-stage test, the validation NDCG@10 its weights were chosen on against its SASRec's, and how it stopped."""
    manifest = Path(manifest)
    rows = []
    for g in json.loads(manifest.read_text())["groups"]:
        s_dir = manifest.parent / g["sasrec"]
        s = _load_of(s_dir, g["data"])
        s_valid = selected_on(s_dir, s)
        for rel in g["runs"]:
            d = manifest.parent / rel
            m = _load_of(d, g["data"])
            if "test_two_stage" not in m:
                raise KeyError(f"{d}: metrics.json has no 'test_two_stage' block (a prompt-tuned run has one)")
            extra = json.loads((d / "config.json").read_text()).get("extra", {})
            t, valid = m["test_two_stage"], selected_on(d, m)
            stop, epochs = stop_reason(d, m)
            rows.append({
                "data": g["data"], "option": option_label(extra), "run": d.name, "seed": m.get("seed"),
                "sasrec": s_dir.name,
                "NDCG@10": t["NDCG@10"], "HR@10": t["HR@10"],
                "gain NDCG@10": t["NDCG@10"] / s["test"]["NDCG@10"] - 1.0,
                "gain HR@10": t["HR@10"] / s["test"]["HR@10"] - 1.0,
                "valid": valid, "sasrec valid": s_valid,
                "valid gain": None if valid is None or not s_valid else valid / s_valid - 1.0,
                "stopped": stop, "epochs": epochs})
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def _pivot(rows: list[dict], datasets: list[str], options: list[str], key: str) -> list[str]:
    """One line an option, one cell a data set: `key` of each of its runs (' / ' between runs; * after a run that
    did not stop by patience)."""
    lines = ["| option | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    for o in options:
        cells = [" / ".join(_pct(r[key]) + ("" if r["stopped"] == "patience" else "*")
                            for r in rows if r["option"] == o and r["data"] == ds) or "" for ds in datasets]
        lines.append(f"| {o} | " + " | ".join(cells) + " |")
    return lines


def _gains(rows: list[dict], option: str, key: str) -> dict[int, list[float]]:
    """`key` of each run of `option` in `rows`, by seed."""
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        if r["option"] == option and r[key] is not None:
            by_seed.setdefault(r["seed"], []).append(r[key])
    return by_seed


def _against_default(rows: list[dict], option: str, key: str) -> list[tuple[int, float]]:
    """(seed, `key` of a run of `option` minus the default's on that seed) for each run of `option` on a seed the
    default has runs of (the default's runs of a seed averaged: the SASRec start differs between seeds)."""
    default = {s: sum(g) / len(g) for s, g in _gains(rows, DEFAULT_LABEL, key).items()}
    return [(s, x - default[s]) for s, g in sorted(_gains(rows, option, key).items()) if s in default for x in g]


def valid_vs_test(rows: list[dict]) -> list[dict]:
    """Does validation pick what test confirms? For each option of each data set beside its default: the change
    against the default on the same seeds (points of gain over the SASRec), on validation and on test, run by run.
    The defaults are chosen on the first; a user gets the second."""
    out = []
    for ds in dict.fromkeys(r["data"] for r in rows):
        of = [r for r in rows if r["data"] == ds and r["valid gain"] is not None]  # runs scored on both
        for o in dict.fromkeys(r["option"] for r in of):
            if o == DEFAULT_LABEL:
                continue
            valid, test = _against_default(of, o, "valid gain"), _against_default(of, o, "gain NDCG@10")
            if valid:
                v, t = [d for _, d in valid], [d for _, d in test]
                out.append({"data": ds, "option": o, "seeds": [s for s, _ in test], "valid": v, "test": t,
                            "valid mean": sum(v) / len(v), "test mean": sum(t) / len(t),
                            "converged": all(r["stopped"] == "patience" for r in of if r["option"] == o)})
    return out


def _valid_vs_test_lines(rows: list[dict]) -> list[str]:
    pairs = valid_vs_test(rows)
    if not pairs:
        return []
    agree = sum((p["valid mean"] > 0) == (p["test mean"] > 0) for p in pairs)
    up = [p for p in pairs if p["valid mean"] > 0]
    up_ok = sum(p["test mean"] > 0 for p in up)
    lines = ["\nDoes validation pick what test confirms? Each option against the default on the same seeds, on "
             "validation (what the defaults are chosen on) and on test, in points of NDCG@10 gain over the SASRec "
             "(the mean over the option's runs; each run's change after the colon):\n",
             "| data | option | seeds | validation vs default | test vs default | runs (test) |",
             "|---|---|---|---|---|---|"]
    for p in sorted(pairs, key=lambda p: (p["data"], -p["valid mean"])):
        each = ", ".join(f"{s}: {100 * t:+.1f}" for s, t in zip(p["seeds"], p["test"], strict=True))
        star = "" if p["converged"] else "*"
        lines.append(f"| {p['data']} | {p['option']} | {len(p['seeds'])} | {100 * p['valid mean']:+.1f}{star} | "
                     f"{100 * p['test mean']:+.1f}{star} | {each} |")
    lines.append(f"\nValidation and test agree on the side of the default for {agree} of {len(pairs)} options; of "
                 f"the {len(up)} options above the default on validation, {up_ok} are above it on test too.")
    lines.append("\nHow far the default's own runs spread (its gain over each run's SASRec, mean ± std over its "
                 "runs: seeds, SASRec starts and re-runs), the scale a difference between options must clear:\n")
    for ds in dict.fromkeys(r["data"] for r in rows):
        own = [r for r in rows if r["data"] == ds and r["option"] == DEFAULT_LABEL and r["valid gain"] is not None]
        if len(own) > 1:
            (vm, vs), (tm, ts) = (mean_std([r[k] for r in own]) for k in ("valid gain", "gain NDCG@10"))
            lines.append(f"- {ds}: {len(own)} runs, validation {_pct(vm)} ± {100 * vs:.1f}, test {_pct(tm)} ± "
                         f"{100 * ts:.1f}")
    return lines


def _best_on_valid(rows: list[dict]) -> str:
    """Which option of `rows` (one data set's) is highest on validation, each option against the default on the
    same seeds (the default's runs of a seed averaged: the SASRec start differs between seeds)."""
    default = {s: sum(g) / len(g) for s, g in _gains(rows, DEFAULT_LABEL, "valid gain").items()}
    diffs = {}  # option -> (its mean gain, the default's on the same seeds, those seeds)
    for o in dict.fromkeys(r["option"] for r in rows):
        own = {s: g for s, g in _gains(rows, o, "valid gain").items() if s in default}
        if o != DEFAULT_LABEL and own:
            mine = [x for g in own.values() for x in g]
            base = [default[s] for s, g in own.items() for _ in g]
            diffs[o] = (sum(mine) / len(mine), sum(base) / len(base), sorted(own))
    if not diffs:
        return "no option beside the default on the default's seeds"
    best = max(diffs, key=lambda o: diffs[o][0] - diffs[o][1])
    mine, base, seeds = diffs[best]
    capped = "*" if any(r["stopped"] != "patience" for r in rows if r["option"] == best) else ""
    of = f"options compared on the default's seeds: {len(diffs)}"
    if mine <= base:
        return f"the default: no option above it on the same seeds ({of})"
    on = ", ".join(map(str, seeds))
    return f"{best}: {_pct(mine)}{capped}, the default {_pct(base)} on the same seeds ({on}; {of})"


def options_report(manifest: str | Path, out: str | Path) -> str:
    """Write OUT.md and OUT.json (option x data set, then every run) and OUT.png (the test gains). Returns the
    markdown."""
    out = Path(out)
    refuse_manifest_overwrite(out, manifest)
    rows = option_rows(manifest)
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    # the default first, then the control, then the rest by their first key in DEFAULTS' order (the prompt options
    # in PromptConfig's), then by label
    order = {k: i for i, k in enumerate(DEFAULTS)}
    options = sorted(dict.fromkeys(r["option"] for r in rows), key=lambda o: (
        o != DEFAULT_LABEL, o != CONTROL_LABEL, order.get(o.split("=")[0], len(order)), o))
    md = ["# Prompt-stage options on each data set (generated by `recgpt experiments options`)\n",
          f"Runs from `{Path(manifest).name}`, each fine-tuned from the SASRec of its group; the option is read off "
          "each run's config (its `--set` options that differ from the defaults). One seed a run; ' / ' separates "
          "runs of the same option and data set (another SASRec start or a re-run); * marks a run that did not "
          "stop by patience (not converged).\n",
          "Test NDCG@10, prompt-tuning + two-stage recall, against its SASRec's one-stage test (as `targets.md`):\n"]
    md += _pivot(rows, datasets, options, "gain NDCG@10")
    md += ["\nValidation NDCG@10 each run's weights were chosen on, against its SASRec's (the defaults are chosen "
           "on this, never on test; a run with the user module: the validation of the user vector it serves):\n"]
    md += _pivot(rows, datasets, options, "valid gain")
    md += ["\nOn each data set, the option furthest above the default on validation: its gain over its SASRec against "
           "the default's on the same seeds (an option's runs averaged; * if one of them did not converge):\n"]
    md += [f"- {ds}: " + _best_on_valid([r for r in rows if r["data"] == ds]) for ds in datasets]
    md += _valid_vs_test_lines(rows)
    # NOTE: option labels stay relative to the global defaults on every data set: the "default" row compares alike
    by_data = "; ".join(f"{ds}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                        for ds, d in DATA_PROMPT_DEFAULTS.items())
    md += ["\nWhere the code's defaults follow a data set (`DATA_PROMPT_DEFAULTS`, `model/stages.py`; a `recgpt train` "
           f"run there without `--set` gets them, `recgpt experiments` keeps the global ones): {by_data or 'none'}."]
    md += ["\nEvery run:\n", "| data | option | run | SASRec | NDCG@10 (two-stage) | vs SASRec | HR@10 | vs SASRec | "
           "valid chosen on | vs SASRec's | stopped |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        valid = "-" if r["valid"] is None else f"{r['valid']:.5f}"
        md.append(f"| {r['data']} | {r['option']} | {r['run']} | {r['sasrec']} | {r['NDCG@10']:.4f} | "
                  f"{_pct(r['gain NDCG@10'])} | {r['HR@10']:.4f} | {_pct(r['gain HR@10'])} | {valid} | "
                  f"{_pct(r['valid gain'])} | {r['stopped']}, {r['epochs']} ep |")
    text = "\n".join(md) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"datasets": datasets, "options": options, "runs": rows},
                                                   indent=1))
    plot_options(rows, datasets, options, out.with_suffix(".png"))
    return text
