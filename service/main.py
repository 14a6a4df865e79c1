"""`uvicorn service.main:app`: the app with settings from the environment (used by --workers > 1)."""

from __future__ import annotations

from .app import create_app

app = create_app()
