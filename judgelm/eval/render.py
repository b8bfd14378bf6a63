"""Evaluation results as people read them: a terminal table, Markdown, or JSON.

Tables show percentages with two decimals, like the paper; JSON keeps the reference's fractions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Literal

from judgelm.eval.evaluate import EvalResult

__all__ = ["PAPER_COLUMNS", "paper_row", "pct", "render_eval"]

OutputFormat = Literal["table", "json", "markdown"]

# (reference key, paper column name) for the paper-style table row (spec §6).
PAPER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("accuracy", "agreement"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("consistency", "consistency"),
)

_ROWS: tuple[tuple[str, str], ...] = (
    *PAPER_COLUMNS,
    ("perfer_before_rate", "prefers slot 1 (perfer_before_rate)"),
    ("perfer_after_rate", "prefers slot 2 (perfer_after_rate)"),
    ("delta_bias", "delta_bias"),
    ("total_bias", "total_bias"),
)

_LABEL_NAMES = ("answer 1", "tie", "answer 2")


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals; ``n/a`` when undefined."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def paper_row(metrics: Mapping[str, float], *cells: str) -> list[str]:
    """Leading ``cells`` then the paper's five columns in percent (``-`` without consistency)."""
    return [*cells, *(pct(metrics[k]) if k in metrics else "-" for k, _ in PAPER_COLUMNS)]


def _metric_rows(r: EvalResult) -> list[tuple[str, str, str]]:
    rows = []
    for key, name in _ROWS:
        if key not in r.reference:
            continue
        ci = r.intervals.get(key)
        rows.append(
            (name, pct(r.reference[key]), "" if ci is None else f"[{pct(ci[0])}, {pct(ci[1])}]")
        )
    ci = r.intervals.get("kappa")
    kappa = "n/a" if not math.isfinite(r.kappa) else f"{r.kappa:.4f}"
    rows.append(
        (
            "Cohen's kappa",
            kappa,
            "" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]".replace("nan", "n/a"),
        )
    )
    return rows


def _summary(r: EvalResult) -> list[str]:
    lines = [
        f"records: {r.records} paired, {r.dropped_truth} dropped (ground truth unreadable), "
        f"{r.total_num} evaluated (total_num)",
    ]
    reasons = ", ".join(f"{k}: {v}" for k, v in r.abstain_reasons.items())
    lines.append(
        f"abstained / unreadable predictions: {r.abstained}"
        + (f" ({reasons})" if reasons else "")
        + " — counted as ties in the reference-compatible numbers"
    )
    if r.swapped_failures is not None:
        lines.append(
            f"unreadable swapped-order predictions: {r.swapped_failures} "
            "(ties, as in the reference)"
        )
    answered = ", ".join(
        f"{name} {pct(r.answered[k])}" for k, name in PAPER_COLUMNS if k in r.answered
    )
    lines.append(f"on the {r.answered_num} answered records: {answered}")
    return lines


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    out = []
    for row in (header, ["-" * w for w in widths], *rows):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(out)


def _markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _confusion_rows(r: EvalResult) -> list[list[str]]:
    return [
        [f"truth: {name}", *(str(c) for c in row)]
        for name, row in zip(_LABEL_NAMES, r.confusion, strict=True)
    ]


def render_eval(r: EvalResult, fmt: OutputFormat = "table", *, title: str = "judgelm eval") -> str:
    """``r`` as a terminal table, Markdown, or JSON (fractions under the reference keys)."""
    if fmt == "json":
        return json.dumps(r.to_dict(), indent=2)
    ci_name = f"{round(100 * r.level)}% CI" if r.resamples else ""
    header = ["metric", "value (%)", ci_name]
    conf_header = ["", *(f"judge: {n}" for n in _LABEL_NAMES)]
    if fmt == "markdown":
        parts = [f"## {title}", "", _markdown_table(_metric_rows(r), header), ""]
        parts += [f"- {line}" for line in _summary(r)]
        parts += [
            "",
            "Confusion matrix (rows: ground truth, columns: judge):",
            "",
            _markdown_table(_confusion_rows(r), conf_header),
        ]
        if r.resamples:
            parts += ["", f"Intervals: percentile bootstrap over records, {r.resamples} resamples."]
        return "\n".join(parts) + "\n"
    if fmt != "table":
        raise ValueError(f"format must be table, json or markdown, got {fmt!r}")
    parts = [
        title,
        "",
        _table(_metric_rows(r), header),
        "",
        *_summary(r),
        "",
        "confusion (rows: truth, columns: judge)",
    ]
    parts.append(_table(_confusion_rows(r), conf_header))
    return "\n".join(parts) + "\n"
