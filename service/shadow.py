"""Shadow traffic: JSON-lines log of recalls computed in the background, and its offline report.

Log line: {"ts", "request_id", "user_id", "variant", "model_version", "items": [ids], "latency_ms"}.
Events file (JSON lines): {"user_id", "item_id", "ts"}. A logged list is judged against the items the
user interacted with after its ts: hit rate (any of them in the top K) and NDCG@K (binary relevance).
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from pathlib import Path


class ShadowLog:
    """Appends one JSON line per shadow recall; thread-safe (one lock, line-buffered writes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock, open(self.path, "a") as f:
            f.write(line)


def _read_jsonl(path: str | Path) -> list[dict]:
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
    return out


def _ndcg(items: list[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(r + 2) for r, it in enumerate(items[:k]) if it in relevant)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def shadow_report(log_path: str | Path, events_path: str | Path, k: int = 10) -> dict[str, dict]:
    """Per variant: lists judged (those whose user has later events), HR@k, NDCG@k."""
    later: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for ev in _read_jsonl(events_path):
        later[str(ev["user_id"])].append((float(ev["ts"]), str(ev["item_id"])))
    acc: dict[str, dict[str, float]] = defaultdict(
        lambda: {"lists": 0, "judged": 0, "hits": 0.0, "ndcg": 0.0}
    )
    for rec in _read_jsonl(log_path):
        a = acc[rec["variant"]]
        a["lists"] += 1
        rel = {it for ts, it in later.get(str(rec["user_id"]), []) if ts > float(rec["ts"])}
        if not rel:
            continue
        items = [str(x) for x in rec["items"]]
        a["judged"] += 1
        a["hits"] += float(any(it in rel for it in items[:k]))
        a["ndcg"] += _ndcg(items, rel, k)
    return {
        v: {
            "lists": int(a["lists"]),
            "judged": int(a["judged"]),
            f"HR@{k}": a["hits"] / a["judged"] if a["judged"] else float("nan"),
            f"NDCG@{k}": a["ndcg"] / a["judged"] if a["judged"] else float("nan"),
        }
        for v, a in sorted(acc.items())
    }
