"""One call from aligned judgments to everything ``judgelm eval`` reports.

The reference-compatible numbers (`EvalResult.reference`) treat a judge that abstained, or whose
text could not be read, as having said "tie", because that is what the reference code did and
what the paper's numbers mean. Everything judgelm adds sits beside them, never inside: how many
predictions abstained (and why), the metrics on the records the judge actually answered, Cohen's
kappa, the confusion matrix and bootstrap intervals.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from judgelm.eval.metrics import LABELS, Scores, label_metrics, label_of, truth_label
from judgelm.eval.stats import bootstrap_intervals, cohen_kappa, confusion_matrix

__all__ = ["EvalResult", "evaluate", "evaluate_labels", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` with nan/inf as ``None`` (strict JSON has no NaN) and tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class EvalResult:
    """Agreement of a judge with a ground truth.

    - ``reference``: the reference ``calculate_metrics`` dict (fractions, reference key names).
    - ``records``: aligned records; ``dropped_truth`` of them had no usable ground truth and were
      dropped as the reference does (``reference["total_num"]`` = records - dropped_truth).
    - ``abstained``: kept records whose (normal-order) prediction is missing: the judge abstained
      or its text was unreadable. They are ties in ``reference``; ``abstain_reasons`` counts why.
      ``swapped_failures`` counts the same for the swapped order.
    - ``answered``: the reference metrics on the ``answered_num`` records with a readable verdict
      in every order used.
    - ``kappa``, ``confusion`` (rows truth, columns judge, in `LABELS` order 1, 0, -1) and
      ``intervals`` (percentile bootstrap, ``level``, ``resamples``) on the reference records.
    """

    reference: Mapping[str, float]
    records: int
    dropped_truth: int
    abstained: int
    abstain_reasons: Mapping[str, int]
    answered: Mapping[str, float]
    answered_num: int
    kappa: float
    confusion: tuple[tuple[int, ...], ...]
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    swapped_failures: int | None = None
    level: float = 0.95
    resamples: int = 0

    @property
    def total_num(self) -> int:
        return self.records - self.dropped_truth

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``reference`` keeps the reference keys and fractions; the rest is extra."""
        return jsonable(
            {
                "reference": dict(self.reference),
                "records": self.records,
                "dropped_truth": self.dropped_truth,
                "abstained": self.abstained,
                "abstain_reasons": dict(self.abstain_reasons),
                "swapped_failures": self.swapped_failures,
                "answered": dict(self.answered),
                "answered_num": self.answered_num,
                "kappa": self.kappa,
                "confusion": {
                    "labels": list(LABELS),
                    "rows": "truth",
                    "columns": "judge",
                    "counts": self.confusion,
                },
                "intervals": {k: list(v) for k, v in self.intervals.items()},
                "level": self.level,
                "resamples": self.resamples,
            }
        )


def evaluate_labels(
    truth: Sequence[int | None],
    pred: Sequence[Scores],
    swapped: Sequence[Scores] | None = None,
    *,
    reasons: Sequence[str | None] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EvalResult:
    """Evaluate against ground-truth *labels* (1, 0, -1; ``None`` = no usable truth, dropped).

    ``pred`` is per-record scores in the original answer order, ``swapped`` the swapped-order
    scores in slot order; ``None`` = no readable verdict (``reasons[i]`` says why, default
    ``"unparseable"``)."""
    n = len(truth)
    if (
        len(pred) != n
        or (swapped is not None and len(swapped) != n)
        or (reasons is not None and len(reasons) != n)
    ):
        raise ValueError("truth, pred, swapped and reasons must be aligned record by record")
    keep = [i for i in range(n) if truth[i] is not None]
    t: list[int] = [truth[i] for i in keep]  # type: ignore[misc]
    p = [label_of(pred[i]) for i in keep]
    s = None if swapped is None else [label_of(swapped[i]) for i in keep]
    reference = label_metrics(t, p, s)
    why: Counter[str] = Counter()
    for i in keep:
        if pred[i] is None:
            why[(reasons[i] if reasons is not None else None) or "unparseable"] += 1
    ok = [
        k
        for k, i in enumerate(keep)
        if pred[i] is not None and (swapped is None or swapped[i] is not None)
    ]
    answered = label_metrics(
        [t[k] for k in ok], [p[k] for k in ok], None if s is None else [s[k] for k in ok]
    )
    return EvalResult(
        reference=reference,
        records=n,
        dropped_truth=n - len(keep),
        abstained=sum(why.values()),
        abstain_reasons=dict(sorted(why.items())),
        answered=answered,
        answered_num=len(ok),
        kappa=cohen_kappa(t, p),
        confusion=confusion_matrix(t, p),
        intervals=bootstrap_intervals(t, p, s, resamples=resamples, level=level, seed=seed)
        if resamples
        else {},
        swapped_failures=None if swapped is None else sum(1 for i in keep if swapped[i] is None),
        level=level,
        resamples=resamples,
    )


def evaluate(
    truth: Sequence[Scores],
    pred: Sequence[Scores],
    swapped: Sequence[Scores] | None = None,
    *,
    reasons: Sequence[str | None] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EvalResult:
    """Evaluate against ground-truth *score pairs* (teacher judgments), the reference's input.

    Same arguments as `reference_metrics`, plus the abstain reasons and bootstrap settings;
    ``result.reference == reference_metrics(truth, pred, swapped)``."""
    return evaluate_labels(
        [truth_label(x) for x in truth],
        pred,
        swapped,
        reasons=reasons,
        resamples=resamples,
        level=level,
        seed=seed,
    )
