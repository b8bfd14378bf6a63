"""The judge page as routes on the judge server's own app (`judgelm.serve.create_app`): the same
micro-batcher, limits, API key, error mapping and metrics serve the page and ``/v1/judge``.

Routes added (the page is static; everything it shows comes from the API routes):

- ``GET /``, ``/ui/app.js``, ``/ui/app.css``: the page (no key needed: it holds no data; it asks
  for the key and sends it as ``Authorization: Bearer`` on every API call).
- ``GET /ui/api/info``: the judge (name, what it can do, calibration, limits).
- ``POST /ui/api/judge``: one sample; NDJSON events: ``token`` (the judge's text as it is
  generated, per order), then ``verdict`` (`Verdict.to_dict`, the conversation id for "ask why").
- ``POST /ui/api/discuss``: a follow-up question (`Judge.discuss`); ``token`` events, ``reply``.
- ``POST /ui/api/batch``: a JSONL upload; ``start``, ``rows`` (per model call), ``done``.
- ``GET /ui/api/batch/<job>/results.jsonl`` and ``.../report.md``: the downloads.

Safety, beyond the server's own: API routes take JSON only (a cross-site form cannot post
JSON without the browser's preflight, which this server never answers) and refuse a foreign
``Origin``; bound to loopback, every request must name a loopback host (``Host``), which stops
DNS-rebinding pages from reaching it through the user's browser.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from typing import Any

from judgelm.errors import InvalidSampleError, JudgeLMError
from judgelm.serve.app import _HTTPError, _json_response, _read_json, _starlette, create_app
from judgelm.serve.batcher import Overloaded, ShuttingDown
from judgelm.serve.config import ServeConfig
from judgelm.serve.server import is_loopback
from judgelm.ui.batch import BatchJob, read_upload, run_batch
from judgelm.ui.forms import parse_discuss_form, parse_judge_form, parse_options
from judgelm.ui.stream import NDJSON, TokenText, ndjson, stream_call

__all__ = ["create_ui_app"]

log = logging.getLogger(__name__)

_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# What the page's server keeps in memory, oldest dropped first: "ask why" histories (with their
# images) and finished batch jobs (their results file), each bounded in count and in bytes.
MAX_CONVERSATIONS, CONVERSATION_BYTES = 256, 128 << 20
MAX_JOBS, JOB_BYTES = 16, 256 << 20


class _LoopbackHostOnly:
    """ASGI middleware: refuse requests whose ``Host`` is not a loopback name or address."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
            name = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
            if not is_loopback(name):
                from starlette.responses import PlainTextResponse

                message = "this judge page answers only to localhost (DNS-rebinding guard)"
                await PlainTextResponse(message, status_code=421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Bounded:
    """Entries by key that forget the oldest past ``max_items`` entries or ``max_bytes`` in all
    (the newest entry is always kept)."""

    def __init__(self, max_items: int, max_bytes: int):
        self.max_items, self.max_bytes = max_items, max_bytes
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    def put(self, key: str, value: Any, size: int) -> None:
        if key in self._entries:
            self._bytes -= self._entries.pop(key)[1]
        self._entries[key] = (value, size)
        self._bytes += size
        while len(self._entries) > 1 and (len(self._entries) > self.max_items or self._bytes > self.max_bytes):
            self._bytes -= self._entries.popitem(last=False)[1][1]

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]


def _static(name: str) -> bytes:
    return (files("judgelm.ui") / "static" / name).read_bytes()


async def _form(request: Any, limit: int) -> Any:
    """The JSON body of a page request: JSON only, from this page's origin only."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise _HTTPError(415, "send the form as application/json")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
        raise _HTTPError(403, "requests from other sites are refused")
    return await _read_json(request, limit)


async def _events(source: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """NDJSON lines of ``source``; a failure after the stream began is its last event."""
    try:
        async for event in source:
            yield ndjson(event)
    except (JudgeLMError, Overloaded, ShuttingDown) as e:  # bad input, a discussion too long, a full queue
        yield ndjson({"event": "error", "message": getattr(e, "detail", str(e)), "field": getattr(e, "field", None)})
    except (ValueError, NotImplementedError) as e:  # an option this judge cannot honour
        yield ndjson({"event": "error", "message": f"not possible with this judge: {e}"})
    except Exception:
        log.exception("internal error in a page stream")
        yield ndjson({"event": "error", "message": "internal error (see the server log)"})


def create_ui_app(judge: Any, config: ServeConfig | None = None, *, loopback: bool = True) -> Any:
    """The judge server's app (`create_app`) with the page on top. ``loopback``: the server is
    bound to a loopback address, so requests naming another host are refused."""
    st = _starlette()
    from starlette.responses import Response, StreamingResponse

    config = config or ServeConfig()
    app = create_app(judge, config)
    batcher, endpoint = app.state.batcher, app.state.endpoint
    model = str(getattr(judge, "name", type(judge).__name__))
    conversations = _Bounded(MAX_CONVERSATIONS, CONVERSATION_BYTES)  # id -> (Verdict | Discussion, images)
    jobs = _Bounded(MAX_JOBS, JOB_BYTES)  # id -> BatchJob
    page, assets = _static("index.html"), {name: _static(name) for name in _STATIC}

    def stream(source: AsyncIterator[dict[str, Any]]) -> Any:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(_events(source), media_type=NDJSON, headers=headers)

    async def index(request: Any) -> Any:
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    async def asset(request: Any) -> Any:
        name = request.path_params["name"]
        if name not in assets:
            return Response(b"not found", status_code=404)
        return Response(assets[name], media_type=_STATIC[name], headers=_PAGE_HEADERS)

    @endpoint("ui_info")
    async def info(request: Any) -> Any:
        calibration = judge.calibration
        caps = judge.engine.capabilities
        return _json_response(
            {
                "model": model,
                "engine": getattr(judge.engine, "reason", ""),
                "logits": caps.logits,
                "images": caps.images,
                "calibration": None if calibration.is_identity else calibration.to_dict(),
                "max_new_tokens": config.max_new_tokens_limit,
                "abstain_threshold": getattr(judge, "abstain_threshold", None),
            }
        )

    @endpoint("ui_judge")
    async def judge_sample(request: Any) -> Any:
        body = await _form(request, config.max_body_bytes)
        form = await asyncio.to_thread(parse_judge_form, body, config)  # decodes images: off the event loop

        def run(emit: Callable[[dict[str, Any]], None]) -> Any:
            texts: dict[int, TokenText] = {}

            def on_token(_sample: int, order: int, token: int) -> None:
                delta = texts.setdefault(order, TokenText(judge.tokenizer)).add(token)
                if delta:
                    emit({"event": "token", "order": order, "text": delta})

            return judge.judge([form.sample], form.options, on_token=on_token)[0]

        async def events() -> AsyncIterator[dict[str, Any]]:
            async for item in stream_call(batcher.call, run):
                if isinstance(item, tuple):
                    verdict = item[1]
                    conversation = secrets.token_urlsafe(12)
                    size = len(verdict.prompt or "") + sum(len(i) for i in form.sample.images)
                    conversations.put(conversation, (verdict, form.sample.images), size)
                    most_likely = [d.mode for d in verdict.distributions] if verdict.distributions else None
                    yield {
                        "event": "verdict",
                        "verdict": verdict.to_dict(),
                        "most_likely": most_likely,
                        "calibrated": form.options.calibrated and not judge.calibration.is_identity,
                        "conversation": conversation,
                    }
                else:
                    yield item

        return stream(events())

    @endpoint("ui_discuss")
    async def discuss(request: Any) -> Any:
        conversation, message, tokens = parse_discuss_form(
            await _form(request, config.max_body_bytes), config.max_new_tokens_limit
        )
        kept = conversations.get(conversation)
        if kept is None:
            raise _HTTPError(404, "unknown conversation (the page keeps the latest ones only): judge again")
        about, images = kept

        def run(emit: Callable[[dict[str, Any]], None]) -> Any:
            text = TokenText(judge.tokenizer)

            def on_token(token: int) -> None:
                if delta := text.add(token):
                    emit({"event": "token", "text": delta})

            return judge.discuss(about, message, max_new_tokens=tokens, images=images, on_token=on_token)

        async def events() -> AsyncIterator[dict[str, Any]]:
            async for item in stream_call(batcher.call, run):
                if isinstance(item, tuple):
                    discussion = item[1]
                    size = len(discussion.context) + sum(len(t.content) for t in discussion.turns)
                    size += sum(len(i) for i in discussion.images)
                    conversations.put(conversation, (discussion, ()), size)  # a Discussion keeps its images
                    yield {"event": "reply", "text": discussion.reply, "turns": len(discussion.turns)}
                else:
                    yield item

        return stream(events())

    @endpoint("ui_batch")
    async def batch(request: Any) -> Any:
        body = await _form(request, config.max_body_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("jsonl"), str):
            raise InvalidSampleError("required: the file's text", field="jsonl")
        name = body.get("name") if isinstance(body.get("name"), str) else "upload.jsonl"
        options = parse_options(body, config)
        records = await asyncio.to_thread(read_upload, body["jsonl"], name, options.mode)
        if not records:
            raise InvalidSampleError("the file holds no records", field="jsonl")
        job_id = secrets.token_urlsafe(12)

        async def events() -> AsyncIterator[dict[str, Any]]:
            run = run_batch(
                records, options, batcher, job_id=job_id, name=name, model=model, chunk=config.max_batch_size
            )
            async for item in run:
                if isinstance(item, BatchJob):
                    jobs.put(job_id, item, len(item.results) + len(item.report or ""))
                    yield {"event": "done", "job": job_id, "name": item.name, "report": item.report}
                else:
                    yield item

        return stream(events())

    @endpoint("ui_download")
    async def download(request: Any) -> Any:
        job: BatchJob | None = jobs.get(request.path_params["job"])
        kind = request.path_params["kind"]
        if job is None or kind not in ("results.jsonl", "report.md") or (kind == "report.md" and not job.report):
            raise _HTTPError(404, "no such download (the page keeps the last jobs only)")
        stem = job.name.removesuffix(".jsonl")
        if kind == "report.md":
            body, media, filename = job.report.encode("utf-8"), "text/markdown; charset=utf-8", f"{stem}.report.md"
        else:
            body, media, filename = job.results, NDJSON, f"{stem}.judged.jsonl"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
        return Response(body, media_type=media, headers=headers)

    app.router.routes.extend(
        [
            st.routing.Route("/", index, methods=["GET"]),
            st.routing.Route("/ui/{name}", asset, methods=["GET"]),
            st.routing.Route("/ui/api/info", info, methods=["GET"]),
            st.routing.Route("/ui/api/judge", judge_sample, methods=["POST"]),
            st.routing.Route("/ui/api/discuss", discuss, methods=["POST"]),
            st.routing.Route("/ui/api/batch", batch, methods=["POST"]),
            st.routing.Route("/ui/api/batch/{job}/{kind}", download, methods=["GET"]),
        ]
    )
    if loopback:
        app.add_middleware(_LoopbackHostOnly)
    app.state.conversations, app.state.jobs = conversations, jobs
    return app
