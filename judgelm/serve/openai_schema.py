"""The OpenAI request bodies ``/v1/completions`` and ``/v1/chat/completions`` take: untrusted JSON
in, a typed request out, errors naming the field (a 400 through the app's error mapping).

Fields follow the OpenAI API reference and vLLM's OpenAI server (vllm-project/vllm
``vllm/entrypoints/openai/completion/protocol.py`` at 002032ee, ``chat_completion/protocol.py``):
``prompt`` is a string, a list of strings, a list of token ids or a list of token-id lists;
``max_tokens`` defaults to 16 for completions and to the rest of the context (capped by the
server's ``max_new_tokens_limit``) for chat; ``temperature`` and ``top_p`` default to 1 (the
OpenAI defaults: ``temperature`` 0 asks for greedy decoding); ``n`` must be 1; ``logprobs`` (and
chat ``top_logprobs``) take 0..20 like vLLM's default limit. vLLM's extras ``stop_token_ids``,
``return_token_ids`` and ``return_tokens_as_token_ids`` are understood; fields that would change
the output but are not implemented (penalties, ``logit_bias``, ``best_of``, ``suffix``, tools)
are refused rather than ignored; other unknown fields are ignored, as vLLM does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.serve.config import ServeConfig
from judgelm.serve.schema import RequestTooLarge

__all__ = ["ChatRequest", "CompletionRequest", "GenerationParams", "parse_chat", "parse_completion"]

MAX_LOGPROBS = 20  # vLLM's default --max-logprobs; OpenAI's chat API allows 20 too
MAX_STOP = 16
_REFUSED = {  # would change the output; not implemented: refuse instead of silently ignoring
    "best_of": (None, 1),
    "suffix": (None, ""),
    "logit_bias": (None, {}),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "repetition_penalty": (None, 1, 1.0),
    "use_beam_search": (None, False),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "prompt_logprobs": (None,),
}
_ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True)
class GenerationParams:
    """What both endpoints share once parsed."""

    max_tokens: int | None  # None: the rest of the context (chat)
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    stop_token_ids: tuple[int, ...]
    seed: int | None
    logprobs: int | None  # top-k per token; None: no log-probabilities
    stream: bool
    return_token_ids: bool
    tokens_as_ids: bool  # vLLM's return_tokens_as_token_ids: tokens written "token_id:N"


@dataclass(frozen=True)
class CompletionRequest:
    model: str | None
    prompts: tuple[str | tuple[int, ...], ...]  # text (tokenized by the server) or token ids
    echo: bool
    params: GenerationParams


@dataclass(frozen=True)
class ChatRequest:
    model: str | None
    messages: tuple[dict[str, str], ...]  # {"role", "content"} with text content
    params: GenerationParams


def _bad(message: str, field: str) -> InvalidSampleError:
    return InvalidSampleError(message, field=field)


def _int(body: Mapping[str, Any], name: str, *, lo: int, hi: int | None = None, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("must be an integer", name)
    if value < lo or (hi is not None and value > hi):
        raise _bad(f"must be in [{lo}, {hi}]" if hi is not None else f"must be >= {lo}", name)
    return value


def _number(
    body: Mapping[str, Any], name: str, *, lo: float, hi: float, default: float, lo_open: bool = False
) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("must be a number", name)
    if not (lo < value <= hi if lo_open else lo <= value <= hi):
        raise _bad(f"must be in {'(' if lo_open else '['}{lo}, {hi}]", name)
    return float(value)


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad("must be true or false", name)
    return value


def _token_ids(value: Any, field: str) -> tuple[int, ...]:
    if not value:
        raise _bad("must not be empty", field)
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
        raise _bad("token ids must be non-negative integers", field)
    return tuple(value)


def _check_refused(body: Mapping[str, Any]) -> None:
    for name, neutral in _REFUSED.items():
        if name in body and body[name] not in neutral:
            raise _bad("not supported by this server", name)
    n = body.get("n", 1)
    if n not in (None, 1):
        raise _bad("only n = 1 is supported", "n")


def _params(
    body: Mapping[str, Any], *, max_tokens: int | None, logprobs: int | None, config: ServeConfig
) -> GenerationParams:
    if max_tokens is not None and max_tokens > config.max_new_tokens_limit:
        raise _bad(f"must be <= {config.max_new_tokens_limit} on this server", "max_tokens")
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise _bad("must be a string or a list of strings", "stop")
    if len(stops) > MAX_STOP or any(s == "" for s in stops):
        raise _bad(f"at most {MAX_STOP} non-empty strings", "stop")
    stop_ids = body.get("stop_token_ids") or []
    if not isinstance(stop_ids, list):
        raise _bad("must be a list of token ids", "stop_token_ids")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad("must be an integer", "seed")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise _bad("must be an object", "stream_options")
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", lo=0.0, hi=2.0, default=1.0),
        top_p=_number(body, "top_p", lo=0.0, hi=1.0, default=1.0, lo_open=True),
        stop=stops,
        stop_token_ids=_token_ids(stop_ids, "stop_token_ids") if stop_ids else (),
        seed=seed,
        logprobs=logprobs,
        stream=_bool(body, "stream"),
        return_token_ids=_bool(body, "return_token_ids"),
        tokens_as_ids=_bool(body, "return_tokens_as_token_ids"),
    )


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidSampleError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("must be a string", "model")
    _check_refused(body)
    return body


def parse_completion(body: Any, config: ServeConfig) -> CompletionRequest:
    body = _object(body)
    raw = body.get("prompt")
    prompts: list[str | tuple[int, ...]]
    if isinstance(raw, str):
        prompts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
        prompts = [_token_ids(raw, "prompt")]
    elif isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
        prompts = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(p, list) for p in raw):
        prompts = [_token_ids(p, f"prompt[{i}]") for i, p in enumerate(raw)]
    else:
        raise _bad("must be a string, a list of strings, token ids or a list of token-id lists", "prompt")
    if any(p == "" for p in prompts):
        raise _bad("must not be empty", "prompt")
    if len(prompts) > config.max_request_samples:
        raise RequestTooLarge(
            f"{len(prompts)} prompts; at most {config.max_request_samples} per request", field="prompt"
        )
    echo = _bool(body, "echo")
    params = _params(
        body,
        max_tokens=_int(body, "max_tokens", lo=0, default=16),
        logprobs=_int(body, "logprobs", lo=0, hi=MAX_LOGPROBS),
        config=config,
    )
    return CompletionRequest(body.get("model"), tuple(prompts), echo, params)


def _content(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: text only
        parts = []
        for i, part in enumerate(value):
            if not (isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise _bad("only text content parts are supported", f"{field}[{i}]")
            parts.append(part["text"])
        return "".join(parts)
    raise _bad("must be a string or a list of text parts", field)


def parse_chat(body: Any, config: ServeConfig) -> ChatRequest:
    body = _object(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _bad("required: a non-empty list of messages", "messages")
    if len(raw) > config.max_request_samples:
        raise RequestTooLarge(f"{len(raw)} messages; at most {config.max_request_samples}", field="messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, Mapping):
            raise _bad("must be an object", f"messages[{i}]")
        role = m.get("role")
        if role not in _ROLES:
            raise _bad(f"must be one of {', '.join(_ROLES)}", f"messages[{i}].role")
        messages.append(
            {
                "role": "system" if role == "developer" else role,
                "content": _content(m.get("content"), f"messages[{i}].content"),
            }
        )
    top = _int(body, "top_logprobs", lo=0, hi=MAX_LOGPROBS)
    want = _bool(body, "logprobs")
    if top is not None and not want:
        raise _bad("needs logprobs: true", "top_logprobs")
    max_tokens = _int(body, "max_completion_tokens", lo=1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", lo=1)
    params = _params(body, max_tokens=max_tokens, logprobs=(top or 0) if want else None, config=config)
    return ChatRequest(body.get("model"), tuple(messages), params)
