"""`OpenAIEngine`: the `Engine` protocol over any OpenAI-compatible server's ``/v1/completions``
(vLLM, SGLang, TGI, llama.cpp's server, ``judgelm serve``, a hosted API). Prompts are rendered and
tokenized locally and sent as token ids, so the server reads exactly the judge's prompt.

How verdict distributions are read (``logprobs``; ``"auto"`` probes the server once):

- ``"echo"`` (exact): for every edge of the verdict trie that ends a line, the prompt + that
  line's tokens go out with ``echo: true, max_tokens: 0, logprobs: 0`` (one request per chunk of
  lines, a list prompt); the echoed log-probabilities of the line tokens are the trie's candidate
  log-probabilities, the same numbers a local judge reads (what vLLM's server offers; the first
  token's log-probability is null). ``judgelm serve`` computes such a request as one prompt plus
  the trie (`judgelm.engine.prompt_logprobs`).
- ``"top_k"`` (approximate): for every trie node the prompt + the node's path goes out with
  ``max_tokens: 1, logprobs: k``; candidates outside the server's top k are unseen (-inf), and the
  verdict's provenance reports how much verdict probability that can hide: over the nodes with an
  unseen candidate, the probability of reaching the node times the mass the server did not show
  there (`PartialLogprobs`; 0 when every candidate was among the top k: then exact). Token ids come from
  vLLM's ``return_tokens_as_token_ids`` where the server takes it, else from the token strings.
- ``"none"``: the server gives no log-probabilities; `capabilities.logits` is False and the judge
  scores text (said once, in the log).

Generation is one completions request per prompt (``stop``: ``"\\n"`` for newline stops and the
stop strings, seeds and sampling passed through). Requests run ``concurrency`` at a time through `OpenAIHTTP` (timeouts,
retries with backoff honouring ``Retry-After``, 4xx not retried); a row whose request still fails
is a `RowFailure`: that sample abstains, the others go on.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from judgelm.engine.base import (
    Capabilities,
    GenerationOptions,
    ModelFacts,
    PartialLogprobs,
    RowFailure,
    TokenLogprobs,
    VerdictTree,
)
from judgelm.engine.openai_http import EndpointError, OpenAIHTTP
from judgelm.modalities.detokenize import added_text

__all__ = ["LogprobMode", "OpenAIEngine"]

log = logging.getLogger(__name__)

LogprobMode = Literal["auto", "echo", "top_k", "none"]
_TOKEN_ID = "token_id:"


@dataclass(frozen=True)
class _State:
    prompts: tuple[tuple[int, ...], ...]


def _paths(tree: VerdictTree) -> tuple[list[tuple[int, ...]], dict[tuple[int, int], int]]:
    """Each node's token path from the root, and (parent node, token) -> child node."""
    paths: list[tuple[int, ...]] = [()]
    child = {}
    for i, (tok, par) in enumerate(zip(tree.tokens, tree.parents, strict=True), start=1):
        paths.append((*paths[par], tok))
        child[(par, tok)] = i
    return paths, child


class OpenAIEngine:
    """The engine of `Judge.from_endpoint` (see the module docstring). ``model`` is the model name
    the server knows; ``tokenizer`` is the model's tokenizer (prompts are encoded locally)."""

    def __init__(
        self,
        model: str,
        tokenizer: Any,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        http: OpenAIHTTP | None = None,
        logprobs: LogprobMode = "auto",
        top_k: int = 20,
        context_length: int | None = None,
        max_prompts_per_request: int = 128,
        timeout: float = 120.0,
        max_retries: int = 5,
        concurrency: int = 8,
        requests_per_minute: float | None = None,
        reason: str = "requested",
    ):
        if http is None:
            if base_url is None:
                raise ValueError("OpenAIEngine needs base_url (or http)")
            http = OpenAIHTTP(
                base_url,
                api_key=api_key,
                timeout=timeout,
                max_retries=max_retries,
                concurrency=concurrency,
                requests_per_minute=requests_per_minute,
            )
        if logprobs not in ("auto", "echo", "top_k", "none"):
            raise ValueError(f"logprobs must be 'auto', 'echo', 'top_k' or 'none', got {logprobs!r}")
        self.http, self.model, self.tokenizer = http, model, tokenizer
        self.top_k = top_k
        self.max_prompts = max(1, max_prompts_per_request)
        self.reason = f"{reason}: {model} at {http.base_url}"
        self._mode: str | None = None if logprobs == "auto" else logprobs
        self._token_ids = True  # does the server take vLLM's return_tokens_as_token_ids / return_token_ids?
        self._lock = threading.Lock()
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos if eos is not None else 0)
        self.facts = ModelFacts(
            pad_id=pad,
            eos_ids=frozenset({eos} if eos is not None else ()),
            context_length=context_length or self._server_context() or _tokenizer_context(tokenizer),
            tokenizer=tokenizer,
        )

    # ---- what the server can do ------------------------------------------------------------
    def _server_context(self) -> int | None:
        try:
            cards = self.http.get("/models").get("data") or []
        except EndpointError as e:
            if e.status is None:  # no answer at all: say so now, clearly
                raise
            return None
        card = next((c for c in cards if isinstance(c, Mapping) and c.get("id") == self.model), None)
        value = card.get("max_model_len") if card else None
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def logprob_mode(self) -> str:
        """``"echo"``, ``"top_k"`` or ``"none"`` (probed on first use when ``"auto"``)."""
        with self._lock:
            if self._mode is None:
                self._mode = self._probe()
        return self._mode

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(logits=self.logprob_mode != "none", images=False)

    def _probe(self) -> str:
        ids = list(self.tokenizer("The judge reads the answer.", add_special_tokens=True)["input_ids"])[:8]
        try:
            body = self._complete_raw({"prompt": ids, "max_tokens": 0, "echo": True, "logprobs": 0})
            lps = (body["choices"][0].get("logprobs") or {}).get("token_logprobs") or []
            if len(lps) == len(ids) and all(isinstance(x, int | float) for x in lps[1:]):
                log.info("judgelm: %s returns prompt log-probabilities: exact logit scoring", self.http.base_url)
                return "echo"
        except (EndpointError, KeyError, IndexError, TypeError, AttributeError) as e:
            if isinstance(e, EndpointError) and e.status is None:
                raise
        for k in dict.fromkeys((self.top_k, min(self.top_k, 5))):
            for as_ids in (True, False):
                try:
                    extra = {"return_tokens_as_token_ids": True} if as_ids else {}
                    body = self._complete_raw({"prompt": ids, "max_tokens": 1, "logprobs": k, **extra})
                    top = (body["choices"][0].get("logprobs") or {}).get("top_logprobs") or []
                except (EndpointError, KeyError, IndexError, TypeError, AttributeError):
                    continue
                if top and isinstance(top[0], Mapping) and top[0]:
                    self.top_k = k
                    self._token_ids = as_ids and all(str(t).startswith(_TOKEN_ID) for t in top[0])
                    log.warning(
                        "judgelm: %s returns top-%d log-probabilities only: approximate logit scoring "
                        "(the unseen probability is reported in each verdict's provenance)",
                        self.http.base_url,
                        k,
                    )
                    return "top_k"
        log.warning("judgelm: %s returns no log-probabilities: text scoring", self.http.base_url)
        return "none"

    def _complete_raw(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self.http.post("/completions", {"model": self.model, "temperature": 0, **payload})

    # ---- the protocol ---------------------------------------------------------------------
    def batches(self, prompts: Sequence[Sequence[int]], extra_per_item: int) -> list[list[int]]:
        step = max(64, 4 * self.http.concurrency)  # rows in flight per scorer batch
        return [list(range(i, min(i + step, len(prompts)))) for i in range(0, len(prompts), step)]

    def prefill(self, prompts: Sequence[Sequence[int]], *, images: Any = None) -> _State:
        if images is not None and any(images):
            raise ValueError("a remote judge takes text prompts only")
        return _State(tuple(tuple(p) for p in prompts))

    def tree_step(
        self, state: _State, trees: Sequence[VerdictTree | None]
    ) -> list[Tensor | PartialLogprobs | RowFailure | None]:
        mode = self.logprob_mode
        if mode == "none":
            raise ValueError("this server gives no log-probabilities (use scoring='text')")
        read_row = self._echo_row if mode == "echo" else self._top_k_row
        rows = [r for r, tree in enumerate(trees) if tree is not None]
        results = self.http.map(lambda r: read_row(state.prompts[r], trees[r]), rows)  # type: ignore[arg-type]
        out: list[Tensor | PartialLogprobs | RowFailure | None] = [None] * len(trees)
        for r, res in zip(rows, results, strict=True):
            out[r] = RowFailure(str(res)) if isinstance(res, EndpointError) else res
        return out

    def _echo_row(self, prompt: tuple[int, ...], tree: VerdictTree) -> Tensor:
        """Exact: prompt + every line through the trie, echoed with its log-probabilities."""
        paths, child = _paths(tree)
        ends = [(n, c) for n in range(tree.n_nodes) for c in tree.cand_ids[n] if (n, c) not in child]
        table = torch.full((tree.n_nodes, max(len(c) for c in tree.cand_ids)), -math.inf)
        for start in range(0, len(ends), self.max_prompts):
            chunk = ends[start : start + self.max_prompts]
            seqs = [[*prompt, *paths[n], c] for n, c in chunk]
            body = self._complete_raw({"prompt": seqs, "max_tokens": 0, "echo": True, "logprobs": 0})
            choices = sorted(body.get("choices") or [], key=lambda ch: ch.get("index", 0))
            if len(choices) != len(seqs):
                raise EndpointError(f"the server answered {len(choices)} choices for {len(seqs)} prompts")
            for (n, c), seq, ch in zip(chunk, seqs, choices, strict=True):
                lps = (ch.get("logprobs") or {}).get("token_logprobs") or []
                if len(lps) != len(seq):
                    raise EndpointError(f"the server echoed {len(lps)} log-probabilities for {len(seq)} tokens")
                path = (*paths[n], c)
                node = 0
                for d, tok in enumerate(path):  # the edge node -> tok sits at prompt position len(prompt) + d
                    value = lps[len(prompt) + d]
                    if not isinstance(value, int | float):
                        raise EndpointError("the server gave no log-probability for a verdict token")
                    table[node, tree.cand_ids[node].index(tok)] = float(value)
                    node = child.get((node, tok), -1)
        return table

    def _top_k_row(self, prompt: tuple[int, ...], tree: VerdictTree) -> PartialLogprobs:
        """Approximate: the top-k next tokens after the prompt + each node's path."""
        paths, _ = _paths(tree)
        table = torch.full((tree.n_nodes, max(len(c) for c in tree.cand_ids)), -math.inf)
        hidden = [0.0] * tree.n_nodes  # per node: the mass the server did not show, if a candidate is unseen
        for start in range(0, tree.n_nodes, self.max_prompts):
            nodes = list(range(start, min(start + self.max_prompts, tree.n_nodes)))
            seqs = [[*prompt, *paths[n]] for n in nodes]
            payload = {"model": self.model, "temperature": 0, "prompt": seqs, "max_tokens": 1, "logprobs": self.top_k}
            body = self._post_with_extras(payload, {"return_tokens_as_token_ids": True})
            choices = sorted(body.get("choices") or [], key=lambda ch: ch.get("index", 0))
            if len(choices) != len(seqs):
                raise EndpointError(f"the server answered {len(choices)} choices for {len(seqs)} prompts")
            for n, seq, ch in zip(nodes, seqs, choices, strict=True):
                tops = (ch.get("logprobs") or {}).get("top_logprobs") or []
                top = {
                    k: float(v)
                    for k, v in (tops[0] if tops and isinstance(tops[0], Mapping) else {}).items()
                    if isinstance(v, int | float)
                }
                missing = False
                for j, c in enumerate(tree.cand_ids[n]):
                    value = self._lookup(top, c, seq)
                    if value is None:
                        missing = True
                    else:
                        table[n, j] = value
                if missing:
                    hidden[n] = max(0.0, 1.0 - sum(math.exp(v) for v in top.values()))
        # the grammar probability behind unseen candidates: P(reach node) x hidden mass there
        reach = [1.0] + [0.0] * len(tree.tokens)
        for i, (tok, par) in enumerate(zip(tree.tokens, tree.parents, strict=True), start=1):
            reach[i] = reach[par] * math.exp(float(table[par, tree.cand_ids[par].index(tok)]))
        return PartialLogprobs(table, min(1.0, sum(r * h for r, h in zip(reach, hidden, strict=True))))

    def _lookup(self, top: Mapping[str, float], token: int, context: Sequence[int]) -> float | None:
        """``token``'s value in a top-logprobs dict: its ``token_id:N`` key, else its text (with
        the context's spacing, as vLLM and judgelm name tokens, or decoded alone)."""
        by_id = top.get(f"{_TOKEN_ID}{token}")
        if by_id is not None:
            return by_id
        for name in (added_text(self.tokenizer, context, token), self.tokenizer.decode([token])):
            if name in top:
                return top[name]
        return None

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: GenerationOptions,
        *,
        images: Any = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int] | RowFailure]:
        if images is not None and any(images):
            raise ValueError("a remote judge takes text prompts only")
        results = self.http.map(lambda i: self._continue(i, list(prompts[i]), options), list(range(len(prompts))))
        if on_batch is not None:
            on_batch(len(prompts))
        return [RowFailure(str(r)) if isinstance(r, EndpointError) else r for r in results]

    def _continue(self, index: int, prompt: list[int], options: GenerationOptions) -> list[int]:
        if options.max_new_tokens == 0:
            return []
        payload: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
        }
        if options.seed is not None:
            payload["seed"] = options.seed
        stops = ["\n"] if options.stop_at_newline else []
        stops += [s for s in options.stop_strings if s not in stops]
        if stops:
            payload["stop"] = stops[:4]  # OpenAI's limit (judgelm.serve's too); the judge cuts at the rest
        if options.logprobs is not None:
            payload["logprobs"] = options.logprobs
        extras: dict[str, Any] = {"return_token_ids": True}  # vLLM's: exact ids instead of re-tokenized text
        if options.stop_token_ids:
            extras["stop_token_ids"] = sorted(options.stop_token_ids)
        if options.logprobs is not None:
            extras["return_tokens_as_token_ids"] = True
        body = self._post_with_extras({"model": self.model, **payload}, extras)
        try:
            choice = body["choices"][0]
            text = choice.get("text") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError("the server's answer has no choices[0].text") from None
        ids = choice.get("token_ids")
        if not (isinstance(ids, list) and all(isinstance(t, int) for t in ids)):
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        ids = list(ids)
        # a "stop" that is not a stop string's is the model's EOS (vLLM names the string in stop_reason)
        by_string = options.stop_at_newline or (bool(options.stop_strings) and choice.get("stop_reason") is not None)
        ended = choice.get("finish_reason") == "stop" and not by_string
        if ended and self.facts.eos_ids and not (ids and ids[-1] in self.facts.eos_ids | options.stop_token_ids):
            ids.append(min(self.facts.eos_ids))  # the text ended: as a local engine, keep the EOS
        for t in ids:
            if options.on_token is not None:
                options.on_token(index, t)
        if options.logprobs is not None and options.on_logprobs is not None:
            for info in self._token_logprobs(choice.get("logprobs") or {}):
                options.on_logprobs(index, info)
        return ids

    def _post_with_extras(self, payload: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
        """POST /completions with vLLM's extra fields while the server takes them; when a request
        with them is refused (400) and the plain one is not (OpenAI's own API refuses unknown
        fields), the server gets plain requests from then on."""
        if not self._token_ids:
            return self.http.post("/completions", payload)
        try:
            return self.http.post("/completions", {**payload, **extras})
        except EndpointError as e:
            if e.status != 400:
                raise
        body = self.http.post("/completions", payload)  # a bad request fails again here
        self._token_ids = False
        return body

    def _token_logprobs(self, lp: Mapping[str, Any]) -> list[TokenLogprobs]:
        tokens, values, tops = lp.get("tokens") or [], lp.get("token_logprobs") or [], lp.get("top_logprobs") or []
        out = []
        for k, (tok, value) in enumerate(zip(tokens, values, strict=False)):
            if not (isinstance(tok, str) and tok.startswith(_TOKEN_ID) and isinstance(value, int | float)):
                raise EndpointError("per-token log-probabilities need a server that returns token ids")
            top = tops[k] if k < len(tops) and isinstance(tops[k], Mapping) else {}
            shown = sorted(
                ((int(t[len(_TOKEN_ID) :]), float(v)) for t, v in top.items() if t.startswith(_TOKEN_ID)),
                key=lambda kv: -kv[1],
            )
            out.append(TokenLogprobs(int(tok[len(_TOKEN_ID) :]), float(value), tuple(shown)))
        return out

    def close(self) -> None:
        self.http.close()


def _tokenizer_context(tokenizer: Any) -> int:
    value = getattr(tokenizer, "model_max_length", None)
    return int(value) if isinstance(value, int) and 0 < value < 1_000_000 else 2048
