"""Replay each test user's history through /v1/events, recall K=10 one-stage, and compare HR@10 with
the bundle's offline metrics.json (test HR@10).

    recgpt bench replay BUNDLE --data synthetic [--limit 500] [--url http://127.0.0.1:8000]

NOTE: like the offline evaluation, the service excludes a user's whole stored history (up to
`history_cap`, default 512 items) and encodes its last max_len items; with the exact index the two
lists are the same, so the two HR@10 agree up to score ties.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx

from model.data import leave_one_out, load_dataset

from .common import local_service


def replay(url: str, data: str, limit: int | None, run_tag: str) -> dict[str, float]:
    ds = load_dataset(data)
    split = leave_one_out(ds)
    users = range(len(split.test_hist)) if limit is None else range(min(limit, len(split.test_hist)))
    hits = 0
    with httpx.Client(base_url=url, timeout=30) as c:
        for r in users:
            uid = ds.idmap.users[r + 1]
            hist = [ds.idmap.items[i] for i in split.test_hist[r]]
            # NOTE: event ids make a second replay idempotent; the tag keeps runs on one store apart
            evs = [
                {"user_id": uid, "item_id": it, "ts": float(t), "event_id": f"{run_tag}:{uid}:{t}"}
                for t, it in enumerate(hist)
            ]
            for s in range(0, len(evs), 500):
                c.post("/v1/events", json=evs[s : s + 500]).raise_for_status()
            body = c.post("/v1/recall", json={"user_id": uid, "k": 10, "n": 10, "m": 0}).json()
            target = ds.idmap.items[int(split.test_target[r])]
            hits += any(x["item_id"] == target for x in body["items"])
    return {"users": len(users), "HR@10": hits / max(1, len(users))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="recgpt bench replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundle")
    p.add_argument("--data", required=True, help="the bundle's data set: synthetic, beauty, ...")
    p.add_argument("--url", help="a running service on 127.0.0.1 (default: start one on the bundle)")
    p.add_argument("--limit", type=int, help="first N test users only")
    a = p.parse_args(argv)
    offline = json.loads((Path(a.bundle) / "metrics.json").read_text())["test"]["HR@10"]
    t0 = time.time()
    with local_service(a.bundle, a.url) as url:
        online = replay(url, a.data, a.limit, run_tag=f"replay{int(t0)}")
    report = {
        "service": online,
        "offline_test_HR@10": offline,
        "diff": round(online["HR@10"] - offline, 4),
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
