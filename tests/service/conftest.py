"""Session fixtures: a tiny trained run, its bundles, a real redis-server and real uvicorn servers.

Everything listens on 127.0.0.1 only, on free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from service.app import create_app
from service.bundle import export_bundle
from service.deps import AppState
from service.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.train import TrainConfig, run

    out = tmp_path_factory.mktemp("run") / "syn"
    cfg = TrainConfig(
        data="synthetic",
        model="recgpt",
        loss="ce",
        epochs=3,
        lr=3e-3,
        batch_size=64,
        dropout=0.2,
        d_model=32,
        out=str(out),
    )
    run(cfg, log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def bundle_dir(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "v1"
    export_bundle(run_dir, out, index_kind="flat", version="v1")
    return out


@pytest.fixture(scope="session")
def bundle_v2(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "v2"
    export_bundle(run_dir, out, index_kind="flat", version="v2")
    return out


@pytest.fixture
def bundle_copy(bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy a test may tamper with."""
    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    return out


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    srv = RedisServer(free_port())
    yield srv
    srv.stop()


class Running:
    """A uvicorn server in a thread, on a real loopback socket."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def state(self) -> AppState:
        return self.app.state.svc

    def metric(self, name: str, **labels: str) -> float:
        """A sample's value from /metrics (0 when absent)."""
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if all(f'{k}="{v}"' in line for k, v in labels.items()):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def recall(self, **body: object) -> httpx.Response:
        return self.client.post("/v1/recall", json=body)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def serve(tmp_path: Path, bundle_dir: Path) -> Iterator[Callable[..., Running]]:
    """serve(**settings) -> a running server; defaults: the v1 bundle, in-process store, admin token."""
    running: list[Running] = []

    def start(**kw: object) -> Running:
        base: dict = {
            "bundle": str(bundle_dir),
            "admin_token": "secret",
            "shadow_log": str(tmp_path / "shadow.jsonl"),
            "torch_threads": 1,
        }
        r = Running(Settings(**{**base, **kw}))
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()
