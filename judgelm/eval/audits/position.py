"""Position bias: does the verdict change when the two answers trade places, and which slot wins?

Read from ``swap=True`` verdicts (``order_scores``: one pair per order, in answer order). The
rates are the reference's consistency family, computed on every pairwise item (an unreadable order
counts as a tie, as in the reference); the score gap is measured where both orders were read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from judgelm.eval.judging import order_pair
from judgelm.eval.labelled import Labelled
from judgelm.eval.metrics import label_metrics, label_of
from judgelm.types import Verdict

__all__ = ["PositionAudit", "position_audit"]


@dataclass(frozen=True)
class PositionAudit:
    """- ``flip_rate``: share of items whose verdict changes with the order (1 - consistency).
    - ``prefers_first`` / ``prefers_second``: share where the change favours slot 1 / slot 2
      (the reference's ``perfer_before_rate`` / ``perfer_after_rate``); ``favoured_slot`` names the
      larger, ``"none"`` when equal.
    - ``slot_gap``: mean of score(slot 1) - score(slot 2) over both orders, on the
      ``both_read`` items; answer quality cancels out, what is left is the pull of the slot.
    - ``agreement_*``: agreement with the truth of the normal order, the swapped order (mapped back
      to answer order) and the averaged verdict, on the ``labelled`` items (``None`` without).
    """

    n: int
    both_read: int
    consistency: float
    flip_rate: float
    prefers_first: float
    prefers_second: float
    delta_bias: float
    favoured_slot: Literal["first", "second", "none"]
    slot_gap: float | None
    labelled: int
    agreement_normal: float | None
    agreement_swapped: float | None
    agreement_averaged: float | None


def _agreement(truth: list[int], pred: list[int]) -> float | None:
    if not truth:
        return None
    return sum(1 for t, p in zip(truth, pred, strict=True) if t == p) / len(truth)


def position_audit(items: Sequence[Labelled], verdicts: Sequence[Verdict]) -> PositionAudit:
    """Position audit of pairwise ``items`` from their ``swap=True`` ``verdicts``."""
    if len(items) != len(verdicts):
        raise ValueError("one verdict per item")
    pairs = [order_pair(v) for v in verdicts]
    normal = [label_of(p[0]) for p in pairs]
    swapped = [label_of(p[1]) for p in pairs]
    rates = label_metrics([0] * len(pairs), normal, swapped)
    gaps = [
        ((a[0] - a[1]) + (b[0] - b[1])) / 2
        for a, b in pairs
        if a is not None and b is not None  # b is in slot order: b[0] is slot 1
    ]
    before, after = rates["perfer_before_rate"], rates["perfer_after_rate"]
    favoured = "first" if before > after else "second" if after > before else "none"
    lab = [k for k, i in enumerate(items) if i.label is not None]
    truth = [items[k].label for k in lab]
    averaged = [verdicts[k].label or 0 for k in lab]
    return PositionAudit(
        n=len(pairs),
        both_read=len(gaps),
        consistency=rates["consistency"],
        flip_rate=rates["total_bias"],
        prefers_first=before,
        prefers_second=after,
        delta_bias=rates["delta_bias"],
        favoured_slot=favoured,  # type: ignore[arg-type]
        slot_gap=sum(gaps) / len(gaps) if gaps else None,
        labelled=len(lab),
        agreement_normal=_agreement(truth, [normal[k] for k in lab]),  # type: ignore[arg-type]
        agreement_swapped=_agreement(truth, [-swapped[k] for k in lab]),  # type: ignore[arg-type]
        agreement_averaged=_agreement(truth, averaged),  # type: ignore[arg-type]
    )
