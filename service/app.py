"""The FastAPI app: lifespan (bundle, store, pools), middleware, error handlers and thin routes.

NOTE: every route that runs torch or blocking I/O is a plain `def` (FastAPI runs it in its threadpool);
an `async def` doing torch work would block the event loop and every other request with it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import handlers
from .deps import AppState, get_served, get_state, require_admin
from .engine import Served, build_served
from .metrics import Metrics
from .schemas import (
    EventBatch,
    EventIn,
    EventsResponse,
    HistoryResponse,
    RecallRequest,
    RecallResponse,
    ReloadRequest,
    ReloadResponse,
    ShadowAck,
)
from .settings import Settings, get_settings
from .shadow import ShadowLog
from .store import HistoryStore, MemoryStore, RedisStore

log = logging.getLogger("recgpt.service")


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over `limit` bytes (by Content-Length, or counted while read)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await JSONResponse({"detail": f"body over {self.limit} bytes"}, 413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return msg

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await JSONResponse({"detail": f"body over {self.limit} bytes"}, 413)(scope, receive, send)


class _TooLarge(Exception):
    pass


def make_store(settings: Settings, cap: int) -> HistoryStore:
    # NOTE: keep more than the model reads (max_len): every stored item is excluded from the results
    cap = settings.history_cap or max(cap, 512)
    if settings.redis_url:
        return RedisStore(
            settings.redis_url,
            cap,
            settings.history_ttl_s,
            settings.event_ttl_s,
            settings.redis_timeout_s,
            settings.redis_prefix,
        )
    return MemoryStore(cap, settings.history_ttl_s, settings.event_ttl_s)


def create_app(settings: Settings | None = None, served: Served | None = None) -> FastAPI:
    """`served` (optional) skips loading in the lifespan; else the bundle loads at startup, not at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or get_settings()
        torch.set_num_threads(max(1, s.torch_threads))  # NOTE: per worker process; default = all cores
        metrics = Metrics()
        snapshot = served or build_served(s)  # a bad bundle fails startup loudly
        state = AppState(
            settings=s,
            metrics=metrics,
            store=make_store(s, snapshot.default.max_len),
            shadow_log=ShadowLog(s.shadow_log),
            shadow_pool=ThreadPoolExecutor(max(1, s.shadow_workers), thread_name_prefix="shadow"),
            served=snapshot,
        )
        metrics.set_versions(snapshot.versions())
        app.state.svc = state
        log.info("serving %s", snapshot.versions())
        try:
            yield
        finally:
            state.shadow_pool.shutdown(wait=True, cancel_futures=False)
            state.store.close()

    app = FastAPI(title="RecGPT recall", version="1", lifespan=lifespan)
    limit = (settings or get_settings()).max_body_bytes
    app.add_middleware(BodyLimit, limit=limit)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": "invalid request", "errors": errors}, 422)

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        svc = getattr(request.app.state, "svc", None)
        if svc is not None:
            svc.metrics.http.labels(
                route=getattr(route, "path", "unmatched"), status=str(response.status_code)
            ).inc()
        return response

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(state: AppState = Depends(get_state)) -> JSONResponse:
        served = state.served
        checks = {
            "model": served is not None,
            "index": served is not None and all(b.index.index.ntotal > 0 for b in served.bundles.values()),
        }
        if state.settings.redis_url:
            checks["redis"] = state.store.ping()
        ok = all(checks.values())
        body = {
            "status": "ready" if ok else "not ready",
            "checks": checks,
            "versions": served.versions() if served else {},
        }
        return JSONResponse(body, 200 if ok else 503)

    @app.get("/metrics")
    def metrics(state: AppState = Depends(get_state)) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/recall", response_model=RecallResponse, responses={202: {"model": ShadowAck}})
    def recall(
        req: RecallRequest,
        state: AppState = Depends(get_state),
        served: Served = Depends(get_served),
        x_shadow: str | None = Header(default=None),
    ) -> RecallResponse | JSONResponse:
        if req.shadow or (x_shadow or "").strip().lower() in ("1", "true", "yes"):
            return JSONResponse(handlers.shadow(state, served, req).model_dump(), 202)
        return handlers.recall(state, served, req)

    @app.post("/v1/events", response_model=EventsResponse)
    def events(
        body: EventIn | EventBatch | list[EventIn], state: AppState = Depends(get_state)
    ) -> EventsResponse:
        evs = [body] if isinstance(body, EventIn) else body.events if isinstance(body, EventBatch) else body
        return handlers.add_events(state, evs)

    @app.get("/v1/users/{user_id}/history", response_model=HistoryResponse)
    def user_history(user_id: str, state: AppState = Depends(get_state)) -> HistoryResponse:
        return HistoryResponse(user_id=user_id, items=handlers.history(state, user_id))

    @app.post("/admin/reload", response_model=ReloadResponse, dependencies=[Depends(require_admin)])
    def reload(body: ReloadRequest | None = None, state: AppState = Depends(get_state)) -> ReloadResponse:
        return handlers.reload(state, body.bundle if body else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, 500)

    return app
