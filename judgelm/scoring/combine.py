"""From per-order verdict distributions to the numbers a `Verdict` reports.

Each order's distributions are first rescaled by the judge's `Calibration` (fitted by
`judgelm.calibration`). Everything here is small exact arithmetic on [V]- or [V^N]-sized distributions (V = number of
score values), in candidate order (the sample's answers), after undoing each prompt's order.

Decisions (documented in docs/scoring.md):
- ``scores`` are expected scores; ``winner`` is the most probable outcome: for pairs the largest of
  P(first better), P(tie), P(second better) (a tie gives no winner); for N answers the largest
  P(rank 1); single grading has none.
- ``confidence`` = 1 - H(d) / log K, for the decision distribution d over K outcomes (pairs: the
  3-way preference; N answers: P(rank 1); single: the score distribution).
- Swapped orders are averaged (distributions and joints), and ``inconsistency`` is the total
  variation distance between the orders' decision distributions (0 = the order never mattered).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgelm.types import Preference, ScoreDistribution

if TYPE_CHECKING:
    from judgelm.scoring.scorer import PromptScores

__all__ = ["Calibration", "CombinedVerdict", "combine_orders", "rank1_independent"]


@dataclass(frozen=True)
class Calibration:
    """Temperature (and optional per-value bias) applied to verdict distributions."""

    temperature: float = 1.0
    value_bias: tuple[float, ...] | None = None

    @property
    def is_identity(self) -> bool:
        return self.temperature == 1.0 and not self.value_bias

    def apply(self, probs: Sequence[float]) -> tuple[float, ...]:
        if self.is_identity:
            return tuple(probs)
        bias = self.value_bias if self.value_bias and len(self.value_bias) == len(probs) else None
        logits = [
            (math.log(p) / self.temperature + (bias[i] if bias else 0.0)) if p > 0 else -math.inf
            for i, p in enumerate(probs)
        ]
        top = max(logits)
        if top == -math.inf:
            return tuple(probs)
        weights = [math.exp(x - top) for x in logits]
        total = sum(weights)
        return tuple(w / total for w in weights)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": "temperature", "temperature": self.temperature}
        if self.value_bias:
            out["value_bias"] = list(self.value_bias)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Calibration:
        if not data:
            return cls()
        bias = data.get("value_bias")
        return cls(float(data.get("temperature", 1.0)), tuple(bias) if bias else None)


@dataclass(frozen=True)
class OrderView:
    """One order's distributions, mapped to candidate order and calibrated."""

    cand_probs: tuple[tuple[float, ...], ...]  # [n][V]
    joint: dict[tuple[int, ...], float] | None  # value indices per candidate -> probability
    grammar_mass: float


@dataclass(frozen=True)
class CombinedVerdict:
    scores: tuple[float, ...]
    distributions: tuple[ScoreDistribution, ...]
    preference: Preference | None
    rank1_probs: tuple[float, ...] | None
    winner: int | None
    ranking: tuple[int, ...] | None
    confidence: float
    outside_mass: float
    order_scores: tuple[tuple[float, ...], ...]
    consistent: bool | None
    inconsistency: float | None


def _normalise(ps: Sequence[float]) -> tuple[float, ...]:
    total = sum(ps)
    return tuple(p / total for p in ps) if total > 0 else tuple(1 / len(ps) for _ in ps)


def _view(ps: PromptScores, order: Sequence[int], calibration: Calibration) -> OrderView:
    n = len(order)
    if ps.line_values:  # joint: calibrate the joint, then marginals
        probs = calibration.apply(ps.line_probs)
        joint: dict[tuple[int, ...], float] = {}
        for line, p in zip(ps.line_values, probs, strict=True):
            cand = [0] * n
            for slot, value_index in enumerate(line):
                cand[order[slot]] = value_index
            joint[tuple(cand)] = joint.get(tuple(cand), 0.0) + p
        marg = [[0.0] * len(ps.values) for _ in range(n)]
        for key, p in joint.items():
            for c, v in enumerate(key):
                marg[c][v] += p
        return OrderView(tuple(tuple(m) for m in marg), joint, ps.grammar_mass)
    cand_probs: list[tuple[float, ...]] = [()] * n
    for slot, probs in enumerate(ps.slot_probs):
        cand_probs[order[slot]] = tuple(calibration.apply(probs))
    return OrderView(tuple(cand_probs), None, ps.grammar_mass)


def rank1_independent(probs: Sequence[Sequence[float]], values: Sequence[float]) -> tuple[float, ...]:
    """P(candidate i has the highest score), ties shared equally, treating candidates as
    independent (used when no joint distribution is available)."""
    n = len(probs)
    out = []
    for i in range(n):
        total = 0.0
        for k, v in enumerate(values):
            if probs[i][k] == 0:
                continue
            # coefficients of z^m in prod_j (P(s_j < v) + P(s_j = v) z): m others tie at v
            poly = [1.0]
            for j in range(n):
                if j == i:
                    continue
                less = sum(p for p, w in zip(probs[j], values, strict=True) if w < v)
                eq = sum(p for p, w in zip(probs[j], values, strict=True) if w == v)
                poly = [
                    (poly[m] * less if m < len(poly) else 0.0) + (poly[m - 1] * eq if m > 0 else 0.0)
                    for m in range(len(poly) + 1)
                ]
            total += probs[i][k] * sum(c / (m + 1) for m, c in enumerate(poly))
        out.append(total)
    return tuple(out)


def _rank1_joint(joint: dict[tuple[int, ...], float], values: Sequence[float], n: int) -> tuple[float, ...]:
    out = [0.0] * n
    for key, p in joint.items():
        scores = [values[v] for v in key]
        best = max(scores)
        top = [i for i, s in enumerate(scores) if s == best]
        for i in top:
            out[i] += p / len(top)
    return tuple(out)


def _preference(
    joint: dict[tuple[int, ...], float] | None, probs: Sequence[Sequence[float]], values: Sequence[float]
) -> Preference:
    first = tie = second = 0.0
    items = (
        joint.items()
        if joint is not None
        else (((a, b), pa * pb) for a, pa in enumerate(probs[0]) for b, pb in enumerate(probs[1]))
    )
    for (a, b), p in items:
        if values[a] > values[b]:
            first += p
        elif values[a] < values[b]:
            second += p
        else:
            tie += p
    return Preference(first, tie, second)


def _decision(
    n: int, pref: Preference | None, rank1: tuple[float, ...] | None, probs: Sequence[float]
) -> tuple[tuple[float, ...], int | None]:
    """(decision distribution, winner) for the verdict's kind."""
    if n == 2 and pref is not None:
        d = (pref.first, pref.tie, pref.second)
        best = max(range(3), key=d.__getitem__)
        return d, {0: 0, 1: None, 2: 1}[best]
    if n >= 3 and rank1 is not None:
        best = max(rank1)
        top = [i for i, p in enumerate(rank1) if p == best]
        return rank1, top[0] if len(top) == 1 else None
    return tuple(probs), None


def _confidence(d: Sequence[float]) -> float:
    if len(d) < 2:
        return 1.0
    h = -sum(p * math.log(p) for p in d if p > 0)
    return max(0.0, 1.0 - h / math.log(len(d)))


def _summaries(
    view_probs: Sequence[Sequence[float]], joint: dict[tuple[int, ...], float] | None, values: Sequence[float]
):
    n = len(view_probs)
    pref = _preference(joint, view_probs, values) if n == 2 else None
    rank1 = None
    if n >= 2:
        rank1 = _rank1_joint(joint, values, n) if joint is not None else rank1_independent(view_probs, values)
    d, winner = _decision(n, pref, rank1, view_probs[0])
    return pref, rank1, d, winner


def combine_orders(
    results: Sequence[PromptScores], orders: Sequence[Sequence[int]], calibration: Calibration | None = None
) -> CombinedVerdict:
    """Undo each order, calibrate, average over orders and summarise."""
    calibration = calibration or Calibration()
    values = results[0].values
    views = [_view(r, o, calibration) for r, o in zip(results, orders, strict=True)]
    n = len(views[0].cand_probs)
    probs = tuple(_normalise([sum(v.cand_probs[c][k] for v in views) for k in range(len(values))]) for c in range(n))
    joint = None
    if all(v.joint is not None for v in views):
        joint = {}
        for v in views:
            for key, p in v.joint.items():  # type: ignore[union-attr]
                joint[key] = joint.get(key, 0.0) + p / len(views)
    pref, rank1, decision, winner = _summaries(probs, joint, values)
    outside = 1.0 - sum(v.grammar_mass for v in views) / len(views)
    expected = tuple(sum(p * x for p, x in zip(c, values, strict=True)) for c in probs)
    per_order = [_summaries(v.cand_probs, v.joint, values) for v in views]
    consistent = inconsistency = None
    if len(views) > 1:
        consistent = len({w for *_, w in per_order}) == 1
        ds = [d for _, _, d, _ in per_order]
        inconsistency = max(0.5 * sum(abs(a - b) for a, b in zip(ds[0], d, strict=True)) for d in ds[1:])
    return CombinedVerdict(
        scores=expected,
        distributions=tuple(ScoreDistribution(values, c, max(outside, 0.0)) for c in probs),
        preference=pref,
        rank1_probs=rank1,
        winner=winner,
        ranking=tuple(sorted(range(n), key=lambda i: -expected[i])) if n >= 2 else None,
        confidence=_confidence(decision),
        outside_mass=max(outside, 0.0),
        order_scores=tuple(
            tuple(sum(p * x for p, x in zip(c, values, strict=True)) for c in v.cand_probs) for v in views
        ),
        consistent=consistent,
        inconsistency=inconsistency,
    )
