"""Re-ordering candidates: the one swap used by training (augmentation), inference
(``swap=True``) and evaluation (consistency).

An *order* is a tuple where ``order[k]`` is the index of the original candidate shown in slot k.
Scores read from slots map back with ``original[order[k]] = shown[k]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from judgelm.types import Sample

__all__ = [
    "identity",
    "inverse",
    "permute",
    "permute_judgment",
    "permute_sample",
    "swap_orders",
    "unpermute",
]

T = TypeVar("T")


def identity(n: int) -> tuple[int, ...]:
    return tuple(range(n))


def inverse(order: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(order)
    for slot, candidate in enumerate(order):
        inv[candidate] = slot
    return tuple(inv)


def swap_orders(n: int, kind: str = "reverse") -> tuple[tuple[int, ...], ...]:
    """The orders to judge in for ``swap=True``, identity first.

    ``reverse``: identity and the reversed order (the paper's swap for pairs).
    ``cyclic``: the n rotations, so every candidate is shown once in every slot.
    """
    if n < 2:
        return (identity(n),)
    if kind == "reverse":
        return (identity(n), tuple(reversed(range(n))))
    if kind == "cyclic":
        return tuple(tuple((k + r) % n for k in range(n)) for r in range(n))
    raise ValueError(f"unknown swap kind {kind!r}")


def permute(items: Sequence[T], order: Sequence[int]) -> tuple[T, ...]:
    """Items as shown: slot k holds ``items[order[k]]``."""
    return tuple(items[i] for i in order)


def unpermute(shown: Sequence[T], order: Sequence[int]) -> tuple[T, ...]:
    """Inverse of `permute`: per-slot values back to the original candidate order."""
    out: list[T] = [None] * len(order)  # type: ignore[list-item]
    for slot, candidate in enumerate(order):
        out[candidate] = shown[slot]
    return tuple(out)


def permute_sample(sample: Sample, order: Sequence[int]) -> Sample:
    """The sample with its candidates (answers, or conversations for chat) in ``order``."""
    order = tuple(order)
    if order == identity(len(order)):
        return sample
    if sample.conversations:
        return sample.replace(conversations=permute(sample.conversations, order))
    return sample.replace(answers=permute(sample.answers, order))


_ASSISTANT = re.compile(r"(Assistant\s*)(\d+)")


def permute_judgment(text: str, order: Sequence[int], *, n_forced: int = 0) -> str:
    """Rewrite a judgment written for the original order so it fits the sample shown in ``order``.

    The first line's scores move with their candidates (kept as written, so ``7.5`` stays
    ``7.5``; ``n_forced`` leading scores such as a forced ``10`` stay put), and every "Assistant k"
    in the text is renumbered in one pass (so 1<->2 never collides). The first line is split on
    spaces (commas tolerated); if it does not hold exactly ``n_forced + len(order)`` scores it is
    left as is.
    """
    order = tuple(order)
    inv = inverse(order)
    head, nl, rest = text.partition("\n")
    fields = head.replace(",", " ").split()
    if len(fields) == n_forced + len(order):
        graded = fields[n_forced:]
        head = " ".join(fields[:n_forced] + [graded[i] for i in order])

    def renumber(m: re.Match[str]) -> str:
        k = int(m.group(2)) - 1 - n_forced
        if 0 <= k < len(order):
            return f"{m.group(1)}{inv[k] + 1 + n_forced}"
        return m.group(0)

    return _ASSISTANT.sub(renumber, head + nl + rest)
