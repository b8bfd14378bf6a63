"""The two reference biases of the JudgeLM paper, measured from a run without and a run with the
references shown (both ``swap=True``, so each condition also has its consistency).

- Knowledge bias: a judge that lacks the knowledge a question needs judges it worse; a reference
  answer should supply it. Both runs are scored against the *same* truth (the with-reference
  teacher's when the set has one: the best truth available) and we count the verdicts the
  reference fixed and broke.
- Format bias: a judge trained with references but used without them, or the reverse, does worse
  than in the format it was trained in. Each run is scored against the truth of its own format;
  knowing the training format (``trained_with``) names the mismatched one and the gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from judgelm.eval.judging import order_pair
from judgelm.eval.labelled import Labelled
from judgelm.eval.metrics import label_metrics, label_of
from judgelm.types import Verdict

__all__ = ["FormatAudit", "KnowledgeAudit", "TrainedWith", "format_audit", "knowledge_audit"]

TrainedWith = Literal["reference", "no_reference", "both"]


@dataclass(frozen=True)
class KnowledgeAudit:
    """On ``n`` items with a reference and a truth: the reference metrics of the run without and
    with references against the same truth, the change in agreement, and how many normal-order
    verdicts the reference turned from wrong to right (``fixed``), right to wrong (``broken``),
    or changed at all (``changed``)."""

    n: int
    without_reference: Mapping[str, float]
    with_reference: Mapping[str, float]
    delta_agreement: float
    fixed: int
    broken: int
    changed: int


@dataclass(frozen=True)
class FormatAudit:
    """Each format scored against its own truth. ``mismatched``: the inference format the judge
    was not trained in (``None`` when trained in both or unknown); ``gap``: agreement in the
    trained format minus agreement in the other. ``score_shift``: mean change of the (averaged)
    score of each answer when the reference is shown, on the ``shift_n`` items read both ways."""

    n_without: int
    n_with: int
    trained_with: TrainedWith | None
    without_reference: Mapping[str, float]
    with_reference: Mapping[str, float]
    mismatched: Literal["with_reference", "without_reference"] | None
    gap: float | None
    score_shift: float | None
    shift_n: int


def _split(verdicts: Sequence[Verdict]) -> tuple[list[int], list[int]]:
    pairs = [order_pair(v) for v in verdicts]
    return [label_of(p[0]) for p in pairs], [label_of(p[1]) for p in pairs]


def knowledge_audit(
    items: Sequence[Labelled], without: Sequence[Verdict], with_: Sequence[Verdict]
) -> KnowledgeAudit:
    """``items``: the items that have a reference; ``without``/``with_``: their ``swap=True``
    verdicts with the reference hidden / shown."""
    if not len(items) == len(without) == len(with_):
        raise ValueError("one verdict per item in each run")
    truth = [i.truth(with_reference=True) for i in items]
    n0, s0 = _split(without)
    n1, s1 = _split(with_)
    m0 = label_metrics(truth, n0, s0)
    m1 = label_metrics(truth, n1, s1)
    fixed = broken = changed = 0
    for t, a, b in zip(truth, n0, n1, strict=True):
        if t is None:
            continue
        changed += a != b
        fixed += a != t and b == t
        broken += a == t and b != t
    return KnowledgeAudit(
        n=sum(1 for t in truth if t is not None),
        without_reference=m0,
        with_reference=m1,
        delta_agreement=m1["accuracy"] - m0["accuracy"],
        fixed=fixed,
        broken=broken,
        changed=changed,
    )


def format_audit(
    items: Sequence[Labelled],
    without: Sequence[Verdict],
    ref_items: Sequence[Labelled],
    with_: Sequence[Verdict],
    *,
    trained_with: TrainedWith | None = None,
) -> FormatAudit:
    """``items``/``without``: every pairwise item judged without references; ``ref_items``/
    ``with_``: the items with a reference judged with it."""
    if len(items) != len(without) or len(ref_items) != len(with_):
        raise ValueError("one verdict per item in each run")
    if trained_with not in (None, "reference", "no_reference", "both"):
        raise ValueError(
            f"trained_with must be reference, no_reference or both, got {trained_with!r}"
        )
    m0 = label_metrics([i.truth(False) for i in items], *_split(without))
    m1 = label_metrics([i.truth(True) for i in ref_items], *_split(with_))
    mismatched = {"reference": "without_reference", "no_reference": "with_reference"}.get(
        trained_with or ""
    )
    gap = None
    if mismatched == "with_reference":
        gap = m0["accuracy"] - m1["accuracy"]
    elif mismatched == "without_reference":
        gap = m1["accuracy"] - m0["accuracy"]
    plain = {i.id: v for i, v in zip(items, without, strict=True) if i.id is not None}
    shifts = []
    for i, v in zip(ref_items, with_, strict=True):
        u = plain.get(i.id)
        if u is None or u.scores is None or v.scores is None or u.abstained or v.abstained:
            continue
        shifts.append(sum(b - a for a, b in zip(u.scores, v.scores, strict=True)) / len(v.scores))
    return FormatAudit(
        n_without=sum(1 for i in items if i.truth(False) is not None),
        n_with=sum(1 for i in ref_items if i.truth(True) is not None),
        trained_with=trained_with,
        without_reference=m0,
        with_reference=m1,
        mismatched=mismatched,  # type: ignore[arg-type]
        gap=gap,
        score_shift=sum(shifts) / len(shifts) if shifts else None,
        shift_n=len(shifts),
    )
