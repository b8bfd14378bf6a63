"""The engine protocol: what runs a judge model for `Judge` and the scorer (docs/engine.md).

An engine turns token ids into (1) verdict distributions, through ``prefill`` + ``tree_step``,
and (2) continuations, through ``generate``. It declares what it can do (`Capabilities`), carries
the facts every caller needs (`ModelFacts`, built once) and the reason it was chosen (``reason``,
set by `judgelm.engine.registry`). Nothing outside ``judgelm.engine`` touches the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = [
    "Capabilities",
    "Engine",
    "GenerationOptions",
    "ModelFacts",
    "PartialLogprobs",
    "RowFailure",
    "StopStrings",
    "TokenLogprobs",
    "VerdictTree",
    "cut_at_stop",
    "embeds_images",
    "model_facts",
    "tree_logprobs",
]

# Attributes of models whose logits are not a plain linear head (softcapping, scaling): their
# verdicts are read from full logits instead of (hidden, head weight).
NONLINEAR_HEAD_ATTRS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


@dataclass(frozen=True)
class TokenLogprobs:
    """A generated token's log-probability and the ``top`` most likely tokens at its position,
    ``((token, logprob), ...)`` best first, under the model's own distribution (temperature 1,
    before top-p: what vLLM reports by default)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class GenerationOptions:
    """How to continue prompts; every engine honours every field.

    Decoding is greedy unless ``temperature`` > 0: then each token is sampled from the softmax of
    the logits / ``temperature``, restricted to the smallest set of most likely tokens whose
    probability reaches ``top_p``. With a ``seed`` a row's samples depend only on the seed and
    its prompt (not on batching, devices or restarts); without one they are random.

    A row stops after EOS, after any of ``stop_token_ids``, after a token whose text holds a
    newline when ``stop_at_newline``, after the token that completes one of ``stop_strings`` in
    the row's generated text (a format's end: the template's ``### Response:`` written again, a
    verdict marker; see `StopStrings`), or after ``max_new_tokens``. The stopping token is kept in
    every case (`cut_at_stop` cuts a stop string off the decoded text). ``on_token(index, token)``
    is called for every new token of prompt ``index`` (input order) as it is chosen; rows
    interleave (continuous batching). With ``logprobs`` = k (>= 0), ``on_logprobs(index,
    TokenLogprobs)`` follows each ``on_token`` with the token's log-probability and the k most
    likely tokens there."""

    max_new_tokens: int
    stop_at_newline: bool = False
    stop_token_ids: frozenset[int] = frozenset()
    stop_strings: tuple[str, ...] = ()
    on_token: Callable[[int, int], None] | None = field(default=None, compare=False)
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: int | None = None
    on_logprobs: Callable[[int, TokenLogprobs], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError(f"logprobs must be >= 0 or None, got {self.logprobs}")
        object.__setattr__(self, "stop_token_ids", frozenset(int(t) for t in self.stop_token_ids))
        if isinstance(self.stop_strings, str):
            raise TypeError("stop_strings must be a sequence of strings, not one string")
        object.__setattr__(self, "stop_strings", tuple(dict.fromkeys(s for s in self.stop_strings if s)))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def stop_ids(self, facts: ModelFacts) -> frozenset[int]:
        """Every token id that ends a row: EOS, ``stop_token_ids``, newlines when asked."""
        newline = facts.newline_ids if self.stop_at_newline else frozenset()
        return facts.eos_ids | self.stop_token_ids | newline

    def stop_strings_for(self, facts: ModelFacts) -> StopStrings | None:
        """The matcher of ``stop_strings`` under the model's tokenizer (None without stop strings)."""
        if not self.stop_strings:
            return None
        if facts.tokenizer is None:
            raise ValueError("stop_strings need the engine's tokenizer (ModelFacts.tokenizer)")
        return StopStrings(self.stop_strings, facts.tokenizer)


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """``text`` up to the first of ``stop_strings`` it holds (all of it when none)."""
    cut = min((i for i in (text.find(s) for s in stop_strings if s) if i >= 0), default=len(text))
    return text[:cut]


class StopStrings:
    """Whether a row's generated text holds a stop string, checked after each new token.

    Only the row's last tokens are decoded (a window of ``4 x`` the longest stop string's length
    in characters, + 4: a token carries at least one character, and up to four byte-fallback
    tokens make one), so a check costs the same at the 10th and the 500th token, and the prompt's
    own text never matches."""

    def __init__(self, strings: Sequence[str], tokenizer: Any):
        self.strings = tuple(strings)
        self.tokenizer = tokenizer
        self.window = 4 * max(len(s) for s in self.strings) + 4

    def hit(self, generated: Sequence[int]) -> bool:
        text = self.tokenizer.decode(list(generated[-self.window :]), skip_special_tokens=True)
        return any(s in text for s in self.strings)


@dataclass(frozen=True)
class RowFailure:
    """A row an engine could not run (a remote server's error, after its retries): returned in
    that row's place by `Engine.generate` and `Engine.tree_step`. Callers turn it into that
    sample's abstention; local engines never return one."""

    reason: str


@dataclass(frozen=True)
class PartialLogprobs:
    """`Engine.tree_step`'s result for a row whose distributions the engine saw only in part (a
    server's top-k log-probabilities): ``logprobs`` as usual, with -inf for the candidates it
    could not see, and ``unseen_mass``: how much verdict probability that can hide (over the
    nodes with an unseen candidate, the probability of reaching the node times the probability
    the engine could not see there; 0.0 when every candidate was seen: then exact)."""

    logprobs: Tensor
    unseen_mass: float


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, declared (callers check these, never the engine's attributes).

    ``logits``: ``prefill`` + ``tree_step`` read verdict distributions (logit scoring); without
    it only ``generate`` works (text scoring). ``images``: prompts may carry images."""

    logits: bool = True
    images: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """What every caller needs to know about the model, built once per engine."""

    pad_id: int
    eos_ids: frozenset[int]
    context_length: int  # longest prompt + continuation the engine runs exactly
    # (W [V, H], b [V] | None) when logits are exactly ``hidden @ W.T + b``; None otherwise
    head: tuple[Tensor, Tensor | None] | None = field(default=None, repr=False, compare=False)
    tokenizer: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def newline_ids(self) -> frozenset[int]:
        """Tokens whose text holds a newline (the "fast eval" stop); decoded once, on first use."""
        texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
        return frozenset(i for i, t in enumerate(texts) if "\n" in t)


def embeds_images(model: Any) -> bool:
    """Whether ``model`` writes image features into its prompts (a vision judge's
    ``embed_inputs``): the one place that asks."""
    return callable(getattr(model, "embed_inputs", None))


def model_facts(model: Any, tokenizer: Any) -> ModelFacts:
    """`ModelFacts` of a Hugging Face causal LM (or a vision judge facing the engine as one)."""
    pad_id = next((int(c) for c in (tokenizer.pad_token_id, tokenizer.eos_token_id) if c is not None), 0)
    eos: set[int] = set()
    for src in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(src, int):
            eos.add(src)
        elif isinstance(src, list | tuple):
            eos.update(int(x) for x in src)
    limits = [getattr(model.config, "max_position_embeddings", None)]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and tok_max < 1_000_000:
        limits.append(tok_max)
    found = [x for x in limits if x]
    head_module = model.get_output_embeddings()
    head = None
    if head_module is not None and all(getattr(model.config, a, None) in (None, 1.0) for a in NONLINEAR_HEAD_ATTRS):
        bias = getattr(head_module, "bias", None)
        head = (head_module.weight.detach(), None if bias is None else bias.detach())
    return ModelFacts(pad_id, frozenset(eos), min(found) if found else 2048, head, tokenizer)


class VerdictTree(Protocol):
    """A token trie continuing a prompt (`judgelm.scoring.grammar.TokenTree` is one). Node 0 is
    the prompt's last position; node ``i`` (1-based) is ``tokens[i-1]``, child of node
    ``parents[i-1]`` at depth ``depths[i-1]``; ``cand_ids[n]`` are the tokens whose
    log-probabilities are read at node ``n``."""

    @property
    def tokens(self) -> Sequence[int]: ...

    @property
    def parents(self) -> Sequence[int]: ...

    @property
    def depths(self) -> Sequence[int]: ...

    @property
    def cand_ids(self) -> Sequence[Sequence[int]]: ...

    @property
    def n_nodes(self) -> int: ...


class Engine(Protocol):
    """What runs a judge model. `Judge` and `judgelm.scoring.scorer` call it; nothing else does.

    - ``batches(prompts, extra_per_item)``: index groups that fit one ``prefill`` (each prompt
      costed with ``extra_per_item`` more tokens), every index exactly once.
    - ``prefill(prompts, images=None)``: run the prompts, keep what the tree steps need (the KV
      cache); the state is the engine's own.
    - ``tree_step(state, trees)``: feed row r's verdict tree (or nothing, for None) after its
      prompt; returns per row the log-probabilities of ``cand_ids`` at every node, fp32 on the
      CPU, ``[tree.n_nodes, C]`` with -inf padding (C: at least the row's widest node), or None.
      Repeatable: each tree step sees only the prompt (greedy scoring runs several).
    - ``generate(prompts, options, images=None, on_batch=None)``: new tokens per prompt, input
      order, stopping where ``options`` says (`GenerationOptions`); ``on_batch(n)`` as rows finish.
    ``prefill``/``tree_step`` need ``capabilities.logits``; ``images`` needs ``capabilities.images``.
    A remote engine may put a `RowFailure` in a row's place (``generate``, ``tree_step``) and a
    `PartialLogprobs` (``tree_step``, top-k log-probabilities only); local engines never do.
    """

    facts: ModelFacts
    capabilities: Capabilities
    reason: str  # why this engine runs the model (the registry's record)

    def batches(self, prompts: Sequence[Sequence[int]], extra_per_item: int) -> list[list[int]]: ...

    def prefill(self, prompts: Sequence[Sequence[int]], *, images: Sequence[Sequence[Tensor]] | None = None) -> Any: ...

    def tree_step(
        self, state: Any, trees: Sequence[VerdictTree | None]
    ) -> list[Tensor | PartialLogprobs | RowFailure | None]: ...

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: GenerationOptions,
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int] | RowFailure]: ...


@torch.inference_mode()  # also on a worker thread (MultiDeviceEngine): the mode is per thread
def tree_logprobs(
    tree_forward: Callable[..., Tensor],
    state: Any,
    trees: Sequence[VerdictTree | None],
    head: tuple[Tensor, Tensor | None] | None,
) -> list[Tensor | None]:
    """`Engine.tree_step` of a local engine, from its ``tree_forward(state, tokens, parents,
    depths)``: the raw outputs at every row's nodes, ``[B, 1 + T, H]`` final hidden states
    (``head`` applies, through the fused verdict head) or ``[B, 1 + T, V]`` logits (a non-linear
    head, ``head`` None)."""
    from judgelm.scoring.head import verdict_head

    outputs = tree_forward(
        state,
        [t.tokens if t else () for t in trees],
        [t.parents if t else () for t in trees],
        [t.depths if t else () for t in trees],
    )
    live = [(r, t) for r, t in enumerate(trees) if t is not None]
    out: list[Tensor | None] = [None] * len(trees)
    if not live:
        return out
    width = max(len(c) for _, t in live for c in t.cand_ids)
    cand = torch.full((sum(t.n_nodes for _, t in live), width), -1, dtype=torch.long)
    for i, c in enumerate(c for _, t in live for c in t.cand_ids):
        cand[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
    cand = cand.to(outputs.device)
    nodes = torch.cat([outputs[r, : t.n_nodes] for r, t in live])  # [P, H] or [P, V]
    if head is not None:
        weight, bias = head
        cand_lp = verdict_head(nodes, weight, cand, bias=bias, with_entropy=False).cand_logprobs  # [P, C]
    else:
        logprobs = torch.log_softmax(nodes.float(), -1)
        cand_lp = torch.where(cand >= 0, logprobs.gather(1, cand.clamp(min=0)), -math.inf)
    per_row = cand_lp.cpu().split([t.n_nodes for _, t in live])  # one device sync per tree step
    for (r, _), lp in zip(live, per_row, strict=True):
        out[r] = lp
    return out
