"""Index choices on a bundle's item table: build time, ANN recall@k against exact search, query latency.

recgpt bench index BUNDLE [--k 10] [--queries 500] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from index import ann_recall, build_index
from service.bundle import load_bundle


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="recgpt bench index", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundle")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    table = load_bundle(a.bundle).item_table()
    rng = np.random.default_rng(0)
    # queries: item vectors plus noise, a stand-in for user vectors living in the same space
    rows = rng.integers(1, len(table), size=min(a.queries, 10_000))
    q = (table[rows] + rng.normal(scale=table.std(), size=table[rows].shape)).astype(np.float32)
    out = {}
    for kind in ("flat", "hnsw", "ivf"):
        t0 = time.perf_counter()
        idx = build_index(table, kind, threads=a.threads)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        for r in range(len(q)):
            idx.search(q[r : r + 1], a.k)
        per_q = (time.perf_counter() - t0) / len(q)
        out[kind] = {
            "build_s": round(built, 3),
            f"recall@{a.k}": round(ann_recall(idx, table, q, a.k), 4),
            "query_ms": round(per_q * 1000, 3),
            "params": idx.params,
        }
    print(json.dumps({"items": len(table) - 1, "dim": table.shape[1], **out}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
