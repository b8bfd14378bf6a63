"""Connection limits under uvicorn, so idle or slow clients cannot starve real ones.

uvicorn's own ``limit_concurrency`` counts *connections*, idle ones included: 1,400 sockets that
send nothing made every request, ``/health`` too, a 503 (without Retry-After) for as long as they
stayed open, and uvicorn has no deadline for a request's head. Instead, a `ConnectionGuard` is
mixed into uvicorn's HTTP protocol class (`guarded_protocol`), below the app, so it holds for
every route:

- **header deadline**: a request's head (request line and headers) must arrive within
  ``header_timeout_s`` of the connection's opening, or of the first byte of a keep-alive
  connection's next request. A client that sends nothing, or trickles one header at a time
  (slowloris), is answered 408 and closed.
- **idle keep-alive**: uvicorn's ``timeout_keep_alive`` closes a connection idle between requests.
- **connection cap**: at ``max_connections`` open connections, a new connection closes the
  oldest connection that has no request in flight (idle, or still sending its head); when every
  connection has a request in flight, the new one is answered 503 + Retry-After and closed. A
  request in flight is never cut: how many there are is bounded by the judge queue (503 +
  Retry-After too). The cap stays below the process's file-descriptor limit.

A request *body* has its own deadline in the app (``body_timeout_s``, 408).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

__all__ = ["ConnectionGuard", "guarded_protocol"]

log = logging.getLogger(__name__)

_FD_RESERVE = 128  # descriptors kept for everything but client connections (model files, logs, ...)
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def fd_limited(max_connections: int) -> int:
    """``max_connections``, lowered to fit the soft limit on open files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - _FD_RESERVE))


class ConnectionGuard:
    """The open connections of one server, oldest first, and what was done to whom."""

    def __init__(self, max_connections: int, header_timeout_s: float):
        self.max_connections = fd_limited(max_connections)
        if self.max_connections < max_connections:
            log.warning(
                "judgelm serve: at most %d connections (the open-files limit is low; raise `ulimit -n`)",
                self.max_connections,
            )
        self.header_timeout_s = header_timeout_s
        self.open: dict[Any, None] = {}  # protocol -> None, in arrival order (oldest first)
        self.evicted = 0  # idle or unfinished connections closed to make room
        self.timed_out = 0  # closed at the header deadline (silent, slowloris)
        self.refused = 0  # new connections answered 503 (every connection busy)

    def admit(self, conn: Any) -> bool:
        """Register a new connection, making room if needed; False when it was refused."""
        if len(self.open) >= self.max_connections:
            victim = next((c for c in self.open if not c.in_flight()), None)
            if victim is None:
                self.refused += 1
                conn.transport.write(_BUSY)
                conn.transport.close()
                return False
            self.evicted += 1
            self.forget(victim)
            victim.transport.close()
        self.open[conn] = None
        return True

    def forget(self, conn: Any) -> None:
        self.open.pop(conn, None)


def guarded_protocol(base: type[asyncio.Protocol], guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class ``base`` (h11 or httptools) under ``guard``."""

    class Guarded(base):  # type: ignore[misc,valid-type]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if guard.admit(self):
                self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.in_flight():  # the head arrived: the app has the request now
                self._disarm()
            elif self._deadline is None and not self.transport.is_closing():
                self._arm()  # the first bytes of a keep-alive connection's next request

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            guard.forget(self)
            super().connection_lost(exc)

        def in_flight(self) -> bool:
            """A request whose head has arrived and whose response is not complete yet."""
            cycle = self.cycle
            return cycle is not None and not cycle.response_complete

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(guard.header_timeout_s, self._head_too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _head_too_slow(self) -> None:
            self._deadline = None
            if self.in_flight() or self.transport.is_closing():
                return
            guard.timed_out += 1
            guard.forget(self)
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
