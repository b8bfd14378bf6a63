"""The reference ``calculate_metrics`` of JudgeLM, re-derived exactly (spec §3).

What the reference does, and so what these functions do:

- A judgment becomes a label with ``s1 - s2 > 0 -> 1``, ``s2 - s1 > 0 -> -1``, else ``0``. Both
  comparisons are strict, so a failed parse (the sentinel ``[-1, -1]``), equal scores and ``nan``
  are all ties.
- Ground truth is filtered *before* labelling: a record whose truth has ``-1`` in either slot is
  dropped from all three lists. The reference cannot tell its failure sentinel from a real ``-1``
  score, so a truth of ``"-1 5"`` is dropped too; we keep that quirk (``None`` is our failure).
- Prediction failures stay and count as ties, in the normal and the swapped lists alike.
- Precision / recall / F1 are scikit-learn's macro averages over the labels present in truth *or*
  prediction (``unique_labels``), a class with no predicted (or no true) items scoring 0
  (``zero_division`` -> 0).
- Consistency: flip the sign of each normal-order label; the share equal to the swapped-order
  label (the swapped judgment read in the slot order of its own prompt). Two failures are
  "consistent". ``perfer_before_rate`` counts ``flipped - swapped < 0`` (slot 1 favoured),
  ``perfer_after_rate`` ``> 0``. Key names keep the reference spelling ("perfer").

Where the reference crashes (no record left after filtering: sklearn returns ``nan`` and the
consistency loop divides by zero) these functions return ``nan`` rates and ``total_num == 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "LABELS",
    "REFERENCE_KEYS",
    "label_metrics",
    "label_of",
    "macro_prf",
    "reference_metrics",
    "truth_label",
]

# Label order used by every table and matrix in judgelm.eval: answer 1 better, tie, answer 2 better.
LABELS: tuple[int, int, int] = (1, 0, -1)

REFERENCE_KEYS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "consistency",
    "perfer_before_rate",
    "perfer_after_rate",
    "delta_bias",
    "total_bias",
    "total_num",
)

Scores = Sequence[float] | None


def _pair(scores: Sequence[float], what: str) -> tuple[float, float]:
    if len(scores) != 2:
        raise ValueError(f"{what} must be a pair of scores, got {len(scores)}: {tuple(scores)!r}")
    return float(scores[0]), float(scores[1])


def label_of(scores: Scores) -> int:
    """The reference win label of a score pair: 1 if s1 > s2, -1 if s2 > s1, else 0.

    ``None`` (a failed parse) is a tie, as the reference's ``[-1, -1]`` sentinel is; so is ``nan``.

    >>> label_of((8, 7.5)), label_of((7.5, 8)), label_of((7, 7.0)), label_of(None)
    (1, -1, 0, 0)
    """
    if scores is None:
        return 0
    s1, s2 = _pair(scores, "a prediction")
    if s1 - s2 > 0:
        return 1
    if s2 - s1 > 0:
        return -1
    return 0


def truth_label(scores: Scores) -> int | None:
    """The label of a ground-truth pair, or ``None`` when the reference would drop the record:
    a failed parse, or ``-1`` in either slot (the reference filter is ``s1 == -1 or s2 == -1``)."""
    if scores is None:
        return None
    s1, s2 = _pair(scores, "a ground truth")
    if s1 == -1 or s2 == -1:
        return None
    return label_of((s1, s2))


def macro_prf(truth: Sequence[int], pred: Sequence[int]) -> tuple[float, float, float]:
    """scikit-learn's macro precision, recall and F1 over the labels present in either list,
    with ``zero_division`` -> 0 (``nan`` for empty input, like sklearn)."""
    if len(truth) != len(pred):
        raise ValueError(f"truth and prediction differ in length: {len(truth)} vs {len(pred)}")
    labels = sorted(set(truth) | set(pred))
    if not labels:
        return math.nan, math.nan, math.nan
    ps, rs, fs = [], [], []
    for c in labels:
        tp = sum(1 for t, p in zip(truth, pred, strict=True) if t == c and p == c)
        n_pred = sum(1 for p in pred if p == c)
        n_true = sum(1 for t in truth if t == c)
        ps.append(tp / n_pred if n_pred else 0.0)
        rs.append(tp / n_true if n_true else 0.0)
        # sklearn's F = 2tp / (2tp + fp + fn) = 2tp / (n_pred + n_true): never 0/0 here.
        fs.append(2 * tp / (n_pred + n_true))
    k = len(labels)
    return sum(ps) / k, sum(rs) / k, sum(fs) / k


def label_metrics(
    truth: Sequence[int | None],
    pred: Sequence[int],
    swapped: Sequence[int] | None = None,
) -> dict[str, float]:
    """The reference metrics from labels. ``truth[i] is None`` drops record i from all lists (a
    ground-truth failure); ``pred``/``swapped`` are labels with failures already made ties, and
    ``swapped`` is in the slot order of the swapped prompt."""
    n = len(truth)
    if len(pred) != n or (swapped is not None and len(swapped) != n):
        lengths = f"truth {n}, pred {len(pred)}" + (
            "" if swapped is None else f", swapped {len(swapped)}"
        )
        raise ValueError(f"lists must be aligned record by record ({lengths})")
    keep = [i for i in range(n) if truth[i] is not None]
    t = [truth[i] for i in keep]
    p = [pred[i] for i in keep]
    total = len(keep)
    out: dict[str, float] = {}
    if total:
        out["accuracy"] = sum(1 for a, b in zip(t, p, strict=True) if a == b) / total
    else:
        out["accuracy"] = math.nan
    out["precision"], out["recall"], out["f1"] = macro_prf(t, p)  # type: ignore[arg-type]
    if swapped is None:
        return out
    s = [swapped[i] for i in keep]
    same = before = after = 0
    for a, b in zip(p, s, strict=True):
        flipped = -a
        if flipped == b:
            same += 1
        elif flipped - b > 0:
            after += 1
        else:
            before += 1
    rate = (lambda k: k / total) if total else (lambda k: math.nan)
    out["consistency"] = rate(same)
    out["perfer_before_rate"] = rate(before)
    out["perfer_after_rate"] = rate(after)
    out["delta_bias"] = rate(abs(before - after))
    out["total_bias"] = rate(before + after)
    out["total_num"] = total
    return out


def reference_metrics(
    truth: Sequence[Scores],
    pred: Sequence[Scores],
    swapped: Sequence[Scores] | None = None,
) -> dict[str, float]:
    """The reference ``calculate_metrics`` on aligned per-record score pairs.

    ``truth`` and ``pred`` are in the original answer order; ``swapped`` holds what the judge wrote
    when shown the answers swapped, in that prompt's slot order. ``None`` is a parse failure.
    Returns fractions under the reference keys (the consistency keys only with ``swapped``).

    >>> truth, pred = [(8, 7), (6, 9), (5, 5)], [(9, 2), (7, 7), None]
    >>> m = reference_metrics(truth, pred, [(2, 9), (3, 8), (5, 5)])
    >>> m["accuracy"], m["consistency"]
    (0.6666666666666666, 0.6666666666666666)
    """
    return label_metrics(
        [truth_label(x) for x in truth],
        [label_of(x) for x in pred],
        None if swapped is None else [label_of(x) for x in swapped],
    )
