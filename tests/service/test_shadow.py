"""Shadow traffic is logged, answered at once with 202 and not counted as served; the offline report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.cli import main
from service.shadow import shadow_report
from tests.service.conftest import Running


def test_shadow_requests_logged_not_served(serve: Callable[..., Running], tmp_path: Path) -> None:
    s = serve(shadow_log=str(tmp_path / "sh.jsonl"))
    r1 = s.recall(user_id="sh1", k=5, history=["1", "2"], shadow=True, request_id="r1")
    r2 = s.client.post("/v1/recall", json={"user_id": "sh2", "k": 5}, headers={"X-Shadow": "1"})
    assert r1.status_code == r2.status_code == 202
    assert r1.json() == {"request_id": "r1", "status": "accepted"}
    log = tmp_path / "sh.jsonl"
    deadline = time.time() + 20
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.05)
    recs = {r["request_id"]: r for r in map(json.loads, log.read_text().splitlines())}
    assert (
        recs["r1"]["user_id"] == "sh1"
        and len(recs["r1"]["items"]) == 5
        and recs["r1"]["variant"] == "default"
    )
    assert {"ts", "latency_ms", "model_version"} <= set(recs["r1"])
    assert s.metric("recgpt_recall_requests_total", traffic="served") == 0.0
    assert s.metric("recgpt_recall_requests_total", traffic="shadow", status="200") == 2.0
    assert (
        s.recall(user_id="sh1", k=5, shadow=True, n=9, m=9).status_code == 202
    )  # validated later: logged fail
    assert s.recall(user_id="sh1", k="x", shadow=True).status_code == 422  # schema errors are still 4xx


def test_shadow_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, events = tmp_path / "log.jsonl", tmp_path / "events.jsonl"
    log.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {
                    "ts": 10,
                    "request_id": "a",
                    "user_id": "u1",
                    "variant": "A",
                    "items": ["x", "y"],
                    "latency_ms": 1,
                },
                {
                    "ts": 10,
                    "request_id": "b",
                    "user_id": "u2",
                    "variant": "A",
                    "items": ["x", "y"],
                    "latency_ms": 1,
                },
                {
                    "ts": 10,
                    "request_id": "c",
                    "user_id": "u1",
                    "variant": "B",
                    "items": ["z", "q"],
                    "latency_ms": 1,
                },
                {
                    "ts": 10,
                    "request_id": "d",
                    "user_id": "u3",
                    "variant": "B",
                    "items": ["z"],
                    "latency_ms": 1,
                },
            ]
        )
    )
    events.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {"user_id": "u1", "item_id": "y", "ts": 11},
                {"user_id": "u1", "item_id": "q", "ts": 5},
                {"user_id": "u2", "item_id": "n", "ts": 12},
            ]
        )
    )
    rep = shadow_report(log, events, k=2)
    assert rep["A"]["judged"] == 2 and rep["A"]["HR@2"] == 0.5
    assert rep["A"]["NDCG@2"] == pytest.approx(0.5 * (1 / 1.5849625))
    assert rep["B"] == {"lists": 2, "judged": 1, "HR@2": 0.0, "NDCG@2": 0.0}  # q came before the list: no hit
    assert main(["shadow-report", str(log), str(events), "--k", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["A"]["HR@2"] == 0.5
