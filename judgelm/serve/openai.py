"""The OpenAI API on the judge server: any OpenAI client can use a judgelm judge model.

- ``GET /v1/models``: the served model (``ServeConfig.served_model_name``, else the judge's name).
- ``POST /v1/completions``: text or token-id prompts (one or many); ``echo`` with ``max_tokens``
  0 and ``logprobs`` returns the prompt's log-probabilities (the first token's is null), what
  vLLM offers and what exact remote scoring (`Judge.from_endpoint`) reads.
- ``POST /v1/chat/completions``: messages through the model's chat template.

Both stream (server-sent events, ``data: {...}`` chunks, then ``data: [DONE]``) and report usage
in every response (streams: a last chunk with empty ``choices``, as vLLM's
``--enable-force-include-usage``). Work goes through the app's `MicroBatcher` (same queue, limits
and 503 + Retry-After as ``/v1/judge``; requests with the same generation settings share one
model call), behind the app's API key and error mapping (`judgelm.serve.app`). Greedy requests
(``temperature`` 0) give exactly the tokens of local greedy generation; sampling uses the engine's
seeded sampler (`GenerationOptions`). Wire formats: see `judgelm.serve.openai_schema` and
`judgelm.serve.openai_text`, pinned by tests/test_serve_openai.py against the official client.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from judgelm.engine.base import GenerationOptions, TokenLogprobs
from judgelm.engine.prompt_logprobs import prompt_logprobs
from judgelm.errors import InvalidSampleError
from judgelm.modalities.detokenize import TextStream, token_pieces
from judgelm.serve.batcher import MicroBatcher
from judgelm.serve.config import ServeConfig
from judgelm.serve.openai_schema import ChatRequest, CompletionRequest, GenerationParams, parse_chat, parse_completion
from judgelm.serve.openai_text import chat_logprobs, completion_logprobs

__all__ = ["AppTools", "openai_routes"]


@dataclass(frozen=True)
class _GenKey:
    """Generation settings: requests with equal keys share one `Engine.generate` call."""

    max_new_tokens: int
    stop_token_ids: frozenset[int]
    stop_strings: tuple[str, ...]
    temperature: float
    top_p: float
    seed: int | None
    logprobs: int | None


@dataclass(eq=False)
class _Row:
    """One prompt to continue; ``sink(token, info)`` (streams) is called on the model thread."""

    ids: tuple[int, ...]
    want_logprobs: bool = False
    sink: Callable[[int, TokenLogprobs | None], None] | None = None
    infos: list[TokenLogprobs] = field(default_factory=list)

    def on_token(self, token: int) -> None:
        if self.sink is not None and not self.want_logprobs:
            self.sink(token, None)

    def on_logprobs(self, info: TokenLogprobs) -> None:
        self.infos.append(info)
        if self.sink is not None:
            self.sink(info.token, info)


def _generate(engine: Any, key: _GenKey, rows: list[_Row]) -> list[list[int]]:
    options = GenerationOptions(
        key.max_new_tokens,
        stop_token_ids=key.stop_token_ids,
        stop_strings=key.stop_strings,  # a multi-token stop string ends its row in the engine too
        temperature=key.temperature,
        top_p=key.top_p,
        seed=key.seed,
        logprobs=key.logprobs,
        on_token=lambda i, t: rows[i].on_token(t),
        on_logprobs=lambda i, x: rows[i].on_logprobs(x),
    )
    return engine.generate([r.ids for r in rows], options)


@dataclass
class _Choice:
    """One prompt's answer, built up while (or after) it is generated."""

    index: int
    prompt: tuple[int, ...]
    stream: TextStream
    tokens: list[int] = field(default_factory=list)
    infos: list[TokenLogprobs] = field(default_factory=list)
    echo_text: str = ""
    echo: dict[str, Any] | None = None  # the prompt's completions logprobs (echo)

    def feed(self, token: int, info: TokenLogprobs | None) -> str:
        if self.stream.stopped:
            return ""
        self.tokens.append(token)
        if info is not None:
            self.infos.append(info)
        return self.stream.feed(token)

    def finish_reason(self, eos: frozenset[int]) -> str:
        ended = self.stream.stopped or (bool(self.tokens) and self.tokens[-1] in eos)
        return "stop" if ended else "length"


@dataclass
class _Stream:
    choices: list[_Choice]
    queue: asyncio.Queue[tuple[int, int, TokenLogprobs | None] | None]
    future: asyncio.Future[list[Any]]


@dataclass(frozen=True)
class AppTools:
    """What the app lends its routes: reading a body under its limits, JSON responses, and the
    error its endpoint wrapper maps to a status (``http_error(status, message, field=...)``)."""

    read_json: Callable[[Any, int], Awaitable[Any]]
    json_response: Callable[..., Any]
    http_error: Callable[..., Exception]


class _Service:
    """The OpenAI endpoints over one judge's engine and tokenizer."""

    def __init__(self, judge: Any, config: ServeConfig, batcher: MicroBatcher, tools: AppTools):
        self.engine, self.tokenizer = judge.engine, judge.tokenizer
        self.config, self.batcher, self.tools = config, batcher, tools
        self.name = config.served_model_name or str(getattr(judge, "name", "judge"))
        self.context = int(self.engine.facts.context_length)

    # ---- shared ---------------------------------------------------------------------------
    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.name:
            raise self.tools.http_error(
                404, f"The model `{model}` does not exist (this server serves `{self.name}`).", field="model"
            )

    def check_logprobs(self, params: GenerationParams, echo: bool = False) -> None:
        if (params.logprobs is not None or echo) and not self.engine.capabilities.logits:
            raise self.tools.http_error(501, "this model's engine gives no log-probabilities", field="logprobs")

    def encode_text(self, text: str, *, special: bool) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def check_ids(self, ids: Sequence[int], field_name: str) -> None:
        vocab = len(self.tokenizer)
        if any(t >= vocab for t in ids):
            raise InvalidSampleError(f"token ids must be < {vocab}", field=field_name)

    def budget(self, prompts: Sequence[Sequence[int]], max_tokens: int | None, field_name: str) -> int:
        longest = max(len(p) for p in prompts)
        room = self.context - longest
        if max_tokens is None:
            if room < 1:
                raise InvalidSampleError(
                    f"the prompt has {longest} tokens; the context holds {self.context}", field=field_name
                )
            return min(room, self.config.max_new_tokens_limit)
        if longest + max_tokens > self.context:
            raise InvalidSampleError(
                f"this model's maximum context length is {self.context} tokens; the request needs "
                f"{longest} prompt + {max_tokens} new tokens",
                field="max_tokens",
            )
        return max_tokens

    def stop_ids(self, params: GenerationParams) -> frozenset[int]:
        """Token ids that end a row: the request's, and every token whose text holds a stop
        string (the rest of a multi-token stop string is cut afterwards)."""
        self.check_ids(params.stop_token_ids, "stop_token_ids")
        ids = set(params.stop_token_ids)
        for s in params.stop:
            ids |= _tokens_containing(self.tokenizer, s)
        return frozenset(ids)

    def gen_key(self, params: GenerationParams, max_new: int) -> _GenKey:
        return _GenKey(
            max_new,
            self.stop_ids(params),
            params.stop,
            params.temperature,
            params.top_p,
            params.seed,
            params.logprobs,
        )

    def new_choices(self, prompts: Sequence[tuple[int, ...]], params: GenerationParams) -> list[_Choice]:
        return [_Choice(i, p, TextStream(self.tokenizer, p[-8:], params.stop)) for i, p in enumerate(prompts)]

    async def run_generation(self, choices: list[_Choice], key: _GenKey) -> None:
        rows = [_Row(c.prompt, want_logprobs=key.logprobs is not None) for c in choices]
        outs = await self.batcher.submit_work(rows, key, lambda rs: _generate(self.engine, key, rs))
        for c, row, out in zip(choices, rows, outs, strict=True):
            infos = row.infos or [None] * len(out)
            for t, info in zip(out, infos, strict=True):
                c.feed(t, info)
            c.stream.close()

    def usage(self, choices: Sequence[_Choice]) -> dict[str, int]:
        prompt = sum(len(c.prompt) for c in choices)
        done = sum(c.stream.tokens for c in choices)
        return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}

    def eos(self, key: _GenKey | None) -> frozenset[int]:
        return self.engine.facts.eos_ids | (key.stop_token_ids if key else frozenset())

    # ---- /v1/models -------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        card = {"id": self.name, "object": "model", "created": 0, "owned_by": "judgelm", "max_model_len": self.context}
        return {"object": "list", "data": [card]}

    # ---- /v1/completions ----------------------------------------------------------------------
    def completion_prompts(self, req: CompletionRequest) -> tuple[list[tuple[int, ...]], list[str]]:
        ids, texts = [], []
        for i, p in enumerate(req.prompts):
            if isinstance(p, str):
                ids.append(self.encode_text(p, special=True))
                texts.append(p)
            else:
                self.check_ids(p, f"prompt[{i}]" if len(req.prompts) > 1 else "prompt")
                ids.append(p)
                texts.append(self.tokenizer.decode(list(p), skip_special_tokens=True))
        return ids, texts

    async def echo_logprobs(self, choices: list[_Choice], top_k: int, as_ids: bool) -> None:
        """The prompts' own log-probabilities (echo): position 0 has none."""
        key = ("prompt_logprobs", top_k)
        results = await self.batcher.submit_work(
            [c.prompt for c in choices], key, lambda ps: prompt_logprobs(self.engine, ps, top_k=top_k)
        )
        pieces = token_pieces(self.tokenizer, [c.prompt for c in choices])
        for c, lps, texts in zip(choices, results, pieces, strict=True):
            c.echo = completion_logprobs(self.tokenizer, c.prompt, [None, *lps], texts, as_ids=as_ids)

    def completion_choice(self, c: _Choice, req: CompletionRequest, key: _GenKey | None) -> dict[str, Any]:
        params = req.params
        logprobs = None
        if params.logprobs is not None:
            n = c.stream.tokens
            gen = completion_logprobs(
                self.tokenizer,
                c.tokens[:n],
                c.infos[:n],
                c.stream.pieces[:n],
                context=c.prompt,
                offset=len(c.echo_text),
                as_ids=params.tokens_as_ids,
            )
            logprobs = gen if c.echo is None else {k: c.echo[k] + gen[k] for k in gen}
        choice: dict[str, Any] = {
            "index": c.index,
            "text": c.echo_text + c.stream.text,
            "logprobs": logprobs,
            "finish_reason": c.finish_reason(self.eos(key)),
        }
        if params.return_token_ids:
            choice["token_ids"] = c.tokens[: c.stream.tokens]
            choice["prompt_token_ids"] = list(c.prompt)
        return choice

    async def completions(self, req: CompletionRequest) -> Any:
        self.check_model(req.model)
        params = req.params
        self.check_logprobs(params, echo=req.echo and params.logprobs is not None)
        prompts, texts = self.completion_prompts(req)
        max_new = self.budget(prompts, params.max_tokens, "prompt")
        choices = self.new_choices(prompts, params)
        if req.echo:
            for c, text in zip(choices, texts, strict=True):
                c.echo_text = text
        key = self.gen_key(params, max_new) if max_new > 0 else None
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if req.echo and params.logprobs is not None:
            await self.echo_logprobs(choices, params.logprobs, params.tokens_as_ids)
        if params.stream:
            stream = self.start_stream(choices, key) if key is not None else None
            return _sse(self.stream_completion(choices, req, key, stream, rid, created))
        if key is not None:
            await self.run_generation(choices, key)
        return self.tools.json_response(
            {
                "id": rid,
                "object": "text_completion",
                "created": created,
                "model": self.name,
                "choices": [self.completion_choice(c, req, key) for c in choices],
                "usage": self.usage(choices),
            }
        )

    async def stream_completion(
        self,
        choices: list[_Choice],
        req: CompletionRequest,
        key: _GenKey | None,
        stream: _Stream | None,
        rid: str,
        created: int,
    ) -> AsyncIterator[dict[str, Any]]:
        params = req.params
        head = {"id": rid, "object": "text_completion", "created": created, "model": self.name}

        def chunk(c: _Choice, text: str, logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
            return {
                **head,
                "choices": [{"index": c.index, "text": text, "logprobs": logprobs, "finish_reason": finish}],
            }

        for c in choices:
            if req.echo:
                yield chunk(c, c.echo_text, c.echo)
        offsets = {c.index: len(c.echo_text) for c in choices}

        def delta(c: _Choice, text: str, start: int) -> dict[str, Any]:
            lp = None
            if params.logprobs is not None:
                end = c.stream.tokens
                lp = completion_logprobs(
                    self.tokenizer,
                    c.tokens[start:end],
                    c.infos[start:end],
                    c.stream.pieces[start:end],
                    context=(*c.prompt, *c.tokens[:start]),
                    offset=offsets[c.index],
                    as_ids=params.tokens_as_ids,
                )
            offsets[c.index] += len(text)
            return chunk(c, text, lp)

        if stream is not None:
            async for c, text, start in self.stream_tokens(stream):
                yield delta(c, text, start)
        for c in choices:
            yield chunk(c, "", None, c.finish_reason(self.eos(key)))
        yield {**head, "choices": [], "usage": self.usage(choices)}

    def start_stream(self, choices: list[_Choice], key: _GenKey) -> _Stream:
        """Queue the generation now (so an overload is a 503, not a broken stream); its tokens
        arrive on an asyncio queue fed from the model thread."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, int, TokenLogprobs | None] | None] = asyncio.Queue()

        def sink_for(i: int) -> Callable[[int, TokenLogprobs | None], None]:
            return lambda t, info: loop.call_soon_threadsafe(queue.put_nowait, (i, t, info))

        rows = [_Row(c.prompt, key.logprobs is not None, sink_for(c.index)) for c in choices]
        future = self.batcher.enqueue(rows, key, lambda rs: _generate(self.engine, key, rs))
        future.add_done_callback(lambda _: queue.put_nowait(None))
        return _Stream(choices, queue, future)

    @staticmethod
    async def stream_tokens(stream: _Stream) -> AsyncIterator[tuple[_Choice, str, int]]:
        """(choice, text to send, index of its first new token) as tokens arrive; a choice's
        held-back text (a possible stop string that was not) comes at the end."""
        choices = stream.choices
        marks = {c.index: 0 for c in choices}  # first token of each choice not yet sent
        try:
            while (item := await stream.queue.get()) is not None:
                i, token, info = item
                c = choices[i]
                text = c.feed(token, info)
                if text:
                    yield c, text, marks[i]
                    marks[i] = c.stream.tokens
            stream.future.result()  # a failed model call ends the stream with an error event
            for c in choices:
                text = c.stream.close()
                if text or marks[c.index] < c.stream.tokens:
                    yield c, text, marks[c.index]
        finally:
            if not stream.future.done():
                stream.future.cancel()  # the client went away: drop the work if it has not started

    # ---- /v1/chat/completions ---------------------------------------------------------------
    def chat_prompt(self, req: ChatRequest) -> tuple[int, ...]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidSampleError("this model has no chat template; use /v1/completions", field="messages")
        text = self.tokenizer.apply_chat_template(list(req.messages), tokenize=False, add_generation_prompt=True)
        return self.encode_text(text, special=False)  # the template writes the special tokens itself

    def chat_choice(self, c: _Choice, params: GenerationParams, key: _GenKey) -> dict[str, Any]:
        n = c.stream.tokens
        logprobs = None
        if params.logprobs is not None:
            logprobs = chat_logprobs(
                self.tokenizer,
                c.tokens[:n],
                c.infos[:n],
                c.stream.pieces[:n],
                context=c.prompt,
                as_ids=params.tokens_as_ids,
            )
        return {
            "index": 0,
            "message": {"role": "assistant", "content": c.stream.text},
            "logprobs": logprobs,
            "finish_reason": c.finish_reason(self.eos(key)),
        }

    async def chat(self, req: ChatRequest) -> Any:
        self.check_model(req.model)
        params = req.params
        self.check_logprobs(params)
        prompt = self.chat_prompt(req)
        key = self.gen_key(params, self.budget([prompt], params.max_tokens, "messages"))
        choices = self.new_choices([prompt], params)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if params.stream:
            return _sse(self.stream_chat(self.start_stream(choices, key), params, key, rid, created))
        await self.run_generation(choices, key)
        return self.tools.json_response(
            {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": self.name,
                "choices": [self.chat_choice(choices[0], params, key)],
                "usage": self.usage(choices),
            }
        )

    async def stream_chat(
        self, stream: _Stream, params: GenerationParams, key: _GenKey, rid: str, created: int
    ) -> AsyncIterator[dict[str, Any]]:
        head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.name}

        def chunk(delta: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
            return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": ""})
        c = stream.choices[0]
        async for _, text, start in self.stream_tokens(stream):
            lp = None
            if params.logprobs is not None:
                end = c.stream.tokens
                lp = chat_logprobs(
                    self.tokenizer,
                    c.tokens[start:end],
                    c.infos[start:end],
                    c.stream.pieces[start:end],
                    context=(*c.prompt, *c.tokens[:start]),
                    as_ids=params.tokens_as_ids,
                )
            yield chunk({"content": text}, lp)
        yield chunk({}, None, c.finish_reason(self.eos(key)))
        yield {**head, "choices": [], "usage": self.usage(stream.choices)}


@lru_cache(maxsize=64)
def _vocab_texts(tokenizer: Any) -> tuple[str, ...]:
    return tuple(tokenizer.batch_decode([[i] for i in range(len(tokenizer))]))


@lru_cache(maxsize=256)
def _tokens_containing(tokenizer: Any, text: str) -> frozenset[int]:
    return frozenset(i for i, t in enumerate(_vocab_texts(tokenizer)) if text in t)


def _sse(events: AsyncIterator[dict[str, Any]]) -> Any:
    """Server-sent events: one ``data: {json}`` per chunk, then ``data: [DONE]``; an error after
    the stream started is sent as an ``{"error": ...}`` event (the status is already 200)."""
    from starlette.responses import StreamingResponse

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield f"data: {json.dumps(event, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
        except Exception as e:  # the model call failed mid-stream
            error = {"error": {"message": f"generation failed: {e}", "type": "server_error"}}
            yield f"data: {json.dumps(error)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def openai_routes(
    judge: Any, config: ServeConfig, batcher: MicroBatcher, endpoint: Callable[..., Any], tools: AppTools
) -> list[Any]:
    """The OpenAI routes for `judgelm.serve.app.create_app` (``endpoint`` wraps each handler with
    the app's API key check, error mapping and metrics; ``tools`` are the app's own helpers, so
    its request limits apply here too)."""
    from starlette.routing import Route

    service = _Service(judge, config, batcher, tools)

    async def body(request: Any) -> Any:
        return await tools.read_json(request, config.max_body_bytes)

    @endpoint("openai_models")
    async def models(request: Any) -> Any:
        return tools.json_response(service.models())

    @endpoint("openai_completions")
    async def completions(request: Any) -> Any:
        return await service.completions(parse_completion(await body(request), config))

    @endpoint("openai_chat")
    async def chat(request: Any) -> Any:
        return await service.chat(parse_chat(await body(request), config))

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ]
