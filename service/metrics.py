"""Prometheus metrics, one registry per app (so several apps in one process, as in tests, stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # traffic: "served" (answered to a caller) or "shadow" (computed in the background, not served)
        self.requests = Counter(
            "recgpt_recall_requests_total", "Recall requests", ["variant", "status", "traffic"], registry=r
        )
        self.http = Counter(
            "recgpt_http_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "recgpt_recall_stage_seconds",
            "Recall latency per stage: history, stage1 (encode + search), stage2, total",
            ["stage", "traffic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "recgpt_redis_errors_total", "History store (Redis) errors", ["op"], registry=r
        )
        self.unknown_items = Counter(
            "recgpt_unknown_items_dropped_total",
            "History items not in the model's catalog, dropped",
            registry=r,
        )
        self.cold_start = Counter(
            "recgpt_cold_start_total", "Recalls answered with popular items", ["variant"], registry=r
        )
        self.events = Counter("recgpt_events_total", "Events received", ["result"], registry=r)
        self.shadow_dropped = Counter(
            "recgpt_shadow_dropped_total", "Shadow requests dropped (queue full)", registry=r
        )
        self.reloads = Counter("recgpt_reloads_total", "Bundle reloads", ["result"], registry=r)
        self.model_info = Gauge(
            "recgpt_model_info",
            "Model version served by each variant (value 1)",
            ["variant", "version"],
            registry=r,
        )

    def set_versions(self, versions: dict[str, str]) -> None:
        self.model_info.clear()
        for variant, version in versions.items():
            self.model_info.labels(variant=variant, version=version).set(1)
