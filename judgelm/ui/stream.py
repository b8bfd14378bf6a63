"""Streaming a model call to the page: tokens chosen on the model thread become text deltas, sent
as NDJSON lines (one JSON event per line) over a chunked HTTP response the page reads with fetch.

Server-sent events would do the same, but ``EventSource`` only GETs, and a judge form (answers,
images) belongs in a POST body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from judgelm.eval.evaluate import jsonable

__all__ = ["NDJSON", "TokenText", "ndjson", "stream_call"]

NDJSON = "application/x-ndjson"
_REPLACEMENT = "\ufffd"  # what a decoder shows for the first bytes of a character split across tokens


class TokenText:
    """Token ids in, new text out: decodes the whole row each time (byte-level tokenizers split
    characters across tokens) and holds back a tail that is not a whole character yet."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = 0

    def add(self, token: int) -> str:
        self.ids.append(int(token))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith(_REPLACEMENT) or len(text) < self.sent:
            return ""
        delta, self.sent = text[self.sent :], len(text)
        return delta


def ndjson(event: dict[str, Any]) -> bytes:
    """One event line (NaN/inf as null: the page parses strict JSON)."""
    return (json.dumps(jsonable(event), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


async def stream_call(
    run_on_model: Callable[[Callable[[], Any]], Any],
    fn: Callable[[Callable[[dict[str, Any]], None]], Any],
) -> AsyncIterator[dict[str, Any] | tuple[str, Any]]:
    """Run ``fn(emit)`` through ``run_on_model`` (`MicroBatcher.call`: the model thread) and yield
    each event ``fn`` emits, as it emits it, then ``("result", value)``. An exception of ``fn``
    is raised here, after the events before it."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(event: dict[str, Any]) -> None:  # on the model thread
        loop.call_soon_threadsafe(events.put_nowait, event)

    task = asyncio.ensure_future(run_on_model(lambda: fn(emit)))
    # Events are queued (call_soon_threadsafe) before the call returns, so the end marker,
    # queued when the task is done, comes after every one of them.
    task.add_done_callback(lambda _: events.put_nowait(None))
    try:
        while (event := await events.get()) is not None:
            yield event
        yield ("result", task.result())
    finally:
        if not task.done():  # the page went away: the model call finishes, its result is dropped
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
