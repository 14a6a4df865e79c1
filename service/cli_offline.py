"""The offline subcommands of `recgpt`: data, train, eval, experiments (`service/cli.py` holds the rest and `main`).

Heavy imports (torch) happen inside each subcommand, so `recgpt --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_data(a: argparse.Namespace) -> int:
    from model import data

    if a.action == "fetch":
        path = data.fetch(a.name, from_path=a.from_path, dest=a.dest)
        print(f"{a.name}: {path} (sha256 verified)")
    else:
        d = data.load_dataset(a.name)
        print(json.dumps({"file": a.name, **data.stats(d)}, indent=2))
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from model.stages import apply_data_defaults, check_extra
    from model.train import TrainConfig, run

    cfg = TrainConfig(data=a.data, model=a.model, out=a.out, loss=a.loss, seed=a.seed)
    for key in (
        "epochs",
        "lr",
        "batch_size",
        "n_neg",
        "sampler",
        "patience",
        "max_len",
        "d_model",
        "d_ff",
        "n_layers",
        "n_heads",
        "dropout",
        "max_minutes",
        "threads",
        "device",
        "weight_decay",
        "stages",
        "init",
    ):
        val = getattr(a, key)
        if val is not None:
            setattr(cfg, key, val)
    cfg.extra.update(_parse_set(a.set))
    check_extra(cfg.extra)  # before the data set's defaults are said aloud
    if not a.resume:  # NOTE: a resumed run keeps the options of its config.json, made before any later default
        # NOTE: said aloud: a run meant as the global default (weight 1) once took Beauty's weight 3 unnoticed
        for key, val in apply_data_defaults(cfg).items():
            print(f"{a.data}: --set {key}={json.dumps(val)} (this data set's default; --set {key}=... to override)",
                  file=sys.stderr)
    run(cfg, resume=a.resume)
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    from model.report import compare_runs, parse_group, seed_groups

    if bool(a.runs) == bool(a.group):
        raise ValueError("eval wants run folders or --group LABEL=RUN,RUN,... (one or more): one of the two")
    if a.plot and (a.group or not a.out or len(a.baseline or []) != 1):
        raise ValueError("--plot writes OUT.png beside a table of runs: it wants run folders, --out and one --baseline")
    if a.bootstrap and (a.group or len(a.baseline or []) != 1 or a.plot or a.selection):
        raise ValueError("--bootstrap compares run folders with one --baseline (no --group, --plot, --selection)")
    if a.threads and not a.bootstrap:
        raise ValueError("--threads sets the torch threads of --bootstrap (the other tables only read metrics.json)")
    if a.bootstrap:
        from model.significance import significance_table

        if a.threads:
            import torch

            torch.set_num_threads(a.threads)  # NOTE: e.g. 1 beside training runs; default = all cores
        table, rows = significance_table(a.runs, a.baseline[0], a.baseline_block, a.block)
    elif a.group:
        if a.baseline:
            raise ValueError("with --group, name the baseline group with --paired-baseline LABEL, not --baseline")
        table, rows = seed_groups([parse_group(g) for g in a.group], block=a.block, baseline=a.paired_baseline)
    else:
        if a.paired_baseline:
            raise ValueError("--paired-baseline names a --group")
        table, rows = compare_runs(a.runs, block=a.block, baseline=a.baseline, baseline_block=a.baseline_block,
                                   selection=a.selection or a.plot)
    print(table)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out + ".md").write_text(table)
        Path(a.out + ".json").write_text(json.dumps(rows, indent=2))
        print(f"wrote {a.out}.md and {a.out}.json")
    if a.plot:
        from model.plots import plot_selection
        from model.report import load_run, selected_on

        base = a.baseline[0]
        plot_selection(rows, a.out + ".png", (Path(base).name, selected_on(base),
                                              load_run(base)[a.baseline_block]["NDCG@10"]))
        print(f"wrote {a.out}.png")
    return 0


def _parse_set(pairs: list[str] | None) -> dict:
    """--set KEY=VALUE options: VALUE as JSON where it parses (true, 8, [9, 1]), else as a string."""
    extra = {}
    for kv in pairs or []:
        key, eq, val = kv.partition("=")
        if not (key and eq):
            raise ValueError(f"--set wants KEY=VALUE, not {kv!r}")
        try:
            extra[key] = json.loads(val)
        except json.JSONDecodeError:
            extra[key] = val
    return extra


def _named_runs(specs: list[str] | None, which: str) -> dict[str, str]:
    """--model NAME=RUN_DIR[:checkpoint] options -> {name: run spec}, in their order."""
    named = {}
    for spec in specs or []:
        name, eq, path = spec.rpartition("=")  # the last "=": a name may hold one ("k=1")
        if not (eq and name and path):
            raise ValueError(f"--model wants NAME=RUN_DIR[:checkpoint], not {spec!r}")
        named[name] = path
    if not named:
        raise ValueError(f"{which} needs --model NAME=RUN_DIR[:checkpoint] (one or more)")
    return named


def _cmd_experiments(a: argparse.Namespace) -> int:
    """The paper's tables and plots, generated from training runs (resumable: finished runs are reused)."""
    import torch

    from model.ablations import ablation_jobs, ablation_plan, ablations
    from model.experiments import DATASETS, main_jobs, main_table, splits_report
    from model.options import options_report
    from model.stages import check_extra
    from model.sweep import train_jobs
    from model.targets import targets_report
    from model.train import TrainConfig

    # NOTE: set here, not only by each training run: `splits`, and `ablations` over reused runs, evaluate
    # without training anything, and torch would otherwise take every core
    torch.set_num_threads(a.threads)
    if a.which == "horizons":  # evaluates finished runs' weights, trains nothing
        from model.horizons import horizons_report

        named = _named_runs(a.models, "horizons")
        ref = a.reference or next(iter(named))
        pairs = [tuple(c.split(":", 1)) for c in a.compare or []]
        for pair in pairs:
            if len(pair) != 2 or not set(pair) <= set(named):
                raise ValueError(f"--compare wants A:B of the --model names {sorted(named)}, not {':'.join(pair)!r}")
        print(horizons_report(named, ref, pairs, Path(a.out)))
        return 0
    if a.which in ("targets", "options"):  # read run folders, train nothing
        report, manifest = {"targets": (targets_report, "target_pairs.json"),
                            "options": (options_report, "option_runs.json")}[a.which]
        print(report(a.pairs or f"docs/results/{manifest}", Path(a.out) / a.which))
        return 0
    base = TrainConfig(seed=a.seeds[0], epochs=a.epochs, patience=a.patience, max_minutes=a.max_minutes,
                       batch_size=a.batch_size, threads=a.threads, device=a.device, extra=_parse_set(a.set))
    check_extra(base.extra)  # before the first of many runs
    out, runs = Path(a.out), Path(a.runs)
    datasets = a.datasets.split(",") if a.datasets else list(DATASETS)
    if a.train_only:  # every data set's runs in one plan, so copies side by side share them without waiting
        if a.which == "splits":
            raise ValueError("--train-only is for main and ablations (splits trains nothing)")
        if a.which == "main":
            jobs = list(main_jobs(datasets, a.seeds, runs).values())
        else:
            jobs = [job for ds in datasets for job in ablation_jobs(ablation_plan(ds, runs, base))]
        train_jobs(base, jobs)
        return 0
    if a.which == "main":
        print(main_table(datasets, a.seeds, runs, out, base, train=not a.report_only))
    elif a.which == "splits":
        named = _named_runs(a.models, "splits")
        for ds in datasets:
            print(splits_report(ds, named, out))
    else:
        for ds in datasets:
            print(ablations(ds, runs, out, base))
    return 0


def add_offline_commands(sub: argparse._SubParsersAction) -> None:
    """The parsers of data, train, eval and experiments, in the order `recgpt --help` lists them."""
    d = sub.add_parser(
        "data", help="fetch a benchmark data set (sha256-checked) or print a file's statistics"
    )
    d.add_argument("action", choices=["fetch", "stats"])
    d.add_argument("name", help="fetch: beauty|sports|toys|yelp; stats: a name or a file path")
    d.add_argument("--from", dest="from_path", help="fetch: copy this local file instead of downloading")
    d.add_argument("--dest", help="fetch: folder to store it in (default: RECGPT_DATA_DIR)")
    d.set_defaults(fn=_cmd_data)

    t = sub.add_parser(
        "train", help="train a model; writes a run folder with metrics.json, checkpoints, curves.png"
    )
    t.add_argument(
        "--data", default="synthetic", help="synthetic | beauty | sports | toys | yelp | a file path"
    )
    t.add_argument("--model", default="recgpt", help="pop | gru4rec | sasrec | bert4rec | recgpt")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument(
        "--loss", choices=["bce", "sampled-softmax", "ce"], help="default: bce for sasrec/recgpt, else ce"
    )
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument(
        "--n-neg", type=int, help="negatives per position (bce) or per batch x256 (sampled-softmax)"
    )
    t.add_argument("--sampler", choices=["uniform", "pop"])
    t.add_argument("--patience", type=int, help="epochs without a better valid NDCG@10 before stopping")
    t.add_argument("--max-len", type=int)
    t.add_argument("--d-model", type=int)
    t.add_argument("--d-ff", type=int, help="feed-forward width of each block (default 256)")
    t.add_argument("--n-layers", type=int)
    t.add_argument("--n-heads", type=int)
    t.add_argument("--dropout", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--max-minutes", type=float, help="stop training after this long, keeping the best epoch")
    t.add_argument("--threads", type=int, help="torch threads (default 2)")
    t.add_argument("--device", help="auto (default: the GPU when torch sees one), cpu, cuda or cuda:N")
    t.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="stage option, e.g. --set two_stage_n=8"
    )
    t.add_argument("--stages", help="pretrain,prompt (recgpt's default), pretrain (the others' default), or "
                   "prompt (with --init); prompt-tuning works for recgpt and sasrec")
    t.add_argument("--init", help="a pre-trained run folder to start from (e.g. prompt-tuning only)")
    t.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    t.set_defaults(fn=_cmd_train)

    e = sub.add_parser("eval", help="compare finished runs: a markdown table (and JSON with --out)")
    e.add_argument("runs", nargs="*", help="run folders; RUN:BLOCK overrides --block for one run")
    e.add_argument("--block", default="test", help="test | valid | test_two_stage; pretrain_test, "
                   "pretrain_valid, pretrain_test_two_stage: pre-training alone of a --stages pretrain,prompt run")
    e.add_argument("--out", help="write OUT.md and OUT.json")
    e.add_argument("--baseline", action="append", help="a run folder: add each run's relative HR@10 and NDCG@10 "
                   "against it; repeated (one per data set): each run against its own data set's")
    e.add_argument("--baseline-block", default="test", help="the baseline's block (default: one-stage test)")
    e.add_argument("--selection", action="store_true", help="also the validation NDCG@10 each run's weights were "
                   "chosen on (its mix, soup or best epoch)")
    e.add_argument("--plot", action="store_true", help="also OUT.png: each run's test NDCG@10 against the validation "
                   "it was chosen on, with the baseline's lines (implies --selection; wants --out, one --baseline)")
    e.add_argument("--bootstrap", action="store_true", help="instead: each run's NDCG@10 change against the one "
                   "--baseline with a paired bootstrap over test users (95%% interval; the folders need their weights)")
    e.add_argument("--threads", type=int, help="torch threads of --bootstrap (default: all cores)")
    e.add_argument("--group", action="append", metavar="LABEL=RUN[:BLOCK],...",
                   help="instead of run rows: one row a group of runs (one setting, several seeds), mean ± std")
    e.add_argument("--paired-baseline", metavar="LABEL", help="with --group: each group's relative HR@10 and "
                   "NDCG@10 against this group, run by run of the same seed (mean ± std, min..max)")
    e.set_defaults(fn=_cmd_eval)
    x = sub.add_parser("experiments", help="generate docs/results: the main table, the ablations, split tables, "
                       "where the targets stand, or what each prompt-stage option adds (runs are reused)")
    x.add_argument("which", choices=["main", "ablations", "splits", "targets", "options", "horizons"])
    x.add_argument("--model", dest="models", action="append", metavar="NAME=RUN_DIR[:CHECKPOINT]",
                   help="splits: a trained run to evaluate (e.g. 'pre-trained=runs/rg:pretrain.best'); horizons: a "
                   "finished run folder (its final weights)")
    x.add_argument("--reference", help="horizons: the --model name each run's change is measured against "
                   "(default: the first)")
    x.add_argument("--compare", action="append", metavar="A:B", help="horizons: A's two-stage NDCG@10 against B's, "
                   "view by view, with a paired bootstrap over users (repeatable)")
    x.add_argument("--datasets", help="comma-separated (default: beauty,sports,toys,yelp)")
    x.add_argument("--seeds", type=lambda v: [int(i) for i in v.split(",")], default=[1, 2, 3])
    x.add_argument("--epochs", type=int, default=200)
    x.add_argument("--patience", type=int, default=5)
    x.add_argument("--batch-size", type=int, default=None, help="default: by loss, as `recgpt train`")
    x.add_argument("--max-minutes", type=float, default=None, help="training-time cap per stage of each run")
    x.add_argument("--threads", type=int, default=2, help="torch threads per run (1: run two sweeps side by side)")
    x.add_argument("--device", default="auto", help="auto (the GPU when torch sees one), cpu, cuda or cuda:N")
    x.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="option for every run, as `recgpt train --set` (e.g. user_module=true: the paper's model)")
    x.add_argument("--runs", default="docs/results/runs",
                   help="folder for the runs (their metrics and configs are committed, their weights are not)")
    x.add_argument("--report-only", action="store_true",
                   help="main: tabulate the runs already in --runs, train nothing")
    x.add_argument("--train-only", action="store_true",
                   help="train (or reuse) the runs of every data set and seed, write no table: copies of the same "
                   "command side by side share the runs; then run the command without it to write the tables")
    x.add_argument("--pairs", help="targets: the manifest of (SASRec runs, RecGPT run) pairs (default "
                   "docs/results/target_pairs.json), writes OUT/targets.md, .json, .png (and targets_defaults.png when "
                   "it names its 'current' settings); options: the manifest of "
                   "(SASRec run, prompt-tuned runs) groups (default docs/results/option_runs.json), writes "
                   "OUT/options.md, .json, .png")
    x.add_argument("--out", default="docs/results", help="folder for the tables and plots")
    x.set_defaults(fn=_cmd_experiments)
