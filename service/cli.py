"""The `recgpt` command: data, train, eval, experiments (`service/cli_offline.py`), demo, export, build-index,
serve, shadow-report, bench.

Heavy imports (torch, FAISS, FastAPI) happen inside each subcommand, so `recgpt --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.cli_offline import add_offline_commands


def _cmd_demo(a: argparse.Namespace) -> int:
    """Train recgpt on the built-in synthetic data, export a bundle and serve it (in-process store)."""
    from model.train import TrainConfig, run
    from service.bundle import export_bundle

    root = Path(a.out)
    cfg = TrainConfig(
        data="synthetic",
        model="recgpt",
        out=str(root / "recgpt"),
        epochs=a.epochs,
        patience=a.epochs,
        loss="ce",
        dropout=0.2,
        lr=3e-3,
        batch_size=64,
    )
    result = run(cfg)
    manifest = export_bundle(root / "recgpt", root / "bundle", index_kind="flat")
    print(f"test HR@10 {result['test']['HR@10']:.4f}; bundle {root / 'bundle'} version {manifest['version']}")
    if a.no_serve:
        return 0
    url = f"http://{a.host}:{a.port}"
    print(DEMO_CURL.format(url=url))
    return _serve(str(root / "bundle"), a.host, a.port, 1)


DEMO_CURL = """
Serving on {url} (Ctrl-C stops). Try:
  curl -s {url}/readyz
  curl -s -X POST {url}/v1/events -H 'content-type: application/json' \\
  -d '[{{"user_id":"al","item_id":"1","event_id":"e1"}},{{"user_id":"al","item_id":"2","event_id":"e2"}}]'
  curl -s -X POST {url}/v1/recall -H 'content-type: application/json' -d '{{"user_id":"al","k":10}}'
  curl -s -X POST {url}/v1/recall -H 'content-type: application/json' -d '{{"user_id":"new-user","k":5}}'
  curl -s {url}/v1/users/al/history
  curl -s {url}/metrics | grep recgpt_
"""


def _serve(bundle: str, host: str, port: int, workers: int) -> int:
    import os

    import uvicorn

    os.environ["RECGPT_BUNDLE"] = bundle  # NOTE: workers > 1 re-import the app: settings travel by env
    if workers > 1:
        uvicorn.run("service.main:app", host=host, port=port, workers=workers, log_level="info")
    else:
        from service.app import create_app
        from service.settings import Settings

        uvicorn.run(create_app(Settings()), host=host, port=port, log_level="info")
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    from service.bundle import export_bundle

    m = export_bundle(a.run_dir, a.out_dir, index_kind=a.index, version=a.version)
    print(json.dumps({"bundle": a.out_dir, "version": m["version"], "index": m["index"]}, indent=2))
    return 0


def _cmd_build_index(a: argparse.Namespace) -> int:
    from service.bundle import rebuild_index

    m = rebuild_index(a.bundle, index_kind=a.index)
    print(json.dumps({"bundle": a.bundle, "version": m["version"], "index": m["index"]}, indent=2))
    return 0


def _cmd_serve(a: argparse.Namespace) -> int:
    from service.bundle import verify

    verify(a.bundle)  # fail here, with the file's name, rather than inside the server's startup
    return _serve(a.bundle, a.host, a.port, a.workers)


def _cmd_shadow_report(a: argparse.Namespace) -> int:
    from service.shadow import shadow_report

    print(json.dumps(shadow_report(a.log, a.events, k=a.k), indent=2))
    return 0


def _cmd_bench(a: argparse.Namespace) -> int:
    # NOTE: bench/ is not an installed package (pyproject: model*, index*, service*): import from the checkout
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    if a.what == "latency":
        from bench.latency import main as latency

        return latency(a.rest)
    if a.what == "replay":
        from bench.replay import main as replay

        return replay(a.rest)
    from bench.index_bench import main as index_bench

    return index_bench(a.rest)


def _add_service_commands(sub: argparse._SubParsersAction) -> None:
    kinds = ["flat", "hnsw", "ivf", "auto"]
    x = sub.add_parser("export", help="make a versioned, checksummed serving bundle from a run folder")
    x.add_argument("run_dir")
    x.add_argument("out_dir")
    x.add_argument("--index", choices=kinds, default="auto", help="FAISS index (auto: by catalog size)")
    x.add_argument("--version", help="version string (default: run name + UTC time + weights hash)")
    x.set_defaults(fn=_cmd_export)
    b = sub.add_parser("build-index", help="rebuild a bundle's FAISS index and update its manifest")
    b.add_argument("bundle")
    b.add_argument("--index", choices=kinds, default="auto")
    b.set_defaults(fn=_cmd_build_index)
    s = sub.add_parser("serve", help="serve a bundle over HTTP (uvicorn); settings from RECGPT_* / REDIS_URL")
    s.add_argument("bundle")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(fn=_cmd_serve)
    r = sub.add_parser("shadow-report", help="per-variant HR and NDCG of logged shadow lists vs later events")
    r.add_argument("log")
    r.add_argument("events")
    r.add_argument("--k", type=int, default=10)
    r.set_defaults(fn=_cmd_shadow_report)
    c = sub.add_parser(
        "bench", help="latency | replay | index benchmarks (see bench/; --help after the name)"
    )
    c.add_argument("what", choices=["latency", "replay", "index"])
    c.add_argument("rest", nargs=argparse.REMAINDER)
    c.set_defaults(fn=_cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recgpt", description="RecGPT: train, evaluate and serve a generative recall model."
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    add_offline_commands(sub)

    m = sub.add_parser("demo", help="train recgpt on synthetic data, export a bundle, serve it")
    m.add_argument("--out", default="runs/demo", help="folder for the demo's runs")
    m.add_argument("--epochs", type=int, default=15)
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=8000)
    m.add_argument("--no-serve", action="store_true", help="train and export only")
    m.set_defaults(fn=_cmd_demo)
    _add_service_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (
        FileNotFoundError,
        ValueError,
        KeyError,
    ) as exc:  # BundleError is a ValueError  # user errors: one clear line, no traceback
        print(f"recgpt {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
