"""One HTTP client for OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp's server,
``judgelm serve``, hosted APIs): what `Judge.from_endpoint` and ``judgelm distill`` talk through.

- A concurrency limit (a thread pool over one `httpx.Client`: the engine API is synchronous).
- Per-request timeouts; retries with exponential backoff and jitter for connection errors,
  timeouts, 408, 409, 429, 500, 502, 503 and 504, honouring ``Retry-After`` (seconds or an HTTP date); other 4xx
  answers are the request's fault and are not retried.
- An optional request-rate limit (requests per minute), and token counts from ``usage``.
- A request that still fails raises `EndpointError` (or, through `OpenAIHTTP.map`, becomes that
  item's `EndpointError` value), never a lost item.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from judgelm.errors import JudgeLMError, MissingDependencyError

__all__ = ["EndpointError", "OpenAIHTTP", "Usage"]

T = TypeVar("T")
R = TypeVar("R")

# timeouts, conflicts, rate limits and transient server errors; not 501 (never going to work) or 505+
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_SLEEP_S = 60.0


class EndpointError(JudgeLMError):
    """A request to an OpenAI-compatible server failed (after its retries, if retryable).
    ``status`` is the HTTP status (None: no answer: connection error or timeout)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Usage:
    """Requests and tokens so far (from each response's ``usage``), thread-safe."""

    requests: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("requests", "failures", "retries", "prompt_tokens", "completion_tokens")}


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("httpx", "serve", "Talking to an OpenAI-compatible server") from None
    return httpx


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (RFC 9110); None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    err = body.get("error", body) if isinstance(body, Mapping) else body
    msg = err.get("message", err) if isinstance(err, Mapping) else err
    return str(msg)[:300]


class _RateLimit:
    """At most ``per_minute`` request starts in any minute (evenly spaced)."""

    def __init__(self, per_minute: float | None):
        self.gap = 60.0 / per_minute if per_minute else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.gap:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.gap
        if start > now:
            time.sleep(start - now)


class OpenAIHTTP:
    """A client for one OpenAI-compatible server (``base_url`` like ``http://host:8000/v1``; a
    URL without a path gets ``/v1``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        concurrency: int = 8,
        requests_per_minute: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        url = base_url.rstrip("/")
        if url.count("/") <= 2:  # scheme://host[:port] without a path
            url += "/v1"
        self.base_url = url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.usage = Usage()
        self._sleep = sleep
        self._rate = _RateLimit(requests_per_minute)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = _httpx().Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = _httpx().Client(base_url=self.base_url, headers=headers, timeout=timeout, limits=limits)
        self._pool: ThreadPoolExecutor | None = None

    # ---- one request ------------------------------------------------------------------------
    def _delay(self, attempt: int, retry_after: float | None) -> float:
        base = retry_after if retry_after is not None else self.backoff * 2**attempt * (1 + random.random())
        return min(base, _MAX_SLEEP_S)

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer to one request, retried as the module docstring says."""
        httpx = _httpx()
        last, status = "no attempt", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.usage.add(retries=1)
            self._rate.wait()
            self.usage.add(requests=1)
            try:
                response = self._client.request(method, path, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last, status = f"{type(e).__name__}: {e}", None
                if attempt < self.max_retries:
                    self._sleep(self._delay(attempt, None))
                continue
            if response.status_code < 400:
                try:
                    body = response.json()
                except ValueError:
                    self.usage.add(failures=1)
                    raise EndpointError(f"{path}: the answer is not JSON", status=response.status_code) from None
                usage = body.get("usage") if isinstance(body, Mapping) else None
                if isinstance(usage, Mapping):
                    self.usage.add(
                        prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        completion_tokens=int(usage.get("completion_tokens") or 0),
                    )
                return body
            last, status = f"HTTP {response.status_code}: {_message(response)}", response.status_code
            if response.status_code not in _RETRY_STATUS:
                self.usage.add(failures=1)
                raise EndpointError(f"{path}: {last}", status=response.status_code)
            if attempt < self.max_retries:
                self._sleep(self._delay(attempt, retry_after_seconds(response.headers.get("retry-after"))))
        self.usage.add(failures=1)
        raise EndpointError(f"{path}: failed after {self.max_retries + 1} attempts ({last})", status=status)

    def post(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, payload)

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    # ---- many requests ----------------------------------------------------------------------
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R | EndpointError]:
        """``fn(item)`` for every item, ``concurrency`` at a time, in input order; an item whose
        ``fn`` raises `EndpointError` gets that error in its place."""

        def safe(item: T) -> R | EndpointError:
            try:
                return fn(item)
            except EndpointError as e:
                return e

        if len(items) <= 1 or self.concurrency == 1:
            return [safe(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="judgelm-http")
        return list(self._pool.map(safe, items))

    def close(self) -> None:
        self._client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
