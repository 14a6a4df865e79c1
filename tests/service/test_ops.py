"""docker-compose.yml and the Dockerfile agree with Settings (Docker itself cannot run here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _env_names() -> set[str]:
    names = {"REDIS_URL"}
    for name, field in Settings.model_fields.items():
        if name != "redis_url":
            names.add(f"RECGPT_{name.upper()}")
        assert field is not None
    return names


def test_compose_matches_settings() -> None:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"redis", "trainer", "recall"} <= set(services)
    recall = services["recall"]
    env = recall["environment"]
    assert set(env) <= _env_names(), set(env) - _env_names()
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert Settings(**{k.removeprefix("RECGPT_").lower(): v for k, v in env.items() if k != "REDIS_URL"})
    assert recall["ports"] == ["8000:8000"]
    assert "8000/readyz" in " ".join(recall["healthcheck"]["test"])
    assert recall["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert recall["depends_on"]["redis"]["condition"] == "service_healthy"
    bundle = env["RECGPT_BUNDLE"]
    assert (
        bundle in services["trainer"]["command"][-1] and "recgpt export" in services["trainer"]["command"][-1]
    )
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in text
    assert text.index("torch==2.13.0") < text.index("pip install .")
    assert "\nUSER recgpt" in text and "HEALTHCHECK" in text and "/healthz" in text
    for line in text.splitlines():
        if line.startswith("ENV"):
            for name in ("RECGPT_BUNDLE", "RECGPT_SHADOW_LOG"):
                assert name in _env_names()
