"""The models ``judgelm distill`` talks to: answer sources and the teacher, each either an
OpenAI-compatible endpoint (through `OpenAIHTTP`: one client for everything remote) or a local
model (through the engine: batched generation).

A request carries its chat messages and the same prompt as plain text: chat endpoints and local
models with a chat template get the messages, completions endpoints and local models without one
get the text. Every request ends as a `Completion` or a `Failure` (never an exception), with its
token counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from judgelm.engine.openai_http import EndpointError, OpenAIHTTP

__all__ = ["Completion", "EndpointModel", "Failure", "LocalModel", "TextModel", "TextRequest", "model_from_spec"]


@dataclass(frozen=True)
class TextRequest:
    messages: tuple[dict[str, str], ...]  # [{"role", "content"}]
    text: str  # the same prompt for a completions API / a model without a chat template


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failure:
    reason: str


class TextModel(Protocol):
    name: str

    def complete(self, requests: Sequence[TextRequest]) -> list[Completion | Failure]: ...


class EndpointModel:
    """A model behind an OpenAI-compatible server: ``api="chat"`` (``/chat/completions`` with the
    messages) or ``"completions"`` (``/completions`` with the text)."""

    def __init__(
        self,
        http: OpenAIHTTP,
        model: str,
        *,
        api: Literal["chat", "completions"] = "chat",
        max_tokens: int = 1024,
        temperature: float = 0.0,
    ):
        self.http, self.name, self.api = http, model, api
        self.max_tokens, self.temperature = max_tokens, temperature

    def _one(self, request: TextRequest) -> Completion:
        payload: dict[str, Any] = {"model": self.name, "max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.api == "chat":
            body = self.http.post("/chat/completions", {**payload, "messages": list(request.messages)})
        else:
            body = self.http.post("/completions", {**payload, "prompt": request.text})
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] if self.api == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            where = "message.content" if self.api == "chat" else "text"
            raise EndpointError(f"the answer has no choices[0].{where}") from None
        usage = body.get("usage") or {}
        return Completion(
            str(text or ""), int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )

    def complete(self, requests: Sequence[TextRequest]) -> list[Completion | Failure]:
        return [Failure(str(r)) if isinstance(r, EndpointError) else r for r in self.http.map(self._one, requests)]


class LocalModel:
    """A local causal LM through its engine (batched; greedy unless ``temperature`` > 0)."""

    def __init__(self, engine: Any, tokenizer: Any, name: str, *, max_tokens: int = 1024, temperature: float = 0.0):
        self.engine, self.tokenizer, self.name = engine, tokenizer, name
        self.max_tokens, self.temperature = max_tokens, temperature

    @classmethod
    def load(cls, name_or_path: str, **kwargs: Any) -> LocalModel:
        from judgelm.engine.loading import load_model_and_tokenizer
        from judgelm.engine.registry import make_engine

        model, tokenizer, name = load_model_and_tokenizer(name_or_path)
        return cls(make_engine(model, tokenizer), tokenizer, str(name), **kwargs)

    def _ids(self, request: TextRequest) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                list(request.messages), tokenize=False, add_generation_prompt=True
            )
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(request.text, add_special_tokens=True)["input_ids"])

    def complete(self, requests: Sequence[TextRequest]) -> list[Completion | Failure]:
        from judgelm.engine.base import GenerationOptions, RowFailure

        prompts = [self._ids(r) for r in requests]
        room = self.engine.facts.context_length - max(map(len, prompts), default=0)
        options = GenerationOptions(max(0, min(self.max_tokens, room)), temperature=self.temperature, seed=0)
        out: list[Completion | Failure] = []
        for ids, new in zip(prompts, self.engine.generate(prompts, options), strict=True):
            if isinstance(new, RowFailure):
                out.append(Failure(new.reason))
            else:
                out.append(Completion(self.tokenizer.decode(new, skip_special_tokens=True), len(ids), len(new)))
        return out


def model_from_spec(spec: str, http_options: dict[str, Any], **model_options: Any) -> TextModel:
    """``openai:URL#MODEL`` (an endpoint, chat API) or ``local:NAME`` / ``NAME`` (a local model)."""
    if spec.startswith("openai:"):
        url, _, model = spec[len("openai:") :].rpartition("#")
        if not url or not model:
            raise ValueError(f"an endpoint source is openai:URL#MODEL, got {spec!r}")
        return EndpointModel(OpenAIHTTP(url, **http_options), model, **model_options)
    return LocalModel.load(spec.removeprefix("local:"), **model_options)
