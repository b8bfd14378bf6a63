"""`run_audits`: every bias audit of a judge on a labelled set, with as few judge calls as possible.

Judge calls (each one batched call over the whole set):

1. all pairwise items, references hidden, both orders — position, length, consistency (run 1),
   reliability, the no-reference side of knowledge and format, and the headline metrics;
2. the items that have a reference, shown it, both orders — knowledge and format (skipped when no
   item has a reference);
3. ``seeds - 1`` more runs like 1, samples in a shuffled order — self-consistency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from judgelm.eval.audits.consistency import ConsistencyAudit, consistency_audit
from judgelm.eval.audits.length import LengthAudit, length_audit
from judgelm.eval.audits.position import PositionAudit, position_audit
from judgelm.eval.audits.reference import (
    FormatAudit,
    KnowledgeAudit,
    TrainedWith,
    format_audit,
    knowledge_audit,
)
from judgelm.eval.audits.reliability import Reliability, reliability_audit
from judgelm.eval.evaluate import EvalResult, evaluate_labels, jsonable
from judgelm.eval.judging import judge_items, order_pair
from judgelm.eval.labelled import Benchmark, Labelled

if TYPE_CHECKING:  # the judge is only called, never built, here: no torch import
    from judgelm.judge import Judge

__all__ = ["AUDITS", "AuditReport", "run_audits"]

AUDITS: tuple[str, ...] = (
    "position",
    "knowledge",
    "format",
    "length",
    "consistency",
    "reliability",
)


@dataclass(frozen=True)
class AuditReport:
    """Everything `run_audits` found. An audit that was not asked for, or could not run on this
    set (no references, ...), is ``None`` and ``notes`` says why."""

    name: str
    model: str
    items: int
    pairwise: int
    labelled: int
    metrics: EvalResult | None = None
    position: PositionAudit | None = None
    knowledge: KnowledgeAudit | None = None
    format: FormatAudit | None = None
    length: LengthAudit | None = None
    consistency: ConsistencyAudit | None = None
    reliability: Reliability | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "items": self.items,
            "pairwise": self.pairwise,
            "labelled": self.labelled,
            "metrics": None if self.metrics is None else self.metrics.to_dict(),
        }
        for key in AUDITS:
            value = getattr(self, key)
            out[key] = None if value is None else asdict(value)
        out["notes"] = list(self.notes)
        return jsonable(out)


def run_audits(
    judge: Judge,
    data: Benchmark | Sequence[Labelled],
    *,
    audits: Sequence[str] = AUDITS,
    seeds: int = 2,
    trained_with: TrainedWith | None = None,
    resamples: int = 1000,
    name: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    **judge_kwargs: Any,
) -> AuditReport:
    """Run the bias ``audits`` (names from `AUDITS`) of ``judge`` on labelled pairwise items.

    ``seeds``: runs for self-consistency (>= 1; each judges every item in both orders).
    ``trained_with``: the format the judge was trained in (JudgeLM's recipe trains on both), so
    the format audit can name the mismatched one. ``judge_kwargs`` go to `Judge.judge`."""
    unknown = set(audits) - set(AUDITS)
    if unknown:
        raise ValueError(f"unknown audits {sorted(unknown)}; known: {', '.join(AUDITS)}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    items_all = list(data.items if isinstance(data, Benchmark) else data)
    name = name or (data.name if isinstance(data, Benchmark) else "labelled set")
    notes: list[str] = list(data.notes) if isinstance(data, Benchmark) else []
    items = [i for i in items_all if i.sample.n_candidates == 2]
    if len(items) < len(items_all):
        notes.append(f"{len(items_all) - len(items)} items are not pairs: audits cover pairs only")
    labelled = sum(1 for i in items if i.label is not None)
    report: dict[str, Any] = {}
    model = str(getattr(judge, "name", type(judge).__name__))
    if not items:
        notes.append("no pairwise items: nothing to audit")
        return AuditReport(name, model, len(items_all), 0, 0, notes=tuple(notes))

    def run(subset: list[Labelled], with_reference: bool, shuffle: int | None = None) -> list[Any]:
        return judge_items(
            judge,
            subset,
            with_reference=with_reference,
            swap=True,
            shuffle_seed=shuffle,
            on_progress=on_progress,
            **judge_kwargs,
        )

    base = run(items, False)
    if labelled:
        pairs = [order_pair(v) for v in base]
        report["metrics"] = evaluate_labels(
            [i.label for i in items],
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            reasons=[
                None if p[0] is not None else (v.reason_code or "unparseable")
                for p, v in zip(pairs, base, strict=True)
            ],
            resamples=resamples,
        )
    else:
        notes.append("no ground truth: agreement numbers are left out")
    if "position" in audits:
        report["position"] = position_audit(items, base)
    if "length" in audits:
        report["length"] = length_audit(items, base)
    if "reliability" in audits:
        report["reliability"] = reliability_audit(items, base)
    if {"knowledge", "format"} & set(audits):
        ref_items = [i for i in items if i.sample.reference is not None]
        if not ref_items:
            notes.append("no item has a reference: knowledge and format audits skipped")
        else:
            with_ref = run(ref_items, True)
            plain = dict(zip((id(i) for i in items), base, strict=True))
            if "knowledge" in audits:
                report["knowledge"] = knowledge_audit(
                    ref_items, [plain[id(i)] for i in ref_items], with_ref
                )
            if "format" in audits:
                report["format"] = format_audit(
                    items, base, ref_items, with_ref, trained_with=trained_with
                )
                if trained_with is None:
                    notes.append(
                        "training format unknown (pass trained_with): format gap not computed"
                    )
    if "consistency" in audits:
        runs = [base] + [run(items, False, shuffle=s) for s in range(1, seeds)]
        report["consistency"] = consistency_audit(items, runs)
    return AuditReport(
        name, model, len(items_all), len(items), labelled, notes=tuple(notes), **report
    )
