"""Shared prompt prefixes, found automatically: N candidates graded against the same question and
reference (best-of-N, GRPO groups) share most of their prompt. The engine computes a group's
prefix once, copies its K/V into every member's cache row and prefills only the suffixes.

Pure Python (token lists); no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PrefixGroup", "common_prefix_length", "plan_prefix_batches", "shared_prefix_groups"]


@dataclass(frozen=True)
class PrefixGroup:
    members: tuple[int, ...]  # indices into the prompt list; the first computes the prefix
    length: int  # shared tokens (every member keeps at least one token of its own)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def shared_prefix_groups(prompts: Sequence[Sequence[int]], *, min_length: int = 32) -> list[PrefixGroup]:
    """Groups of at least two prompts sharing at least ``min_length`` leading tokens.

    Prompts are sorted lexicographically, so the common prefix of a run of neighbours is the
    smallest common prefix of adjacent pairs. A run grows while that keeps at least
    ``min_length`` tokens and does not lose more sharing than the newcomer brings (joining a
    group of ``m`` sharing ``c`` tokens at ``c' < c`` pays when ``m * c' >= (m - 1) * c``).
    Each prompt is in at most one group; groups come out in order of their first member."""
    order = sorted(range(len(prompts)), key=lambda i: tuple(prompts[i]))
    groups: list[PrefixGroup] = []
    run: list[int] = []
    common = 0

    def close() -> None:
        if len(run) >= 2:
            cap = min(len(prompts[i]) for i in run) - 1  # every member keeps its last token
            length = min(common, cap)
            if length >= min_length:
                groups.append(PrefixGroup(tuple(sorted(run)), length))

    for i in order:
        if run:
            shared = min(common, common_prefix_length(prompts[run[-1]], prompts[i]))
            if shared >= min_length and len(run) * shared >= (len(run) - 1) * common:
                run.append(i)
                common = shared
                continue
            close()
        run, common = [i], len(prompts[i])
    close()
    return sorted(groups, key=lambda g: g.members[0])


def plan_prefix_batches(
    prompts: Sequence[Sequence[int]], *, max_tokens: int, max_size: int, extra_per_item: int = 0, min_length: int = 32
) -> list[list[int]]:
    """Token-budget batches (packed cost) that keep each shared-prefix group together, costed
    at what the engine computes: the prefix once plus every member's suffix (+ extra). A group
    over the budget is split into budget-sized pieces (each piece recomputes the prefix).
    Longest units first; every prompt lands in exactly one batch."""
    groups = shared_prefix_groups(prompts, min_length=min_length)
    grouped = {m for g in groups for m in g.members}
    units: list[tuple[list[int], int]] = []  # (members, cost)
    for g in groups:
        piece: list[int] = []
        cost = g.length
        for m in g.members:
            item = len(prompts[m]) - g.length + extra_per_item
            if piece and (cost + item > max_tokens or len(piece) >= max_size):
                units.append((piece, cost))
                piece, cost = [], g.length
            piece.append(m)
            cost += item
        units.append((piece, cost))
    units += [([i], len(p) + extra_per_item) for i, p in enumerate(prompts) if i not in grouped]
    units.sort(key=lambda u: (-max(len(prompts[i]) for i in u[0]), u[0][0]))
    batches: list[list[int]] = []
    current: list[int] = []
    cost = 0
    for members, unit_cost in units:
        if current and (cost + unit_cost > max_tokens or len(current) + len(members) > max_size):
            batches.append(current)
            current, cost = [], 0
        current.extend(members)
        cost += unit_cost
    if current:
        batches.append(current)
    return batches
