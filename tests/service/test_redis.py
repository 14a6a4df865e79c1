"""The Redis history store against a real redis-server, and the service when Redis goes away."""

from __future__ import annotations

from collections.abc import Callable

import redis

from service.store import Event, RedisStore
from tests.service.conftest import RedisServer, Running


def test_redis_store_dedupe_cap_ttl(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, cap=5, ttl_s=100, event_ttl_s=50)
    assert store.ping()
    applied, dup = store.append([Event("u", str(i), float(i), f"e{i}") for i in range(8)])
    assert (applied, dup) == (8, 0)
    assert store.append([Event("u", "7", 7.0, "e7"), Event("u", "x", None, None)]) == (1, 1)
    assert store.get("u") == ["4", "5", "6", "7", "x"]  # capped at the last 5
    r = redis.Redis.from_url(redis_server.url)
    assert 0 < r.ttl("recgpt:hist:u") <= 100 and 0 < r.ttl("recgpt:ev:e3") <= 50
    store.close()


def test_service_with_redis_then_redis_down(serve: Callable[..., Running], redis_server: RedisServer) -> None:
    s = serve(redis_url=redis_server.url)
    assert s.client.get("/readyz").json()["checks"]["redis"] is True
    evs = [{"user_id": "bob", "item_id": str(i), "event_id": f"b{i}"} for i in (3, 4, 5)]
    assert s.client.post("/v1/events", json=evs).json()["applied"] == 3
    assert s.client.get("/v1/users/bob/history").json()["items"] == ["3", "4", "5"]
    assert s.recall(user_id="bob", k=10).json()["history_source"] == "store"

    redis_server.stop()
    r = s.recall(user_id="bob", k=10)
    assert r.status_code == 200 and r.json()["items"][0]["stage"] == "popular"  # degraded, still answering
    r = s.recall(user_id="bob", k=10, history=["3", "4", "5"])
    assert r.status_code == 200 and r.json()["history_source"] == "request"
    assert r.json()["items"][0]["stage"] == "1"
    assert s.metric("recgpt_redis_errors_total", op="get") >= 1
    assert s.client.get("/readyz").status_code == 503
    assert s.client.post("/v1/events", json=evs[0]).status_code == 503
    assert s.client.get("/healthz").status_code == 200
