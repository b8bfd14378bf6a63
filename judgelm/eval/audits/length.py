"""Length (verbosity) bias: does the judge's score difference follow the answers' length
difference, and more than the truth does?

Length is counted in whitespace-separated words (model-independent; for conversations, the words of
all assistant turns). The judge's difference is that of its averaged scores (both orders, so the
position pull cancels out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from judgelm.eval.labelled import Labelled
from judgelm.eval.stats import pearson, spearman
from judgelm.types import Sample, Verdict

__all__ = ["LengthAudit", "answer_lengths", "length_audit"]


@dataclass(frozen=True)
class LengthAudit:
    """On ``n`` pairwise items with readable scores:

    - ``pearson`` / ``spearman``: correlation of len(answer 1) - len(answer 2) with the judge's
      s1 - s2; ``truth_pearson`` the same for the teacher's scores (when the truth has scores).
    - ``longer_win_rate``: among items with unequal lengths where the judge picked a winner, the
      share where it picked the longer answer; ``truth_longer_win_rate`` the same for the truth.
      A judge well above its truth prefers verbosity.
    - ``bins``: (mean length difference, mean score difference, count) over equal-count bins of
      the length difference, for the plot.
    """

    n: int
    unit: str
    pearson: float
    spearman: float
    truth_pearson: float | None
    longer_win_rate: float | None
    longer_decided: int
    truth_longer_win_rate: float | None
    truth_longer_decided: int
    bins: tuple[tuple[float, float, int], ...]


def answer_lengths(sample: Sample) -> tuple[int, ...]:
    """Words per candidate: answers, or the assistant turns of each conversation."""
    if sample.conversations:
        return tuple(
            sum(len(t.content.split()) for t in conv if t.role == "assistant")
            for conv in sample.conversations
        )
    return tuple(len(a.split()) for a in sample.answers)


def _longer_rate(pairs: list[tuple[int, int]]) -> tuple[float | None, int]:
    """pairs: (length difference, label): share of decided, unequal-length items the longer won."""
    decided = [(d, lab) for d, lab in pairs if d != 0 and lab != 0]
    if not decided:
        return None, 0
    return sum(1 for d, lab in decided if (d > 0) == (lab > 0)) / len(decided), len(decided)


def _bins(x: list[float], y: list[float], n_bins: int) -> tuple[tuple[float, float, int], ...]:
    order = sorted(range(len(x)), key=lambda i: x[i])
    k = min(n_bins, len(order))
    out = []
    for b in range(k):
        part = order[b * len(order) // k : (b + 1) * len(order) // k]
        if part:
            out.append(
                (
                    sum(x[i] for i in part) / len(part),
                    sum(y[i] for i in part) / len(part),
                    len(part),
                )
            )
    return tuple(out)


def length_audit(
    items: Sequence[Labelled], verdicts: Sequence[Verdict], *, n_bins: int = 10
) -> LengthAudit:
    """Length audit of pairwise ``items`` from their (preferably ``swap=True``) ``verdicts``."""
    if len(items) != len(verdicts):
        raise ValueError("one verdict per item")
    x: list[float] = []
    y: list[float] = []
    truth_xy: list[tuple[float, float]] = []
    judge_lab: list[tuple[int, int]] = []
    truth_lab: list[tuple[int, int]] = []
    for item, v in zip(items, verdicts, strict=True):
        lengths = answer_lengths(item.sample)
        if len(lengths) != 2:
            continue
        d = lengths[0] - lengths[1]
        if item.label is not None:
            truth_lab.append((d, item.label))
            if item.scores is not None:
                truth_xy.append((d, item.scores[0] - item.scores[1]))
        if v.abstained or v.scores is None or len(v.scores) != 2:
            continue
        x.append(d)
        y.append(v.scores[0] - v.scores[1])
        judge_lab.append((d, v.label or 0))
    rate, decided = _longer_rate(judge_lab)
    t_rate, t_decided = _longer_rate(truth_lab)
    return LengthAudit(
        n=len(x),
        unit="words",
        pearson=pearson(x, y),
        spearman=spearman(x, y),
        truth_pearson=pearson([a for a, _ in truth_xy], [b for _, b in truth_xy])
        if truth_xy
        else None,
        longer_win_rate=rate,
        longer_decided=decided,
        truth_longer_win_rate=t_rate,
        truth_longer_decided=t_decided,
        bins=_bins(x, y, n_bins),
    )
