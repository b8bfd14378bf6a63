"""``judgelm bench`` as a function: a judge over a benchmark, scored like the paper.

Pairwise sets are judged in both answer orders (``swap=True``: the normal order gives agreement,
the swapped order consistency, exactly as the reference's two runs) and, where the set has
references, once more with the references shown, scored against the with-reference truth when the
set has one. Grading sets (MM-Vet) are judged once and reported as MM-Vet scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from judgelm.eval.evaluate import EvalResult, evaluate_labels, jsonable
from judgelm.eval.judging import judge_items, order_pair
from judgelm.eval.labelled import Benchmark
from judgelm.eval.render import PAPER_COLUMNS, pct, render_eval
from judgelm.eval.stats import pearson

if TYPE_CHECKING:  # the judge is only called, never built, here: no torch import
    from judgelm.judge import Judge

__all__ = ["MMVET_CAPABILITIES", "BenchResult", "BenchRow", "GradingResult", "run_benchmark"]

# MM-Vet's capability columns, in the order its leaderboard prints them.
MMVET_CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")


@dataclass(frozen=True)
class BenchRow:
    """One condition of a pairwise benchmark: the judge shown references or not, and the truth
    used (``truth_with_reference``: the with-reference teacher's)."""

    with_reference: bool
    truth_with_reference: bool
    result: EvalResult


@dataclass(frozen=True)
class GradingResult:
    """MM-Vet style scores: the judge's grade of each answer (its score / 10, in [0, 1]; an
    abstain grades 0 and is counted), averaged x100 overall and per capability; with truth
    grades, their mean absolute difference (x100) and Pearson correlation."""

    n: int
    abstained: int
    score: float
    by_capability: Mapping[str, float]
    capability_counts: Mapping[str, int]
    truth_n: int = 0
    mae: float | None = None
    pearson: float | None = None


@dataclass(frozen=True)
class BenchResult:
    benchmark: str
    model: str
    items: int
    rows: tuple[BenchRow, ...] = ()
    grading: GradingResult | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "benchmark": self.benchmark,
            "model": self.model,
            "items": self.items,
        }
        out["rows"] = [
            {
                "with_reference": r.with_reference,
                "truth_with_reference": r.truth_with_reference,
                **r.result.to_dict(),
            }
            for r in self.rows
        ]
        if self.grading is not None:
            out["grading"] = jsonable(asdict(self.grading))
        out["notes"] = list(self.notes)
        return jsonable(out)

    def table(self) -> str:
        """The paper-style Markdown table (spec §6 columns, percent)."""
        if self.grading is not None:
            g = self.grading
            caps = [c for c in MMVET_CAPABILITIES if c in g.by_capability]
            caps += sorted(c for c in g.by_capability if c not in MMVET_CAPABILITIES)
            head = ["model", *caps, "total"]
            row = [self.model, *(f"{g.by_capability[c]:.1f}" for c in caps), f"{g.score:.1f}"]
            return _md([head, row])
        head = ["model", "ref", *(name for _, name in PAPER_COLUMNS), "kappa", "abstained"]
        rows = []
        for r in self.rows:
            m = r.result.reference
            kappa = "n/a" if not math.isfinite(r.result.kappa) else f"{r.result.kappa:.4f}"
            cells = [pct(m[k]) if k in m else "-" for k, _ in PAPER_COLUMNS]
            rows.append(
                [
                    self.model,
                    "yes" if r.with_reference else "no",
                    *cells,
                    kappa,
                    str(r.result.abstained),
                ]
            )
        return _md([head, *rows])

    def render(self, fmt: Literal["table", "json", "markdown"] = "table") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        lines = [f"{self.benchmark}: {self.items} items, judge {self.model}", "", self.table(), ""]
        if self.grading is not None:
            g = self.grading
            lines.append(f"graded {g.n}, abstained {g.abstained} (graded 0)")
            if g.truth_n:
                mae = "n/a" if g.mae is None else f"{g.mae:.2f}"
                r = (
                    "n/a"
                    if g.pearson is None or not math.isfinite(g.pearson)
                    else f"{g.pearson:.4f}"
                )
                lines.append(f"vs truth grades ({g.truth_n}): mean |difference| {mae}, Pearson {r}")
        if fmt == "markdown":
            for r in self.rows:
                title = f"{'with' if r.with_reference else 'without'} reference"
                lines += ["", render_eval(r.result, "markdown", title=title).rstrip()]
        else:
            for r in self.rows:
                res = r.result
                lines.append(
                    f"{'with' if r.with_reference else 'without'} reference: {res.total_num} "
                    f"evaluated, {res.dropped_truth} without truth, {res.abstained} abstained"
                )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _md(rows: list[list[str]]) -> str:
    head, *body = rows
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in body])


def _grading(bench: Benchmark, verdicts: list[Any]) -> GradingResult:
    grades, abstained = [], 0
    for v in verdicts:
        if v.abstained or not v.scores:
            abstained += 1
            grades.append(0.0)
        else:
            grades.append(min(max(v.scores[-1] / 10.0, 0.0), 1.0))
    by_cap: dict[str, list[float]] = {}
    for item, g in zip(bench.items, grades, strict=True):
        for c in item.sample.meta.get("capability", ()):
            by_cap.setdefault(c, []).append(g)
    pairs = [
        (g, i.grade)
        for i, g, v in zip(bench.items, grades, verdicts, strict=True)
        if i.grade is not None and not v.abstained
    ]
    n = len(grades)
    return GradingResult(
        n=n,
        abstained=abstained,
        score=100 * sum(grades) / n if n else math.nan,
        by_capability={c: 100 * sum(v) / len(v) for c, v in by_cap.items()},
        capability_counts={c: len(v) for c, v in by_cap.items()},
        truth_n=len(pairs),
        mae=100 * sum(abs(a - b) for a, b in pairs) / len(pairs) if pairs else None,
        pearson=pearson([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None,
    )


def run_benchmark(
    judge: Judge,
    bench: Benchmark,
    *,
    with_reference: bool | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
    **judge_kwargs: Any,
) -> BenchResult:
    """Judge ``bench`` and score it.

    ``with_reference``: ``None`` runs without references and, where the set has them, with;
    ``False``/``True`` runs only that condition. ``judge_kwargs`` go to `Judge.judge`
    (``official_parser``, ``scoring``, ...)."""
    model = str(getattr(judge, "name", type(judge).__name__))
    if bench.task == "grading":
        verdicts = judge_items(
            judge,
            bench.items,
            with_reference=True,
            swap=False,
            on_progress=on_progress,
            **judge_kwargs,
        )
        return BenchResult(
            bench.name, model, len(bench), grading=_grading(bench, verdicts), notes=bench.notes
        )
    if not any(i.label is not None or i.has_truth_with_reference for i in bench.items):
        raise ValueError(f"benchmark {bench.name!r} has no ground truth to score against")
    conditions = [False, True] if with_reference is None else [with_reference]
    if True in conditions and not bench.has_reference:
        if with_reference:
            raise ValueError(f"benchmark {bench.name!r} has no references")
        conditions = [False]
    rows, notes = [], list(bench.notes)
    for cond in conditions:
        items = (
            [i for i in bench.items if i.sample.reference is not None]
            if cond
            else list(bench.items)
        )
        verdicts = judge_items(
            judge, items, with_reference=cond, swap=True, on_progress=on_progress, **judge_kwargs
        )
        pairs = [order_pair(v) for v in verdicts]
        reasons = [
            None if p[0] is not None else (v.reason_code or "unparseable")
            for p, v in zip(pairs, verdicts, strict=True)
        ]
        truth_ref = cond and any(i.has_truth_with_reference for i in items)
        if cond and not truth_ref:
            notes.append(
                "no with-reference truth given: the with-reference row uses the plain truth"
            )
        result = evaluate_labels(
            [i.truth(with_reference=cond) for i in items],
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            reasons=reasons,
            resamples=resamples,
            level=level,
            seed=seed,
        )
        rows.append(BenchRow(cond, truth_ref, result))
    return BenchResult(bench.name, model, len(bench), rows=tuple(rows), notes=tuple(notes))
