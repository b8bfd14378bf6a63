"""The judge server as an ASGI app (Starlette): `create_app(judge, config)`.

Endpoints:

- ``POST /v1/judge``: native/JudgeLM records in, JSONL-output records out (see `serve.schema`).
- ``POST /get_reward``: OpenRLHF's remote reward protocol (see `integrations.openrlhf`).
- ``POST /k/<API key>/get_reward``: the same, with the key in the path (only with an API key):
  OpenRLHF sends no headers. A query that cannot be judged is a flagged stand-in reward, not a 400.
- ``GET /health``: liveness and queue depth (never needs the API key: load balancers probe it).
- ``GET /metrics``: Prometheus text.
- ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``: the OpenAI API
  (see `judgelm.serve.openai`), for judges with an engine and a tokenizer.

Status codes: 400 bad input (the body names the field) or an option this judge cannot honour,
401 missing/wrong API key, 408 a body slower than ``body_timeout_s``, 413 request over the size
limits, 501 an option this judge cannot do yet, 503 queue full or shutting down (with
Retry-After). Every answer is valid JSON (a NaN is written as null). Every request, whatever its
outcome, is counted in ``/metrics``. Connection limits (silent, slow and idle clients) live in
`judgelm.serve.connections`, below the app, for every route.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from judgelm import strict_json
from judgelm.errors import InvalidSampleError, MissingDependencyError
from judgelm.integrations.openrlhf import read_reward_request, reward_response
from judgelm.io import output_record
from judgelm.serve.batcher import MicroBatcher, Overloaded, ShuttingDown
from judgelm.serve.config import ServeConfig
from judgelm.serve.metrics import ServerMetrics
from judgelm.serve.schema import RequestTooLarge, parse_judge_request
from judgelm.types import Sample

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _starlette() -> Any:
    try:
        import starlette.applications
        import starlette.middleware
        import starlette.responses
        import starlette.routing
    except ImportError:
        raise MissingDependencyError("starlette", "serve", "The judge server") from None
    return starlette


_KEYED_REWARD_PATH = "/k/***/get_reward"  # what /k/<key>/get_reward reads once the key is taken out
_URL_KEY = "judgelm.url_key"  # where the key travels in the ASGI scope


class _KeyFromPath:
    """ASGI middleware: takes the API key out of ``/k/<key>/get_reward`` before anything can log
    the path. The scope is changed in place on purpose: the HTTP server logs the request line
    from this same dict once the response is sent (uvicorn's access log then prints
    ``/k/***/get_reward``), so the key never reaches a log even with access logging on."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/k/"):
            # Any /k/<segment>/... (a typo'd tail too): the first segment is the key.
            scope[_URL_KEY], _, tail = path[len("/k/") :].partition("/")
            scope["path"] = f"/k/***/{tail}"
            scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


class _HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers or {}


def _json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    # Always valid JSON: a NaN (a verdict score JudgeLM's own parser read from "nan", an input's
    # NaN) is written as null, never as a bare NaN no strict client can read.
    body = strict_json.dumps(content).encode("utf-8")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _error_response(e: _HTTPError) -> Any:
    error: dict[str, Any] = {"message": e.message}
    if e.field is not None:
        error["field"] = e.field
    return _json_response({"error": error}, e.status, e.headers)


async def _read_json(request: Any, limit: int, timeout_s: float | None = None) -> Any:
    """The request body as JSON: over ``limit`` bytes is a 413 (refused before parsing), slower
    than ``timeout_s`` a 408, and text that is not JSON within `judgelm.strict_json`'s limits (not
    UTF-8, nested too deep, a lone surrogate anywhere, ...) a 400 naming the field, all before any
    handler (or model) sees it. Every route that takes a body reads it here."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _HTTPError(413, f"request body of {declared} bytes; this server takes at most {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():  # counts bytes even without Content-Length (chunked)
                size += len(chunk)
                if size > limit:
                    raise _HTTPError(413, f"request body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise _HTTPError(408, f"the request body took over {timeout_s:g} s", headers={"Connection": "close"}) from None
    try:
        return strict_json.loads(b"".join(chunks))
    except InvalidSampleError as e:
        raise (e if e.field else InvalidSampleError(f"the body: {e.detail}")) from None


def _check_options(judge: Any, options: Any) -> None:
    """Refuse (400, before the queue) options this judge cannot honour."""
    capabilities = getattr(getattr(judge, "engine", None), "capabilities", None)
    if options.scoring == "logits" and capabilities is not None and not capabilities.logits:
        raise InvalidSampleError(
            "this judge cannot read logits (its engine writes text); use 'text' or 'auto'", field="options.scoring"
        )


def create_app(judge: Any, config: ServeConfig | None = None, *, metrics: ServerMetrics | None = None) -> Any:
    """An ASGI app serving ``judge`` (any object with the `Judge.judge` signature).

    The app owns a `MicroBatcher`, started and drained with the app's lifespan: on shutdown,
    requests already accepted are finished before the model is let go."""
    st = _starlette()
    from starlette.responses import PlainTextResponse

    config = config or ServeConfig()
    metrics = metrics or ServerMetrics()
    batcher = MicroBatcher(
        judge,
        max_batch_size=config.max_batch_size,
        max_wait_s=config.max_wait_ms / 1000.0,
        max_queue=config.max_queue,
        metrics=metrics,
    )
    model_name = str(getattr(judge, "name", type(judge).__name__))
    expected_auth = f"Bearer {config.api_key}".encode() if config.api_key else None

    def endpoint(
        name: str, *, auth: bool = True
    ) -> Callable[[Callable[[Any], Awaitable[Any]]], Callable[[Any], Awaitable[Any]]]:
        """Wrap a handler with the API-key check, error mapping, and per-request metrics."""

        def wrap(handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
            async def run(request: Any) -> Any:
                start = time.monotonic()
                try:
                    if auth and expected_auth is not None:
                        given = request.headers.get("authorization", "").encode()
                        if not hmac.compare_digest(given, expected_auth):
                            raise _HTTPError(
                                401,
                                "missing or wrong API key",
                                headers={"WWW-Authenticate": "Bearer"},
                            )
                    response = await handler(request)
                except _HTTPError as e:
                    response = _error_response(e)
                except RequestTooLarge as e:
                    response = _error_response(_HTTPError(413, e.detail, field=e.field))
                except InvalidSampleError as e:
                    response = _error_response(_HTTPError(400, e.detail, field=e.field))
                except Overloaded as e:
                    response = _error_response(_HTTPError(503, str(e), headers={"Retry-After": str(e.retry_after)}))
                except ShuttingDown as e:
                    response = _error_response(
                        _HTTPError(503, str(e), headers={"Retry-After": "5", "Connection": "close"})
                    )
                except ValueError as e:
                    # Judge.judge raises ValueError only for options it cannot honour
                    # (e.g. scoring="logits" on an engine without logits).
                    response = _error_response(_HTTPError(400, f"not possible with this judge: {e}"))
                except NotImplementedError as e:
                    response = _error_response(_HTTPError(501, f"not supported by this judge: {e}"))
                except Exception:
                    log.exception("internal error in %s", name)
                    response = _error_response(_HTTPError(500, "internal error (see the server log)"))
                metrics.requests.inc(endpoint=name, status=str(response.status_code))
                metrics.request_latency.observe(time.monotonic() - start, endpoint=name)
                return response

            return run

        return wrap

    @endpoint("health", auth=False)
    async def health(request: Any) -> Any:
        return _json_response(
            {
                "status": "ok",
                "model": model_name,
                "queue_depth": batcher.queued_samples,
                "max_queue": config.max_queue,
            }
        )

    @endpoint("metrics")
    async def metrics_endpoint(request: Any) -> Any:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @endpoint("judge")
    async def judge_endpoint(request: Any) -> Any:
        parsed = parse_judge_request(await _read_json(request, config.max_body_bytes, config.body_timeout_s), config)
        _check_options(judge, parsed.options)
        verdicts = await batcher.submit([r.sample for r in parsed.records], parsed.options)  # type: ignore[misc]
        results = [output_record(r, v, model=model_name) for r, v in zip(parsed.records, verdicts, strict=True)]
        return _json_response({"model": model_name, "results": results})

    unjudgeable_seen: set[str] = set()  # each distinct reason is logged once

    async def reward(request: Any) -> Any:
        body = await _read_json(request, config.max_body_bytes, config.body_timeout_s)
        if (
            isinstance(body, dict)
            and isinstance(body.get("query"), list)
            and len(body["query"]) > config.max_request_samples
        ):
            raise RequestTooLarge(
                f"{len(body['query'])} queries; at most {config.max_request_samples} per request",
                field="query",
            )
        items = read_reward_request(body, config.reward)
        for item in items:
            if not isinstance(item, Sample):  # a stand-in reward, counted like an abstain
                metrics.abstains.inc(reason_code="invalid_input")
                if item.detail not in unjudgeable_seen:
                    unjudgeable_seen.add(item.detail)
                    log.warning("/get_reward: a query could not be judged (stand-in reward sent): %s", item.detail)
        samples = [item for item in items if isinstance(item, Sample)]
        verdicts = await batcher.submit(samples, config.reward.options)
        return _json_response(reward_response(verdicts, config.reward, items))

    reward_endpoint = endpoint("get_reward")(reward)

    @endpoint("get_reward", auth=False)
    async def keyed_reward_endpoint(request: Any) -> Any:
        given = str(request.scope.get(_URL_KEY, "")).encode()
        if not hmac.compare_digest(given, str(config.api_key).encode()):
            raise _HTTPError(401, "wrong API key in the URL")
        return await reward(request)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    routes = [
        st.routing.Route("/health", health, methods=["GET"]),
        st.routing.Route("/metrics", metrics_endpoint, methods=["GET"]),
        st.routing.Route("/v1/judge", judge_endpoint, methods=["POST"]),
        st.routing.Route("/get_reward", reward_endpoint, methods=["POST"]),
    ]
    if getattr(judge, "engine", None) is not None and getattr(judge, "tokenizer", None) is not None:
        from judgelm.serve.openai import AppTools, openai_routes

        tools = AppTools(read_json=_read_json, json_response=_json_response, http_error=_HTTPError)
        routes.extend(openai_routes(judge, config, batcher, endpoint, tools))
    middleware = []
    if config.api_key is not None:
        routes.append(st.routing.Route(_KEYED_REWARD_PATH, keyed_reward_endpoint, methods=["POST"]))
        middleware.append(st.middleware.Middleware(_KeyFromPath))
    app = st.applications.Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.batcher = batcher
    app.state.endpoint = endpoint  # the API-key check, error mapping and metrics, for routes added later (the UI)
    app.state.metrics = metrics
    app.state.config = config
    return app
