"""The audit as files a person opens: ``audit.md`` with its PNGs beside it, and ``audit.json``.

Each section says what was measured, the numbers, and one plain sentence on what they mean.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from judgelm.eval.audits.runner import AuditReport
from judgelm.eval.render import pct, render_eval

__all__ = ["render_markdown", "write_audit"]


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), ""]


def _image(plots: dict[str, Path], key: str, alt: str) -> list[str]:
    return [f"![{alt}]({plots[key].name})", ""] if key in plots else []


def _position(r: AuditReport) -> list[str]:
    p = r.position
    if p is None:
        return []
    out = ["## Position bias", "", f"Every pair judged in both orders ({p.n} pairs).", ""]
    rows = [
        ("consistency (same verdict in both orders)", f"{pct(p.consistency)}%"),
        ("flip rate", f"{pct(p.flip_rate)}%"),
        ("flips favouring slot 1 (perfer_before_rate)", f"{pct(p.prefers_first)}%"),
        ("flips favouring slot 2 (perfer_after_rate)", f"{pct(p.prefers_second)}%"),
        (f"score(slot 1) - score(slot 2), both orders read ({p.both_read})", _num(p.slot_gap)),
    ]
    if p.labelled:
        rows += [
            ("agreement, normal order", f"{pct(p.agreement_normal)}%"),
            ("agreement, swapped order", f"{pct(p.agreement_swapped)}%"),
            ("agreement, averaged over orders", f"{pct(p.agreement_averaged)}%"),
        ]
    out += _table(rows)
    if p.favoured_slot == "none":
        out.append("No slot is favoured: order flips, if any, are balanced.")
    else:
        out.append(
            f"When the order changes the verdict, it favours the **{p.favoured_slot}** slot "
            f"({pct(abs(p.prefers_first - p.prefers_second))} points more often). "
            "Judge with `swap=True` to average it out."
        )
    return [*out, ""]


def _knowledge(r: AuditReport) -> list[str]:
    k = r.knowledge
    if k is None:
        return []
    a0, a1 = k.without_reference["accuracy"], k.with_reference["accuracy"]
    rows = [
        ("agreement without reference", f"{pct(a0)}%"),
        ("agreement with reference", f"{pct(a1)}%"),
        ("change (points)", pct(k.delta_agreement)),
        (
            "consistency without / with",
            f"{pct(k.without_reference['consistency'])}% / {pct(k.with_reference['consistency'])}%",
        ),
        ("verdicts fixed by the reference", str(k.fixed)),
        ("verdicts broken by the reference", str(k.broken)),
        ("verdicts changed", str(k.changed)),
    ]
    verdict = (
        "The reference helps: the judge lacks knowledge the reference supplies."
        if k.delta_agreement > 0
        else "The reference does not help here."
    )
    return [
        "## Knowledge bias",
        "",
        f"{k.n} pairs with a reference, both runs scored against the same "
        "truth (the with-reference truth where given).",
        "",
        *_table(rows),
        verdict,
        "",
    ]


def _format(r: AuditReport) -> list[str]:
    f = r.format
    if f is None:
        return []
    rows = [
        (
            f"agreement, no reference in the prompt ({f.n_without})",
            f"{pct(f.without_reference['accuracy'])}%",
        ),
        (
            f"agreement, reference in the prompt ({f.n_with})",
            f"{pct(f.with_reference['accuracy'])}%",
        ),
        ("trained with", f.trained_with or "unknown"),
        ("mismatched inference format", f.mismatched or "none"),
        ("gap (trained format minus mismatched, points)", "n/a" if f.gap is None else pct(f.gap)),
        (f"mean score change when the reference is shown ({f.shift_n} pairs)", _num(f.score_shift)),
    ]
    if f.gap is None:
        line = "No mismatched format to compare (trained on both, or training format unknown)."
    elif f.gap > 0:
        line = "The judge does worse in the format it was not trained in: format bias."
    else:
        line = "No format bias: the mismatched format does as well."
    return [
        "## Format bias",
        "",
        "Each prompt format scored against the truth of the same format.",
        "",
        *_table(rows),
        line,
        "",
    ]


def _length(r: AuditReport, plots: dict[str, Path]) -> list[str]:
    ln = r.length
    if ln is None:
        return []
    rows = [
        ("pairs with readable scores", str(ln.n)),
        ("Pearson(length diff, score diff)", _num(ln.pearson)),
        ("Spearman(length diff, score diff)", _num(ln.spearman)),
        ("Pearson for the truth's scores", _num(ln.truth_pearson)),
        (
            f"judge picks the longer answer ({ln.longer_decided} decided)",
            f"{pct(ln.longer_win_rate)}%",
        ),
        (
            f"truth picks the longer answer ({ln.truth_longer_decided} decided)",
            f"{pct(ln.truth_longer_win_rate)}%",
        ),
    ]
    line = ""
    if ln.longer_win_rate is not None and ln.truth_longer_win_rate is not None:
        d = ln.longer_win_rate - ln.truth_longer_win_rate
        line = (
            "The judge picks the longer answer as often as the truth does."
            if d == 0
            else f"The judge picks the longer answer {pct(abs(d))} points "
            f"{'more' if d > 0 else 'less'} often than the truth does."
        )
    return [
        "## Length bias",
        "",
        f"Length in {ln.unit}.",
        "",
        *_table(rows),
        line,
        "",
        *_image(plots, "length", "score difference vs length difference"),
    ]


def _consistency(r: AuditReport) -> list[str]:
    c = r.consistency
    if c is None:
        return []
    rows = [
        ("runs x orders per pair", f"{c.runs} x {c.judgments // max(c.runs, 1)}"),
        ("unanimous pairs", f"{pct(c.unanimous)}%"),
        ("runs agree (averaged verdicts)", f"{pct(c.run_agreement)}%"),
        ("mean pairwise agreement of judgments", f"{pct(c.pairwise_agreement)}%"),
        ("mean score std across judgments", _num(c.score_std)),
        ("majority verdict agreement with truth", f"{pct(c.majority_agreement)}%"),
    ]
    return [
        "## Self-consistency",
        "",
        "Runs after the first send the samples in a shuffled order "
        "(different batches and padding).",
        "",
        *_table(rows),
    ]


def _reliability(r: AuditReport, plots: dict[str, Path]) -> list[str]:
    rel = r.reliability
    if rel is None:
        return []
    if not rel.available:
        return ["## Calibration (reliability diagram)", "", f"Not drawn: {rel.reason}.", ""]
    rows = [
        ("labelled pairs with distributions", str(rel.n)),
        ("expected calibration error", _num(rel.ece)),
        ("accuracy", f"{pct(rel.accuracy)}%"),
        ("mean confidence", f"{pct(rel.mean_confidence)}%"),
    ]
    return [
        "## Calibration (reliability diagram)",
        "",
        *_table(rows),
        *_image(plots, "reliability", "reliability diagram"),
    ]


def render_markdown(r: AuditReport, plots: dict[str, Path] | None = None) -> str:
    """The Markdown report; ``plots`` (name -> PNG path) are linked by file name."""
    plots = plots or {}
    out = [
        f"# Bias audit: {r.name}",
        "",
        f"Judge `{r.model}` on {r.items} items ({r.pairwise} pairs, {r.labelled} with ground "
        "truth). Rates are percentages.",
        "",
    ]
    if r.metrics is not None:
        out += [
            render_eval(
                r.metrics, "markdown", title="Agreement with the ground truth (no reference)"
            ).rstrip(),
            "",
        ]
        out += _image(plots, "confusion", "confusion matrix")
    out += _image(plots, "bias", "bias overview")
    out += (
        _position(r)
        + _knowledge(r)
        + _format(r)
        + _length(r, plots)
        + _consistency(r)
        + _reliability(r, plots)
    )
    if r.notes:
        out += ["## Notes", "", *(f"- {n}" for n in r.notes), ""]
    return "\n".join(out).rstrip() + "\n"


def write_audit(r: AuditReport, folder: str | os.PathLike[str], *, plots: bool = True) -> Path:
    """Write ``audit.json``, the PNG plots and ``audit.md`` into ``folder``; returns the Markdown
    path. ``plots=False`` skips the PNGs (and the matplotlib dependency)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, Path] = {}
    if plots:
        from judgelm.eval.audits.plots import write_plots

        drawn = write_plots(r, folder)
    (folder / "audit.json").write_text(json.dumps(r.to_dict(), indent=2) + "\n", encoding="utf-8")
    md = folder / "audit.md"
    md.write_text(render_markdown(r, drawn), encoding="utf-8")
    return md
