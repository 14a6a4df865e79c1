"""Reload swaps bundles atomically while requests keep succeeding; a failed reload keeps the old one."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.service.conftest import Running

AUTH = {"Authorization": "Bearer secret"}


def test_reload_under_load(serve: Callable[..., Running], bundle_dir: Path, bundle_v2: Path) -> None:
    s = serve()
    stop = threading.Event()
    versions: Counter[str] = Counter()
    failures: list[str] = []

    def hammer() -> None:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/v1/recall", json={"user_id": "u", "k": 10, "history": ["1", "2", "3"]})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    versions[r.json()["model_version"]] += 1

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()

    def served_some(version: str, at_least: int) -> None:
        deadline = time.time() + 30
        while versions[version] < at_least and time.time() < deadline:
            time.sleep(0.01)

    try:
        served_some("v1", 5)
        for path, version in ((bundle_v2, "v2"), (bundle_dir, "v1"), (bundle_v2, "v2")):
            before = versions[version]
            r = s.client.post("/admin/reload", json={"bundle": str(path)}, headers=AUTH)
            assert r.status_code == 200 and r.json()["status"] == "reloaded", r.text
            served_some(version, before + 5)  # requests keep flowing between reloads
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and versions["v1"] > 0 and versions["v2"] > 0
    assert s.recall(user_id="u", k=3).json()["model_version"] == "v2"
    assert s.metric("recgpt_model_info", variant="default", version="v2") == 1.0
    assert s.metric("recgpt_model_info", variant="default", version="v1") == 0.0
    assert s.client.post("/admin/reload", headers=AUTH).json()["versions"] == {
        "default": "v2"
    }  # same path again


def test_failed_reload_keeps_serving(
    serve: Callable[..., Running], bundle_copy: Path, tmp_path: Path
) -> None:
    s = serve()
    r = s.client.post("/admin/reload", json={"bundle": str(tmp_path / "missing")}, headers=AUTH)
    assert r.status_code == 422 and "manifest.json" in r.json()["detail"]
    (bundle_copy / "idmap.json").write_text("{}")
    r = s.client.post("/admin/reload", json={"bundle": str(bundle_copy)}, headers=AUTH)
    assert r.status_code == 422 and "idmap.json" in r.json()["detail"]
    assert s.recall(user_id="u", k=3).json()["model_version"] == "v1"
    assert s.metric("recgpt_reloads_total", result="failed") == 2.0
    assert s.client.post("/admin/reload", content="not json", headers=AUTH).status_code == 422


def test_reload_auth(serve: Callable[..., Running]) -> None:
    s = serve()
    assert s.client.post("/admin/reload").status_code == 401
    assert s.client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    off = serve(admin_token=None)
    assert off.client.post("/admin/reload", headers=AUTH).status_code == 403
