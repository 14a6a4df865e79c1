"""Service settings from the environment (pydantic-settings). docker-compose.yml uses the same names."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every field reads RECGPT_<FIELD> (e.g. RECGPT_BUNDLE, RECGPT_MAX_K), except `redis_url`: REDIS_URL."""

    model_config = SettingsConfigDict(env_prefix="RECGPT_", populate_by_name=True, extra="ignore")

    bundle: str | None = None  # the bundle folder to serve (RECGPT_BUNDLE)
    variants: str | None = None  # A/B variants file, YAML or JSON (RECGPT_VARIANTS)
    admin_token: str | None = None  # bearer token for /admin/*; unset: admin routes answer 403
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    redis_timeout_s: float = 0.25  # NOTE: short: a hung Redis must not hold recall requests
    redis_prefix: str = "recgpt"

    default_k: int = 50
    max_k: int = 500
    max_history: int = 1000  # longest `history` a request may send (the model reads its last max_len)
    max_exclude: int = 5000
    max_events: int = 1000  # events per batch
    max_body_bytes: int = 1_000_000
    history_cap: int | None = None  # items kept per user; None: max(512, the model's max_len)
    history_ttl_s: int = 30 * 24 * 3600
    event_ttl_s: int = 7 * 24 * 3600  # how long an event_id is remembered for de-duplication

    torch_threads: int = 1  # per worker process
    faiss_threads: int = 1
    shadow_log: str = "shadow.jsonl"
    shadow_workers: int = 2
    shadow_queue: int = 1000  # shadow requests waiting beyond this are dropped (counted)


@lru_cache
def get_settings() -> Settings:
    return Settings()
