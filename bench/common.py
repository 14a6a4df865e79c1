"""A local server for the benchmarks (a uvicorn thread on 127.0.0.1), or a check that a URL is loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def check_loopback(url: str) -> str:
    """NOTE: the benchmarks fire many requests: they refuse any host but this machine's loopback."""
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"{url}: benchmarks only target 127.0.0.1 / localhost, not {host!r}")
    return url.rstrip("/")


@contextmanager
def local_service(bundle: str | None, url: str | None, **settings: object) -> Iterator[str]:
    """Yields a base URL: `url` (loopback only) if given, else a server started here on a free port."""
    if url:
        yield check_loopback(url)
        return
    if not bundle:
        raise ValueError("give a BUNDLE to start a local server, or --url of a running one")
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(bundle=bundle, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the local server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
