"""The app's shared state and every FastAPI dependency, in one module."""

from __future__ import annotations

import hmac
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .engine import Served
from .metrics import Metrics
from .settings import Settings
from .shadow import ShadowLog
from .store import HistoryStore


@dataclass
class AppState:
    """Built in the lifespan. `served` is swapped as one reference by a reload (readers take a local copy)."""

    settings: Settings
    metrics: Metrics
    store: HistoryStore
    shadow_log: ShadowLog
    shadow_pool: ThreadPoolExecutor
    served: Served | None = None
    load_error: str | None = None
    reload_lock: threading.Lock = field(default_factory=threading.Lock)
    shadow_pending: int = 0
    shadow_lock: threading.Lock = field(default_factory=threading.Lock)


def get_state(request: Request) -> AppState:
    return request.app.state.svc


def get_settings(state: AppState = Depends(get_state)) -> Settings:
    return state.settings


def get_served(state: AppState = Depends(get_state)) -> Served:
    # NOTE: read the reference once per request; a reload mid-request swaps it, this request keeps its copy
    served = state.served
    if served is None:
        raise HTTPException(503, f"no model loaded: {state.load_error or 'starting'}")
    return served


_bearer = HTTPBearer(auto_error=False)


def require_admin(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer), state: AppState = Depends(get_state)
) -> None:
    token = state.settings.admin_token
    if not token:
        raise HTTPException(403, "admin routes are disabled: set RECGPT_ADMIN_TOKEN")
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
