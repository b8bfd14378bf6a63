"""Token-budget batching: sort by length, fill each batch up to a token budget, remember where
every item came from so results return in input order. Pure Python; no torch."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plan_batches", "restore_order"]


def plan_batches(
    lengths: Sequence[int], *, max_tokens: int, max_size: int, extra_per_item: int = 0, padded: bool = True
) -> list[list[int]]:
    """Group item indices into batches, longest first.

    A batch's cost is ``size * (longest + extra_per_item)`` when ``padded`` (a rectangular batch),
    else ``sum(length + extra_per_item)`` (a packed batch). Every item lands in exactly one batch;
    an item alone over the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    cost = 0
    for i in order:
        item = lengths[i] + extra_per_item
        if padded:
            new_cost = (len(current) + 1) * (max(item, lengths[current[0]] + extra_per_item) if current else item)
        else:
            new_cost = cost + item
        if current and (new_cost > max_tokens or len(current) >= max_size):
            batches.append(current)
            current, new_cost = [], item
        current.append(i)
        cost = new_cost
    if current:
        batches.append(current)
    return batches


def restore_order(batches: Sequence[Sequence[int]], results: Sequence[Sequence[object]]) -> list[object]:
    """Flatten per-batch results back into input order (checks that nothing is lost or doubled)."""
    n = sum(len(b) for b in batches)
    out: list[object] = [None] * n
    seen = [False] * n
    for batch, res in zip(batches, results, strict=True):
        for i, r in zip(batch, res, strict=True):
            if seen[i]:
                raise RuntimeError(f"item {i} was batched twice")
            seen[i] = True
            out[i] = r
    if not all(seen):
        raise RuntimeError("an item was lost in batching")
    return out
