"""The `recgpt` command: data, train, eval, export, build-index, serve, bench, shadow-report.

Heavy imports (torch, FAISS, FastAPI) happen inside each subcommand, so `recgpt --help` is instant.
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
    from model.train import TrainConfig, run

    cfg = TrainConfig(data=a.data, model=a.model, out=a.out, loss=a.loss, seed=a.seed)
    for key in ("epochs", "lr", "batch_size", "n_neg", "sampler", "patience", "max_len", "d_model", "n_layers",
                "n_heads", "dropout", "max_minutes", "threads", "weight_decay"):
        val = getattr(a, key)
        if val is not None:
            setattr(cfg, key, val)
    for kv in a.set or []:
        key, _, val = kv.partition("=")
        try:
            cfg.extra[key] = json.loads(val)
        except json.JSONDecodeError:
            cfg.extra[key] = val
    run(cfg, resume=a.resume)
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    from model.report import compare_runs

    table, rows = compare_runs(a.runs, block=a.block)
    print(table)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out + ".md").write_text(table)
        Path(a.out + ".json").write_text(json.dumps(rows, indent=2))
        print(f"wrote {a.out}.md and {a.out}.json")
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    """The README's main job: train small models on the built-in synthetic data and compare them."""
    from model.report import compare_runs
    from model.train import TrainConfig, run

    root = Path(a.out)
    runs = []
    for model in ("pop", "gru4rec", "sasrec", "recgpt"):
        cfg = TrainConfig(data="synthetic", model=model, out=str(root / model), epochs=a.epochs, patience=a.epochs,
                          loss="ce" if model != "pop" else None, dropout=0.2, lr=3e-3, batch_size=64)
        run(cfg)
        runs.append(root / model)
    table, _ = compare_runs(runs)
    print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recgpt", description="RecGPT: train, evaluate and serve a generative recall model.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="fetch a benchmark data set (sha256-checked) or print a file's statistics")
    d.add_argument("action", choices=["fetch", "stats"])
    d.add_argument("name", help="fetch: beauty|sports|toys|yelp; stats: a name or a file path")
    d.add_argument("--from", dest="from_path", help="fetch: copy this local file instead of downloading")
    d.add_argument("--dest", help="fetch: folder to store it in (default: RECGPT_DATA_DIR)")
    d.set_defaults(fn=_cmd_data)

    t = sub.add_parser("train", help="train a model; writes a run folder with metrics.json, checkpoints, curves.png")
    t.add_argument("--data", default="synthetic", help="synthetic | beauty | sports | toys | yelp | a file path")
    t.add_argument("--model", default="recgpt", help="pop | gru4rec | sasrec | bert4rec | recgpt")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--loss", choices=["bce", "sampled-softmax", "ce"], help="default: bce for sasrec/recgpt, else ce")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--n-neg", type=int, help="negatives per position (bce) or per batch x256 (sampled-softmax)")
    t.add_argument("--sampler", choices=["uniform", "pop"])
    t.add_argument("--patience", type=int, help="epochs without a better valid NDCG@10 before stopping")
    t.add_argument("--max-len", type=int)
    t.add_argument("--d-model", type=int)
    t.add_argument("--n-layers", type=int)
    t.add_argument("--n-heads", type=int)
    t.add_argument("--dropout", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--max-minutes", type=float, help="stop training after this long, keeping the best epoch")
    t.add_argument("--threads", type=int, help="torch threads (default 2)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="stage option, e.g. --set two_stage_n=8")
    t.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    t.set_defaults(fn=_cmd_train)

    e = sub.add_parser("eval", help="compare finished runs: a markdown table (and JSON with --out)")
    e.add_argument("runs", nargs="+", help="run folders")
    e.add_argument("--block", default="test", help="test | valid | test_two_stage")
    e.add_argument("--out", help="write OUT.md and OUT.json")
    e.set_defaults(fn=_cmd_eval)
    m = sub.add_parser("demo", help="the main job: train on the built-in synthetic data and print the metrics")
    m.add_argument("--out", default="runs/demo", help="folder for the demo's runs")
    m.add_argument("--epochs", type=int, default=15)
    m.set_defaults(fn=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (FileNotFoundError, ValueError, KeyError) as exc:  # user errors: one clear line, no traceback
        print(f"recgpt {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
