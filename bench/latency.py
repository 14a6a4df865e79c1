"""p50/p99 of sequential /v1/recall requests, one-stage (M = 0) and two-stage (the default split).

recgpt bench latency BUNDLE [--requests 200] [--max-seconds 60] [--k 50]
recgpt bench latency --url http://127.0.0.1:8000      # a running service (loopback only)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx
import numpy as np

from .common import local_service


def _history(bundle: str | None, length: int) -> list[str]:
    if bundle:
        items = json.loads((Path(bundle) / "idmap.json").read_text())["items"][1:]
        return items[:length]
    return [str(i) for i in range(1, length + 1)]


def measure(url: str, body: dict, requests: int, deadline: float) -> dict[str, float]:
    lat = []
    with httpx.Client(base_url=url, timeout=30) as c:
        c.post("/v1/recall", json=body).raise_for_status()  # warm-up
        for _ in range(requests):
            if time.time() > deadline:
                break
            t0 = time.perf_counter()
            c.post("/v1/recall", json=body).raise_for_status()
            lat.append((time.perf_counter() - t0) * 1000)
    a = np.asarray(lat) if lat else np.asarray([np.nan])
    return {
        "requests": len(lat),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "mean_ms": round(float(a.mean()), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="recgpt bench latency", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundle", nargs="?", help="start a local server on this bundle")
    p.add_argument("--url", help="a running service on 127.0.0.1 instead")
    p.add_argument("--requests", type=int, default=200, help="per mode (at most 10000)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="stop each mode after this long")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--history", type=int, default=20, help="history length sent with each request")
    a = p.parse_args(argv)
    requests = max(1, min(a.requests, 10_000))
    hist = _history(a.bundle, a.history)
    out = {}
    with local_service(a.bundle, a.url) as url:
        for mode, extra in (("one_stage", {"n": a.k, "m": 0}), ("two_stage", {})):
            body = {"user_id": "bench-user", "k": a.k, "history": hist, **extra}
            out[mode] = measure(url, body, requests, time.time() + a.max_seconds)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
