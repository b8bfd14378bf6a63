"""Log-probabilities of every token of given sequences (the OpenAI ``echo`` + ``logprobs``
contract: position 0 has none, position i is ``log p(token_i | tokens_<i)``), computed with
the local engines' own pieces: ``prefill`` + ``tree_forward``.

Sequences that start with the same token are merged into one token trie (sorted, so sequences
sharing a prefix share its nodes): the first token is prefilled, every other node is fed as one
tree after it (a chain is a tree; siblings never see each other), and each node's output gives
the distribution of its children. A judge prompt followed by each line of its verdict grammar
(what a remote judge sends to score exactly) is then one prompt's worth of work plus the grammar
trie, not one prompt per line; and every line's numbers come from the same forward as the local
judge's tree step, so they agree to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from judgelm.engine.base import TokenLogprobs

__all__ = ["prompt_logprobs"]

_MAX_TREE_NODES = 4096  # nodes per trie row (the tree mask is [nodes, nodes])
_BATCH_NODES = 8192  # trie nodes per prefill + tree step
_LOGIT_ROWS = 1 << 25  # fp32 logits alive at once ([rows, V]): 128 MiB


@dataclass
class _Trie:
    """One row: sequences sharing their first token. Node 0 is that token (prefilled); node ids
    are in creation order (parents first)."""

    first: int
    children: list[dict[int, int]] = field(default_factory=lambda: [{}])
    parent: list[int] = field(default_factory=lambda: [-1])
    token: list[int] = field(default_factory=lambda: [-1])
    depth: list[int] = field(default_factory=lambda: [0])
    members: list[tuple[int, list[tuple[int, int]]]] = field(default_factory=list)  # (sequence, [(node, token)])

    def size_with(self, seq: Sequence[int]) -> int:
        node, new = 0, 0
        for t in seq[1:]:
            nxt = self.children[node].get(t) if new == 0 else None
            if nxt is None:
                new += 1
            else:
                node = nxt
        return len(self.children) + new

    def add(self, index: int, seq: Sequence[int]) -> None:
        node, edges = 0, []
        for t in seq[1:]:
            edges.append((node, t))
            nxt = self.children[node].get(t)
            if nxt is None:
                nxt = len(self.children)
                self.children[node][t] = nxt
                self.children.append({})
                self.parent.append(node)
                self.token.append(t)
                self.depth.append(self.depth[node] + 1)
            node = nxt
        self.members.append((index, edges))

    def fed(self) -> tuple[list[int], dict[int, int]]:
        """The nodes fed to the model (those with children), and node -> output index (0 = root)."""
        inner = [n for n in range(1, len(self.children)) if self.children[n]]
        return inner, {0: 0, **{n: i + 1 for i, n in enumerate(inner)}}


def _tries(sequences: Sequence[Sequence[int]]) -> list[_Trie]:
    order = sorted((i for i, s in enumerate(sequences) if len(s) > 1), key=lambda i: list(sequences[i]))
    tries: list[_Trie] = []
    for i in order:
        seq = sequences[i]
        t = tries[-1] if tries and tries[-1].first == seq[0] else None
        if t is None or t.size_with(seq) > _MAX_TREE_NODES:
            t = _Trie(seq[0])
            tries.append(t)
        t.add(i, seq)
    return tries


def _full_logprobs(outputs: Tensor, head: tuple[Tensor, Tensor | None] | None) -> Tensor:
    """[nodes, V] fp32 log-probabilities from a row's outputs (hidden states through ``head``, or
    logits when the head is not linear), in bounded chunks."""
    if head is None:
        return torch.log_softmax(outputs.float(), -1)
    weight, bias = head
    rows = max(1, _LOGIT_ROWS // weight.shape[0])
    parts = []
    for r0 in range(0, outputs.shape[0], rows):
        logits = outputs[r0 : r0 + rows].float() @ weight.float().T  # [rows, V]
        if bias is not None:
            logits += bias.float()
        parts.append(torch.log_softmax(logits, -1))
    return torch.cat(parts)


def _children_logprobs(
    outputs: Tensor, head: tuple[Tensor, Tensor | None] | None, kids: list[list[int]], top_k: int
) -> tuple[Tensor, list[tuple[tuple[int, float], ...]]]:
    """Each node's children's log-probabilities, [nodes, C] on the CPU (-inf padding), and the
    ``top_k`` most likely tokens per node. Without top-k the verdict head computes them (fused on
    CUDA: the [nodes, V] log-probabilities are never written)."""
    width = max(1, max(map(len, kids)))
    cand = torch.full((len(kids), width), -1, dtype=torch.long)
    for i, k in enumerate(kids):
        cand[i, : len(k)] = torch.tensor(k, dtype=torch.long)
    if top_k == 0 and head is not None:
        from judgelm.scoring.head import verdict_head

        weight, bias = head
        out = verdict_head(outputs, weight, cand.to(outputs.device), bias=bias, with_entropy=False)
        return out.cand_logprobs.float().cpu(), [()] * len(kids)
    logp = _full_logprobs(outputs, head).cpu()  # [nodes, V]
    values = torch.where(cand >= 0, logp.gather(1, cand.clamp(min=0)), -math.inf)
    top: list[tuple[tuple[int, float], ...]] = [()] * len(kids)
    if top_k:
        v, i = logp.topk(min(top_k, logp.shape[-1]), dim=-1)
        top = [tuple(zip(ids, vals, strict=True)) for ids, vals in zip(i.tolist(), v.tolist(), strict=True)]
    return values, top


def _read(trie: _Trie, inner: list[int], outputs: Tensor, head: Any, top_k: int) -> dict[int, list[TokenLogprobs]]:
    """Per member sequence of a trie row, a `TokenLogprobs` for each position after the first."""
    nodes = [0, *inner]  # output row k holds node nodes[k]
    kids = [list(trie.children[n]) for n in nodes]
    values, top = _children_logprobs(outputs[: len(nodes)], head, kids, top_k)
    row_of = {n: k for k, n in enumerate(nodes)}
    slot = [{t: j for j, t in enumerate(k)} for k in kids]
    rows = [[row_of[n] for n, _ in edges] for _, edges in trie.members]
    flat_rows = torch.tensor([r for rs in rows for r in rs], dtype=torch.long)
    flat_slots = torch.tensor(
        [
            slot[r][t]
            for rs, (_, edges) in zip(rows, trie.members, strict=True)
            for r, (_, t) in zip(rs, edges, strict=True)
        ],
        dtype=torch.long,
    )
    chosen = iter(values[flat_rows, flat_slots].tolist())  # one gather for every edge of every member
    out = {}
    for (seq_index, edges), rs in zip(trie.members, rows, strict=True):
        out[seq_index] = [TokenLogprobs(t, next(chosen), top[r]) for (_, t), r in zip(edges, rs, strict=True)]
    return out


@torch.inference_mode()
def prompt_logprobs(engine: Any, sequences: Sequence[Sequence[int]], *, top_k: int = 0) -> list[list[TokenLogprobs]]:
    """For each sequence, one `TokenLogprobs` per token after the first (the first token has no
    log-probability), with the ``top_k`` most likely tokens at each position.

    ``engine`` must be a local engine (`PackedEngine`, `HFEngine`: ``prefill(want="hidden")`` and
    ``tree_forward``); other engines raise `NotImplementedError`."""
    if not hasattr(engine, "tree_forward"):
        raise NotImplementedError(f"prompt log-probabilities need a local engine, not {type(engine).__name__}")
    if any(len(s) == 0 for s in sequences):
        raise ValueError("an empty sequence")
    tries = _tries(sequences)
    result: dict[int, list[TokenLogprobs]] = {i: [] for i, s in enumerate(sequences) if len(s) <= 1}
    head = engine.facts.head
    start = 0
    while start < len(tries):  # batches of tries within the node budget
        stop, nodes = start, 0
        while stop < len(tries) and (stop == start or nodes + len(tries[stop].children) <= _BATCH_NODES):
            nodes += len(tries[stop].children)
            stop += 1
        batch = tries[start:stop]
        fed = [t.fed() for t in batch]
        state = engine.prefill([[t.first] for t in batch], want="hidden")
        outputs = engine.tree_forward(
            state,
            [[t.token[n] for n in inner] for t, (inner, _) in zip(batch, fed, strict=True)],
            [[index[t.parent[n]] for n in inner] for t, (inner, index) in zip(batch, fed, strict=True)],
            [[t.depth[n] for n in inner] for t, (inner, _) in zip(batch, fed, strict=True)],
        )  # [B, 1 + T, H] (or V)
        for r, (t, (inner, _)) in enumerate(zip(batch, fed, strict=True)):
            result.update(_read(t, inner, outputs[r], head, top_k))
        start = stop
    return [result[i] for i in range(len(sequences))]
