"""Recall, events and history over a real socket, with the in-process store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.data import leave_one_out, load_dataset
from model.recall import torch_search, two_stage_recall
from service.bundle import load_bundle
from tests.service.conftest import Running


def test_health_ready_metrics(serve: Callable[..., Running]) -> None:
    s = serve()
    assert s.client.get("/healthz").json() == {"status": "ok"}
    r = s.client.get("/readyz")
    assert r.status_code == 200 and r.json()["versions"] == {"default": "v1"}
    assert s.metric("recgpt_model_info", variant="default", version="v1") == 1.0


def test_cold_start_gets_popular_items(serve: Callable[..., Running], bundle_dir: Path) -> None:
    s = serve()
    pop = json.loads((bundle_dir / "popular.json").read_text())["items"]
    idmap = json.loads((bundle_dir / "idmap.json").read_text())["items"]
    top = [idmap[i] for i in pop]
    r = s.recall(user_id="nobody", k=5, exclude=[top[0]])
    body = r.json()
    assert r.status_code == 200 and body["history_source"] == "none"
    assert [x["item_id"] for x in body["items"]] == top[1:6]
    assert {x["stage"] for x in body["items"]} == {"popular"}
    assert s.metric("recgpt_cold_start_total", variant="default") == 1.0


def test_events_change_recall(serve: Callable[..., Running], bundle_dir: Path) -> None:
    s = serve()
    before = s.recall(user_id="alice", k=10).json()
    items = json.loads((bundle_dir / "idmap.json").read_text())["items"]
    evs = [{"user_id": "alice", "item_id": items[i], "ts": float(i), "event_id": f"e{i}"} for i in (5, 6, 7)]
    r = s.client.post("/v1/events", json={"events": evs})
    assert r.json() == {"received": 3, "applied": 3, "duplicates": 0}
    assert s.client.post("/v1/events", json=evs[0]).json()["duplicates"] == 1  # same event_id: applied once
    assert s.client.get("/v1/users/alice/history").json()["items"] == [items[5], items[6], items[7]]
    after = s.recall(user_id="alice", k=10).json()
    assert after["history_source"] == "store" and after["items"] != before["items"]
    assert {x["stage"] for x in after["items"]} == {"1", "2"} and (after["n"], after["m"]) == (9, 1)
    assert not {x["item_id"] for x in after["items"]} & {items[5], items[6], items[7]}  # history excluded


def test_unknown_history_items_are_dropped_and_counted(serve: Callable[..., Running]) -> None:
    s = serve()
    body = s.recall(user_id="u1", k=5, history=["no-such-item", "also-not"]).json()
    assert body["dropped_unknown"] == 2 and body["items"][0]["stage"] == "popular"
    assert s.metric("recgpt_unknown_items_dropped_total") == 2.0


def test_split_rules(serve: Callable[..., Running]) -> None:
    s = serve(max_k=100)
    h = ["1", "2", "3"]
    assert (lambda b: (b["n"], b["m"], len(b["items"])))(s.recall(user_id="u", k=20, history=h).json()) == (
        18,
        2,
        20,
    )
    assert (lambda b: (b["n"], b["m"]))(s.recall(user_id="u", k=20, n=20, history=h).json()) == (20, 0)
    assert (lambda b: (b["n"], b["m"]))(s.recall(user_id="u", n=6, m=4, history=h).json()) == (6, 4)
    assert s.recall(user_id="u", history=h).json()["n"] == 45  # default K = 50
    assert s.recall(user_id="u", k=5, n=4, m=4, history=h).status_code == 422


BAD = [
    '{"user_id":1,"k":"x"}',
    '{"user_id":"u","k":-5}',
    '{"user_id":"u","k":100000000}',
    "not json",
    '{"user_id":"u","history":"zz"}',
    '{"user_id":"u","kk":5}',
    '{"user_id":"u","k":501}',
    "[1,2]",
    "{}",
    '{"user_id":"u","history":[[1]]}',
    '{"user_id":"u","variant":"nope"}',
    '{"user_id":"u","shadow":"maybe"}',
    '{"user_id":"u","k":0}',
    '{"user_id":"u","n":0}',
    '{"user_id":null}',
    '{"user_id":"u","exclude":{"a":1}}',
]


def test_bad_recall_input_is_4xx(serve: Callable[..., Running]) -> None:
    s = serve()
    for body in BAD:
        r = s.client.post("/v1/recall", content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        assert "detail" in r.json()
    assert s.recall(user_id=1, k=3).json()["user_id"] == "1"  # a numeric user id is its string


def test_limits_are_4xx(serve: Callable[..., Running]) -> None:
    s = serve(max_history=10, max_body_bytes=5000, max_events=3)
    assert s.recall(user_id="u", history=["1"] * 11).status_code == 413
    big = json.dumps({"user_id": "u", "exclude": ["x" * 100] * 100})
    assert (
        s.client.post("/v1/recall", content=big, headers={"content-type": "application/json"}).status_code
        == 413
    )
    ev = [{"user_id": "u", "item_id": "1"}] * 4
    assert s.client.post("/v1/events", json=ev).status_code == 413
    for bad in ('{"user_id":"u"}', '{"events":[]}', '{"user_id":"u","item_id":"1","ts":"x"}', "nope"):
        r = s.client.post("/v1/events", content=bad, headers={"content-type": "application/json"})
        assert r.status_code == 422, bad
    assert s.metric("recgpt_recall_requests_total", status="500") == 0.0


def test_parity_with_offline_two_stage_recall(serve: Callable[..., Running], bundle_dir: Path) -> None:
    """The service's list (exact FAISS index) == model.recall.two_stage_recall with torch_search."""
    s = serve()
    b = load_bundle(bundle_dir)
    split = leave_one_out(load_dataset("synthetic"))
    search = torch_search(b.model.item_embeddings())
    for u in range(1, 200, 20):
        hist = split.test_hist[u - 1]  # the whole history: the service, like offline, excludes all of it
        user = b.idmap.users[u]
        for n, m in ((9, 1), (10, 0), (45, 5)):
            ref = two_stage_recall(b.model, [hist], np.array([u]), n, m, search, append=b.default_append)
            want = [b.idmap.items[i] for i in ref.items[0] if i > 0]
            body = s.recall(user_id=user, n=n, m=m, history=[b.idmap.items[i] for i in hist]).json()
            assert [x["item_id"] for x in body["items"]] == want, (u, n, m)
            np.testing.assert_allclose(
                [x["score"] for x in body["items"]], ref.scores[0], rtol=1e-4, atol=1e-4
            )
