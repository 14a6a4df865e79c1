"""What each route does, as plain functions of (state, parsed input). Routes in app.py stay thin."""

from __future__ import annotations

import logging
import time
import uuid

from fastapi import HTTPException

from . import engine
from .deps import AppState
from .engine import BadRequest, Served
from .schemas import (
    EventIn,
    EventsResponse,
    RecallItem,
    RecallRequest,
    RecallResponse,
    ReloadResponse,
    ShadowAck,
)
from .store import Event, StoreError

log = logging.getLogger("recgpt.service")


def _check_limits(state: AppState, req: RecallRequest) -> None:
    s = state.settings
    if req.history is not None and len(req.history) > s.max_history:
        raise HTTPException(413, f"history has {len(req.history)} items; the limit is {s.max_history}")
    if len(req.exclude) > s.max_exclude:
        raise HTTPException(413, f"exclude has {len(req.exclude)} items; the limit is {s.max_exclude}")


def compute_recall(
    state: AppState, served: Served, req: RecallRequest, request_id: str, traffic: str = "served"
) -> RecallResponse:
    t0 = time.perf_counter()
    metrics = state.metrics
    variant_name = req.variant or "?"
    try:
        variant = engine.pick_variant(served, req.user_id, req.variant)
        variant_name = variant.name
        k, n, m = engine.resolve_split(state.settings, variant, req.k, req.n, req.m)
        if req.history is not None:
            history, source = list(req.history), "request"
        else:
            try:
                history, source = state.store.get(req.user_id), "store"
            except StoreError as exc:  # NOTE: degrade, never fail: no history -> popular items
                metrics.redis_errors.labels(op="get").inc()
                log.warning("history store failed for recall %s: %s", request_id, exc)
                history, source = [], "none"
        metrics.latency.labels(stage="history", traffic=traffic).observe(time.perf_counter() - t0)
        out = engine.recall(
            served, variant, req.user_id, history, source, k, n, m, req.exclude, metrics, traffic
        )
    except BadRequest as exc:
        metrics.requests.labels(variant=variant_name, status="422", traffic=traffic).inc()
        raise HTTPException(422, str(exc)) from exc
    except Exception:
        metrics.requests.labels(variant=variant_name, status="500", traffic=traffic).inc()
        raise
    took = time.perf_counter() - t0
    metrics.latency.labels(stage="total", traffic=traffic).observe(took)
    metrics.requests.labels(variant=out.variant, status="200", traffic=traffic).inc()
    return RecallResponse(
        request_id=request_id,
        user_id=req.user_id,
        variant=out.variant,
        model_version=out.version,
        items=[RecallItem(item_id=i, score=s, stage=st) for i, s, st in out.items],
        n=out.n,
        m=out.m,
        history_source=out.history_source,
        dropped_unknown=out.dropped,
        took_ms=round(took * 1000, 3),
    )


def recall(state: AppState, served: Served, req: RecallRequest) -> RecallResponse:
    _check_limits(state, req)
    return compute_recall(state, served, req, req.request_id or uuid.uuid4().hex)


def _shadow_job(state: AppState, served: Served, req: RecallRequest, request_id: str) -> None:
    try:
        t0 = time.time()
        res = compute_recall(state, served, req, request_id, traffic="shadow")
        state.shadow_log.write(
            {
                "ts": t0,
                "request_id": request_id,
                "user_id": req.user_id,
                "variant": res.variant,
                "model_version": res.model_version,
                "items": [x.item_id for x in res.items],
                "stages": [x.stage for x in res.items],
                "latency_ms": res.took_ms,
            }
        )
    except Exception as exc:  # a background job has nobody to answer: log it
        log.warning("shadow recall %s failed: %s", request_id, exc)
    finally:
        with state.shadow_lock:
            state.shadow_pending -= 1


def shadow(state: AppState, served: Served, req: RecallRequest) -> ShadowAck:
    """Validate now, compute later (thread pool), answer at once. Never counted as served traffic."""
    _check_limits(state, req)
    request_id = req.request_id or uuid.uuid4().hex
    with state.shadow_lock:
        if state.shadow_pending >= state.settings.shadow_queue:
            state.metrics.shadow_dropped.inc()
            return ShadowAck(request_id=request_id, status="dropped")
        state.shadow_pending += 1
    state.shadow_pool.submit(_shadow_job, state, served, req, request_id)
    return ShadowAck(request_id=request_id, status="accepted")


def add_events(state: AppState, events: list[EventIn]) -> EventsResponse:
    if len(events) > state.settings.max_events:
        raise HTTPException(
            413, f"{len(events)} events; the limit per request is {state.settings.max_events}"
        )
    # NOTE: a batch is applied in ts order (events without ts keep their place after those with one)
    ordered = sorted(events, key=lambda e: (e.ts is None, e.ts or 0.0))
    try:
        applied, dup = state.store.append([Event(e.user_id, e.item_id, e.ts, e.event_id) for e in ordered])
    except StoreError as exc:
        state.metrics.redis_errors.labels(op="append").inc()
        state.metrics.events.labels(result="error").inc(len(events))
        raise HTTPException(503, f"history store unavailable: {exc}") from exc
    state.metrics.events.labels(result="applied").inc(applied)
    state.metrics.events.labels(result="duplicate").inc(dup)
    return EventsResponse(received=len(events), applied=applied, duplicates=dup)


def history(state: AppState, user_id: str) -> list[str]:
    try:
        return state.store.get(user_id)
    except StoreError as exc:
        state.metrics.redis_errors.labels(op="get").inc()
        raise HTTPException(503, f"history store unavailable: {exc}") from exc


def reload(state: AppState, bundle: str | None) -> ReloadResponse:
    """Build the new snapshot completely, then swap one reference. A failure leaves the old one serving."""
    t0 = time.perf_counter()
    if not state.reload_lock.acquire(blocking=False):
        raise HTTPException(409, "a reload is already running")
    try:
        path = bundle or state.settings.bundle
        try:
            served = engine.build_served(state.settings, path)
        except Exception as exc:
            state.metrics.reloads.labels(result="failed").inc()
            log.warning("reload of %s failed: %s", path, exc)
            raise HTTPException(
                422 if isinstance(exc, ValueError | OSError) else 500,
                f"reload failed, still serving the previous bundle: {exc}",
            ) from exc
        if bundle:
            state.settings = state.settings.model_copy(update={"bundle": bundle})
        state.served = served  # NOTE: the one atomic swap; in-flight requests keep the old snapshot
        state.metrics.set_versions(served.versions())
        state.metrics.reloads.labels(result="ok").inc()
        return ReloadResponse(
            status="reloaded", versions=served.versions(), took_ms=round((time.perf_counter() - t0) * 1000, 1)
        )
    finally:
        state.reload_lock.release()
