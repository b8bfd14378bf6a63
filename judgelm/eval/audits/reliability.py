"""Calibration of the scoring head: when the judge is p sure of its pairwise verdict, is it right
p of the time? Needs verdicts from logit scoring (``distributions``); text verdicts carry no
probabilities, and then the audit says so instead of drawing anything.

The verdict's probabilities of (answer 1 better, tie, answer 2 better) are its ``preference`` when
the scoring head gives one, else derived from the two score distributions taken as independent.
The predicted label is the most probable one, its probability the confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from judgelm.eval.labelled import Labelled
from judgelm.types import Verdict

__all__ = ["Reliability", "preference_probs", "reliability_audit"]


@dataclass(frozen=True)
class Reliability:
    """``bins``: (low, high, mean confidence, accuracy, count) per non-empty confidence bin;
    ``ece``: expected calibration error (count-weighted mean |accuracy - confidence|)."""

    available: bool
    n: int
    ece: float | None = None
    accuracy: float | None = None
    mean_confidence: float | None = None
    bins: tuple[tuple[float, float, float, float, int], ...] = ()
    reason: str | None = None


def preference_probs(v: Verdict) -> tuple[float, float, float] | None:
    """P(label 1), P(label 0), P(label -1) of a pairwise verdict, or ``None`` without them."""
    if v.preference is not None:
        return v.preference.first, v.preference.tie, v.preference.second
    d = v.distributions
    if not d or len(d) != 2:
        return None
    first = tie = second = 0.0
    for a, pa in zip(d[0].values, d[0].probs, strict=True):
        for b, pb in zip(d[1].values, d[1].probs, strict=True):
            if a > b:
                first += pa * pb
            elif a < b:
                second += pa * pb
            else:
                tie += pa * pb
    total = first + tie + second
    return (first / total, tie / total, second / total) if total > 0 else None


def reliability_audit(
    items: Sequence[Labelled], verdicts: Sequence[Verdict], *, n_bins: int = 10
) -> Reliability:
    """Reliability of the verdicts' pairwise confidence on the labelled items."""
    points: list[tuple[float, bool]] = []
    with_probs = 0
    for item, v in zip(items, verdicts, strict=True):
        probs = None if v.abstained else preference_probs(v)
        if probs is None:
            continue
        with_probs += 1
        if item.label is None:
            continue
        k = max(range(3), key=probs.__getitem__)
        points.append((probs[k], (1, 0, -1)[k] == item.label))
    if not with_probs:
        return Reliability(
            False, 0, reason="no score distributions in the verdicts (judge with scoring='logits')"
        )
    if not points:
        return Reliability(False, 0, reason="no labelled items with score distributions")
    bins = []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        part = [(c, ok) for c, ok in points if lo <= c < hi or (b == n_bins - 1 and c == hi)]
        if part:
            conf = sum(c for c, _ in part) / len(part)
            acc = sum(ok for _, ok in part) / len(part)
            bins.append((lo, hi, conf, acc, len(part)))
    n = len(points)
    return Reliability(
        available=True,
        n=n,
        ece=sum(cnt / n * abs(acc - conf) for _, _, conf, acc, cnt in bins),
        accuracy=sum(ok for _, ok in points) / n,
        mean_confidence=sum(c for c, _ in points) / n,
        bins=tuple(bins),
    )
