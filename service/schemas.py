"""Request and response bodies. Unknown fields are refused (422) so that a typo is not silently ignored.

NOTE: ids are strings; a JSON number where an id is expected is accepted and turned into its string
(`{"user_id": 1}` is user "1"), anything else (lists, objects, booleans) is a 422.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

Id = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
HARD_MAX = 1_000_000  # schema bound; the configured limits (Settings.max_k, ...) are checked after parsing


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class RecallRequest(_In):
    user_id: Id
    k: int | None = Field(default=None, ge=1, le=HARD_MAX)
    n: int | None = Field(default=None, ge=1, le=HARD_MAX)
    m: int | None = Field(default=None, ge=0, le=HARD_MAX)
    history: list[Id] | None = Field(default=None, max_length=HARD_MAX)
    exclude: list[Id] = Field(default_factory=list, max_length=HARD_MAX)
    request_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    variant: Id | None = None
    shadow: StrictBool = False


class RecallItem(BaseModel):
    item_id: str
    score: float
    stage: Literal["1", "2", "popular"]  # always a string: "1" / "2" recall stage, "popular" cold start


class RecallResponse(BaseModel):
    request_id: str
    user_id: str
    variant: str
    model_version: str
    items: list[RecallItem]
    n: int
    m: int
    history_source: Literal["request", "store", "none"]
    dropped_unknown: int
    took_ms: float


class ShadowAck(BaseModel):
    request_id: str
    status: Literal["accepted", "dropped"]


class EventIn(_In):
    user_id: Id
    item_id: Id
    ts: float | None = None
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


class EventBatch(_In):
    events: list[EventIn] = Field(min_length=1, max_length=HARD_MAX)


class EventsResponse(BaseModel):
    received: int
    applied: int
    duplicates: int


class HistoryResponse(BaseModel):
    user_id: str
    items: list[str]


class ReloadRequest(_In):
    bundle: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None


class ReloadResponse(BaseModel):
    status: Literal["reloaded"]
    versions: dict[str, str]
    took_ms: float
