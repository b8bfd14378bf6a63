"""Running the judge server with uvicorn: in the foreground (`serve`, used by ``judgelm serve``)
or on a background thread (`BackgroundServer`, for tests, benchmarks and notebooks).

Shutdown is graceful in both: uvicorn stops accepting connections, waits up to
``graceful_timeout_s`` for in-flight requests, then the app's lifespan drains the batcher.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from typing import Any

from judgelm.errors import MissingDependencyError
from judgelm.serve.app import create_app
from judgelm.serve.config import ServeConfig

__all__ = ["BackgroundServer", "is_loopback", "serve"]

log = logging.getLogger(__name__)


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", "serve", "The judge server") from None
    return uvicorn


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _uvicorn_config(
    app: Any, config: ServeConfig, host: str, port: int, log_level: str, graceful_timeout_s: float
) -> Any:
    uvicorn = _uvicorn()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout_s,
        # A hard cap on concurrent connections+requests on top of the batcher's queue bound, so
        # a flood of idle or slow clients cannot exhaust the process either (uvicorn: 503).
        limit_concurrency=config.max_queue + 256,
    )


def serve(
    judge: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    log_level: str = "info",
    graceful_timeout_s: float = 30.0,
) -> None:
    """Serve ``judge`` (or an app from `create_app`, served with ``config``) until SIGINT/SIGTERM
    (blocking)."""
    config = config or ServeConfig()
    if not is_loopback(host) and config.api_key is None:
        log.warning(
            "judgelm serve: listening on %s without an API key: anyone who reaches it can judge",
            host,
        )
    app = judge if hasattr(judge, "router") else create_app(judge, config)
    server = _uvicorn().Server(_uvicorn_config(app, config, host, port, log_level, graceful_timeout_s))
    # uvicorn handles SIGINT/SIGTERM itself (graceful shutdown), then re-raises the signal under
    # the handlers that were installed before it. Quiet handlers there let a clean shutdown end
    # as a normal return (exit 0) instead of a death by signal or a KeyboardInterrupt.
    previous = {sig: signal.signal(sig, _after_shutdown) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _after_shutdown(signum: int, frame: Any) -> None:
    log.debug("judgelm serve: signal %d re-raised after shutdown", signum)


class BackgroundServer:
    """A judge server on a background thread, bound to a free loopback port by default.

    >>> with BackgroundServer(judge) as srv:                          # doctest: +SKIP
    ...     JudgeClient(srv.url).judge([...])
    """

    def __init__(
        self,
        judge_or_app: Any,
        config: ServeConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        graceful_timeout_s: float = 30.0,
        log_level: str = "warning",
    ):
        self.config = config or ServeConfig()
        # An app (from create_app) passes through; anything else is a judge.
        self.app = judge_or_app if hasattr(judge_or_app, "router") else create_app(judge_or_app, self.config)
        # Bind here (port 0 = a free port chosen by the OS) so the port is known before start
        # and no other process can take it in between.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, self._sock.getsockname()[1]
        uv_config = _uvicorn_config(self.app, self.config, host, self.port, log_level, graceful_timeout_s)
        self.server = _uvicorn().Server(uv_config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self._sock]},
            name="judgelm-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("the judge server did not start")
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful: finish in-flight requests, then return."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
