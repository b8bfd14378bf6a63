"""Logit scoring of encoded prompts: the engine's prefill and tree steps (`Engine.tree_step`: the
verdict tokens' log-probabilities at every trie node), then line probabilities.

For each prompt (in the order its candidates are shown) the result is the distribution over the
verdict grammar's lines, per-slot marginals, and the probability mass the grammar holds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from judgelm.engine.base import Engine, PartialLogprobs, RowFailure
from judgelm.engine.batching import restore_order
from judgelm.modalities.text import EncodedPrompt
from judgelm.options import SlotStrategy
from judgelm.scoring.grammar import TokenTree, build_tree, resolve_strategy

__all__ = ["PromptScores", "score_prompts"]


@dataclass(frozen=True)
class PromptScores:
    """The verdict distribution of one prompt, slots in shown order.

    ``line_values`` are tuples of value indices (into ``values``), one per line of the joint
    grammar; ``line_probs`` are normalised over those lines (joint strategy only). ``slot_probs``
    are per-slot distributions over ``values`` (exact marginals for ``joint``, conditional on the
    most probable earlier values for ``greedy``). ``grammar_mass`` is the probability the judge
    writes a line of the grammar at all (for greedy: along the chosen path). ``unseen_mass`` is
    set when the engine saw only part of the distributions (a server's top-k log-probabilities):
    the verdict probability its lists could hide (`PartialLogprobs`); None: exact.
    """

    values: tuple[float, ...]
    slot_probs: tuple[tuple[float, ...], ...]
    grammar_mass: float
    strategy: str
    line_values: tuple[tuple[int, ...], ...] = ()
    line_probs: tuple[float, ...] = ()
    unseen_mass: float | None = None


@dataclass
class _Row:
    """A prompt being scored: which tree it needs next and what it has found so far."""

    prompt: EncodedPrompt
    strategy: str
    prefix: list[str]
    log_mass: float = 0.0
    slot_probs: list[tuple[float, ...]] | None = None
    unseen_mass: float | None = None
    result: PromptScores | RowFailure | None = None

    def tree(self, tokenizer: Any) -> TokenTree | None:
        if self.result is not None:
            return None
        p = self.prompt.prompt
        return build_tree(tokenizer, p.spec, p.text, strategy=self.strategy, prefix=self.prefix)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=512)
def _path_index(tree: TokenTree) -> tuple[Tensor, Tensor, Tensor]:
    """(node, candidate, valid) [lines, steps] of every line's path; built once per tree (3 ms of
    Python per row otherwise: 20% of a 60 samples/s GPU budget)."""
    steps = max(len(p) for p in tree.line_paths)
    node = torch.zeros((len(tree.line_paths), steps), dtype=torch.long)
    cand = torch.zeros_like(node)
    valid = torch.zeros_like(node, dtype=torch.bool)
    for i, path in enumerate(tree.line_paths):
        for j, (n, c) in enumerate(path):
            node[i, j], cand[i, j], valid[i, j] = n, c, True
    return node, cand, valid


def _line_logprobs(tree: TokenTree, cand_lp: Tensor) -> Tensor:
    """[lines] log-probability of each line: the sum of its steps' candidate log-probs.
    ``cand_lp`` [nodes, C] (on the CPU; C may exceed the tree's widest node: -inf padding)."""
    node, cand, valid = _path_index(tree)
    lp = cand_lp[node, cand].double()
    return torch.where(valid, lp, torch.zeros_like(lp)).sum(-1)


def _advance(row: _Row, tree: TokenTree, cand_lp: Tensor) -> None:
    spec = row.prompt.prompt.spec
    values = spec.values
    lines = _line_logprobs(tree, cand_lp)  # [lines] float64
    log_mass = torch.logsumexp(lines, 0)
    probs = torch.exp(lines - log_mass) if math.isfinite(float(log_mass)) else torch.full_like(lines, 1 / len(lines))
    if row.strategy == "joint":
        idx = [spec.slot_values(vals) for vals in tree.line_values]  # per graded slot: index into values
        slots = []
        for k in range(spec.n_graded):
            marg = [0.0] * len(values)
            for line, p in zip(idx, probs.tolist(), strict=True):
                marg[line[k]] += p
            slots.append(tuple(marg))
        row.result = PromptScores(
            values, tuple(slots), float(log_mass.exp()), "joint", tuple(idx), tuple(probs.tolist()), row.unseen_mass
        )
        return
    # greedy round: this slot's distribution given the chosen earlier values
    row.log_mass += float(log_mass)
    row.slot_probs = [*(row.slot_probs or []), tuple(probs.tolist())]
    row.prefix.append(tree.line_values[int(probs.argmax())][-1])
    if len(row.prefix) == spec.n_graded:
        row.result = PromptScores(
            values, tuple(row.slot_probs), math.exp(row.log_mass), "greedy", unseen_mass=row.unseen_mass
        )


@torch.inference_mode()
def _score_batch(
    engine: Engine, tokenizer: Any, prompts: list[EncodedPrompt], images: Any, strategy: SlotStrategy
) -> list[PromptScores | RowFailure]:
    rows = [_Row(p, resolve_strategy(p.prompt.spec, strategy), []) for p in prompts]
    state = engine.prefill([p.input_ids for p in prompts], images=images)
    while any(r.result is None for r in rows):
        trees = [r.tree(tokenizer) for r in rows]
        for row, tree, cand_lp in zip(rows, trees, engine.tree_step(state, trees), strict=True):
            if tree is None:
                continue
            if isinstance(cand_lp, RowFailure):  # a remote engine's request failed: this row only
                row.result = cand_lp
                continue
            if isinstance(cand_lp, PartialLogprobs):
                row.unseen_mass = max(row.unseen_mass or 0.0, cand_lp.unseen_mass)
                cand_lp = cand_lp.logprobs
            assert cand_lp is not None
            _advance(row, tree, cand_lp)
    return [r.result for r in rows]  # type: ignore[misc]


def score_prompts(
    engine: Engine,
    tokenizer: Any,
    prompts: Sequence[EncodedPrompt],
    *,
    strategy: SlotStrategy = "auto",
    images: Sequence[Sequence[Tensor]] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[PromptScores | RowFailure]:
    """Verdict distributions for every prompt, in input order, batched by the engine (a
    `RowFailure` for a prompt a remote engine could not score)."""
    tree_tokens = 130  # a joint pairwise tree with the LLaMA tokenizer is 120 tokens
    batches = engine.batches([p.input_ids for p in prompts], tree_tokens)
    results = []
    for batch in batches:
        imgs = None if images is None else [images[i] for i in batch]
        results.append(_score_batch(engine, tokenizer, [prompts[i] for i in batch], imgs, strategy))
        if on_batch is not None:
            on_batch(len(batch))
    return restore_order(batches, results)  # type: ignore[return-value]
