"""Running a judge over labelled items, the one way benchmarks and audits both use.

One batched `Judge.judge` call per condition (never one per sample); items that share a sample id
(several human votes on one MT-Bench pair) are judged once and share the verdict.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from judgelm.eval.labelled import Labelled
from judgelm.types import Sample, Verdict

if TYPE_CHECKING:  # the judge is only called, never built, here: no torch import
    from judgelm.judge import Judge

__all__ = ["judge_items", "order_pair"]


def judge_items(
    judge: Judge,
    items: Sequence[Labelled],
    *,
    with_reference: bool,
    swap: bool,
    shuffle_seed: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    **judge_kwargs: Any,
) -> list[Verdict]:
    """One verdict per item, in item order.

    ``with_reference=False`` hides each sample's reference from the judge. ``shuffle_seed`` sends
    the samples in a seeded random order, so batches are composed differently (how
    self-consistency runs vary the padding and batch neighbours a sample sees); verdicts come back
    in item order regardless."""
    unique: list[Sample] = []
    where: dict[str, int] = {}
    slot: list[int] = []
    for item in items:
        s = item.sample if with_reference else item.sample.replace(reference=None)
        k = where.get(s.id) if s.id is not None else None
        if k is None or unique[k] != s:
            k = len(unique)
            unique.append(s)
            if s.id is not None:
                where.setdefault(s.id, k)
        slot.append(k)
    order = list(range(len(unique)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    batch = [unique[k] for k in order]
    out = judge.judge(batch, swap=swap, on_progress=on_progress, **judge_kwargs)
    verdicts: list[Verdict | None] = [None] * len(unique)
    for k, v in zip(order, out, strict=True):
        verdicts[k] = v
    return [verdicts[k] for k in slot]  # type: ignore[misc]


def order_pair(v: Verdict) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """(normal, swapped) score pairs of a pairwise verdict, as the reference metrics take them:
    the identity-order scores in answer order, and the swapped-order scores in the slot order of
    the swapped prompt (``None`` where that order was not judged or could not be read)."""
    orders = v.order_scores
    if not orders:
        return (None if v.abstained else v.scores), None
    normal = orders[0]
    swapped = orders[1] if len(orders) >= 2 else None
    return normal, (None if swapped is None else tuple(reversed(swapped)))
