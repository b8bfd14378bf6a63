"""The verdict grammar as token trees, built from the tokenizer itself.

A verdict line is ``[sep] v1 sep v2 ... vN term`` after the prompt (the leading ``sep`` only when
the prompt already wrote forced scores, as in ``### Response:10`` + `` 7\\n``). Each allowed line
is tokenized *in context* (appended to the prompt's last line and diffed), so multi-token scores
(LLaMA writes "10" as "1", "0"), byte-fallback newlines and tokenizer-specific spacing come out
as the model really sees them. The lines are merged into a trie; one forward pass over the trie
under a tree attention mask gives every conditional probability needed for the exact sequence
probability of every line.

Two ways to handle several slots (see `SlotStrategy`):

- ``joint``: every line of every combination of values in one trie (V^N lines, for V values and
  N free slots): exact joint distribution, exact marginals and P(A better/tie/B better). With the
  LLaMA tokenizer and V=10 scores, N=2 costs 120 tree positions per prompt.
- ``greedy``: slot k's values conditioned on the most probable values of slots 1..k-1: N rounds
  of about 2V positions each. Used when V^N is too large (N-answer ranking).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from judgelm.errors import ScoringError
from judgelm.formats.base import VerdictSpec
from judgelm.options import SlotStrategy

__all__ = ["MAX_JOINT_LINES", "SlotStrategy", "TokenTree", "build_tree", "line_text", "resolve_strategy"]

MAX_JOINT_LINES = 400  # "auto" scores jointly up to this many lines (V^N), greedily above


def line_text(spec: VerdictSpec, values: Sequence[str], *, complete: bool = True) -> str:
    """The text the judge writes after the prompt for these free-slot values (one label for a
    choice grammar). A ``terminator`` of ``None`` (the end of the text) adds no text: the trie
    appends the EOS token.

    ``complete=False`` (greedy rounds) ends with the separator that closes the last value instead
    of the terminator, unless the last value is the last slot."""
    lead = spec.separator if spec.forced else spec.lead
    body = lead + spec.separator.join(values)
    last_slot = len(values) == spec.n_written
    if complete or last_slot:
        return body + ((spec.terminator or "") if last_slot else spec.separator)
    return body + spec.separator


def _eos_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if not isinstance(eos, int):
        raise ScoringError("this verdict grammar ends at the end of the text, and the tokenizer has no EOS token")
    return eos


@dataclass(frozen=True)
class TokenTree:
    """A trie of token sequences continuing a prompt.

    Node 0 is the root: the prompt's last position. Nodes 1..T are the tree tokens fed to the
    model (``tokens[i-1]``, parent ``parents[i-1]``), only those that have children (leaves need
    no logits). ``cand_ids[n]`` are the child tokens of node n (the candidates whose log-probs the
    head computes there). Each line is a path of (node, candidate slot) steps.
    """

    tokens: tuple[int, ...]  # [T]
    parents: tuple[int, ...]  # [T], node index of each fed token's parent (0 = root)
    depths: tuple[int, ...]  # [T], 1 for children of the root
    cand_ids: tuple[tuple[int, ...], ...]  # [T+1][C_n]
    line_paths: tuple[tuple[tuple[int, int], ...], ...]  # [lines][steps] (node, candidate slot)
    line_values: tuple[tuple[str, ...], ...]  # [lines] the free-slot values of each line

    @property
    def n_nodes(self) -> int:
        return len(self.tokens) + 1

    @property
    def max_candidates(self) -> int:
        return max(len(c) for c in self.cand_ids)


def _tokenize_lines(tokenizer: Any, anchor: str, lines: Sequence[str]) -> list[tuple[int, ...]]:
    """Token ids of each line as it continues ``anchor`` (ids of anchor+line minus anchor's)."""
    base = tokenizer(anchor, add_special_tokens=False)["input_ids"]
    out = []
    for line in lines:
        ids = tokenizer(anchor + line, add_special_tokens=False)["input_ids"]
        if ids[: len(base)] != base or len(ids) == len(base):
            raise ScoringError(
                f"the tokenizer merges the verdict {line!r} into the prompt's ending {anchor[-20:]!r}; "
                "logit scoring needs the verdict to start on a token boundary (use scoring='text')"
            )
        out.append(tuple(ids[len(base) :]))
    return out


def _build_trie(sequences: Sequence[tuple[int, ...]], values: Sequence[tuple[str, ...]]) -> TokenTree:
    children: list[dict[int, int]] = [{}]  # node -> {token: child node}
    node_token, node_parent, node_depth = [-1], [-1], [0]
    ends: set[int] = set()
    for seq, line_vals in zip(sequences, values, strict=True):
        if not seq:
            raise ScoringError(f"empty verdict line for {line_vals}")
        node = 0
        for tok in seq:
            if node in ends:
                raise ScoringError(f"a verdict line is a prefix of the line for {line_vals}")
            nxt = children[node].get(tok)
            if nxt is None:
                nxt = len(children)
                children[node][tok] = nxt
                children.append({})
                node_token.append(tok)
                node_parent.append(node)
                node_depth.append(node_depth[node] + 1)
            node = nxt
        if children[node] or node in ends:
            raise ScoringError(f"the verdict line for {line_vals} is a prefix of another line")
        ends.add(node)
    # Feed only internal nodes (root excluded); renumber them 1..T in creation (topological) order.
    internal = [n for n in range(1, len(children)) if children[n]]
    index = {0: 0, **{n: i + 1 for i, n in enumerate(internal)}}
    cand_lists = [list(children[0])] + [list(children[n]) for n in internal]
    paths = []
    for seq in sequences:
        node, steps = 0, []
        for tok in seq:
            steps.append((index[node], cand_lists[index[node]].index(tok)))
            node = children[node][tok]
        paths.append(tuple(steps))
    return TokenTree(
        tokens=tuple(node_token[n] for n in internal),
        parents=tuple(index[node_parent[n]] for n in internal),
        depths=tuple(node_depth[n] for n in internal),
        cand_ids=tuple(tuple(c) for c in cand_lists),
        line_paths=tuple(paths),
        line_values=tuple(tuple(v) for v in values),
    )


@lru_cache(maxsize=256)
def _cached_tree(
    tokenizer_key: int, tokenizer_ref: Any, spec: VerdictSpec, anchor: str, prefix: tuple[str, ...], strategy: str
) -> TokenTree:
    tokenizer = tokenizer_ref.obj
    if strategy == "joint":
        combos = list(itertools.product(spec.score_values, repeat=spec.n_written))
        texts = [line_text(spec, c) for c in combos]
    else:  # one greedy round: slot len(prefix), given the chosen earlier values
        combos = [(*prefix, v) for v in spec.score_values]
        texts = [line_text(spec, c, complete=False) for c in combos]
    sequences = _tokenize_lines(tokenizer, anchor, texts)
    if spec.terminator is None and len(combos[0]) == spec.n_written:  # complete lines end the text
        eos = _eos_id(tokenizer)
        sequences = [(*seq, eos) for seq in sequences]
    return _build_trie(sequences, combos)


class _Ref:
    """Hashable-by-identity wrapper so a tokenizer can key an lru_cache."""

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ref) and other.obj is self.obj


def resolve_strategy(spec: VerdictSpec, strategy: SlotStrategy) -> Literal["joint", "greedy"]:
    if spec.is_choice:  # one written label: its lines are the joint
        return "joint"
    if strategy != "auto":
        return strategy
    return "joint" if len(spec.score_values) ** spec.n_graded <= MAX_JOINT_LINES else "greedy"


def build_tree(
    tokenizer: Any,
    spec: VerdictSpec,
    prompt_text: str,
    *,
    strategy: Literal["joint", "greedy"],
    prefix: Sequence[str] = (),
) -> TokenTree:
    """The token tree continuing ``prompt_text`` for ``spec`` (cached per tokenizer, spec and the
    prompt's last line, which is all the tokenization of the verdict can depend on)."""
    anchor = "\n" + prompt_text.rsplit("\n", 1)[-1]
    return _cached_tree(id(tokenizer), _Ref(tokenizer), spec, anchor, tuple(prefix), strategy)
