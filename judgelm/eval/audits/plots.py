"""PNG plots for the audit report: confusion matrix, reliability diagram, bias bars, length.

matplotlib is the optional ``eval`` extra, imported here only. Figures are drawn on a bare
``matplotlib.figure.Figure`` saved through the Agg canvas, so the global pyplot backend (a user's
notebook) is never switched or touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgelm.errors import MissingDependencyError
from judgelm.eval.audits.runner import AuditReport

__all__ = [
    "plot_bias",
    "plot_confusion",
    "plot_length",
    "plot_reliability",
    "require_matplotlib",
    "write_plots",
]

_NAMES = ("answer 1", "tie", "answer 2")


def require_matplotlib() -> tuple[Any, Any]:
    """(Figure, FigureCanvasAgg), or `MissingDependencyError` naming the ``eval`` extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "eval", "Audit plots") from None
    return Figure, FigureCanvasAgg


def _figure(width: float, height: float) -> Any:
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_confusion(confusion: tuple[tuple[int, ...], ...], path: Path, title: str = "") -> Path:
    fig = _figure(4.4, 3.8)
    ax = fig.add_subplot()
    ax.imshow(confusion, cmap="Blues")
    top = max(max(r) for r in confusion) or 1
    for r, row in enumerate(confusion):
        for c, count in enumerate(row):
            ax.text(
                c,
                r,
                str(count),
                ha="center",
                va="center",
                color="white" if count > top / 2 else "black",
            )
    ax.set_xticks(range(3), [f"judge: {n}" for n in _NAMES], fontsize=8)
    ax.set_yticks(range(3), [f"truth: {n}" for n in _NAMES], fontsize=8)
    ax.set_title(title or "Confusion matrix", fontsize=10)
    return _save(fig, path)


def plot_reliability(
    bins: tuple[tuple[float, float, float, float, int], ...], path: Path, ece: float
) -> Path:
    fig = _figure(4.2, 4.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.bar(
        [lo for lo, *_ in bins],
        [acc for *_, acc, _ in bins],
        width=[hi - lo for lo, hi, *_ in bins],
        align="edge",
        alpha=0.7,
        edgecolor="black",
        label="accuracy",
    )
    ax.plot(
        [conf for _, _, conf, _, _ in bins],
        [acc for *_, acc, _ in bins],
        "o",
        color="C1",
        label="bin mean",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the pairwise verdict")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {ece:.3f})", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def _bias_panels(r: AuditReport) -> list[tuple[str, list[str], list[float]]]:
    panels = []
    if r.position is not None:
        p = r.position
        panels.append(
            (
                "Position (swap)",
                ["prefers\nslot 1", "prefers\nslot 2", "flip rate"],
                [p.prefers_first, p.prefers_second, p.flip_rate],
            )
        )
    if r.knowledge is not None:
        k = r.knowledge
        panels.append(
            (
                "Knowledge (same truth)",
                ["no ref", "with ref"],
                [k.without_reference["accuracy"], k.with_reference["accuracy"]],
            )
        )
    if r.format is not None:
        f = r.format
        panels.append(
            (
                "Format (own truth)",
                ["no ref", "with ref"],
                [f.without_reference["accuracy"], f.with_reference["accuracy"]],
            )
        )
    if r.length is not None and r.length.longer_win_rate is not None:
        ln = r.length
        names, values = ["judge"], [ln.longer_win_rate]
        if ln.truth_longer_win_rate is not None:
            names.append("truth")
            values.append(ln.truth_longer_win_rate)
        panels.append(("Longer answer wins", names, values))
    if r.consistency is not None:
        c = r.consistency
        panels.append(
            ("Self-consistency", ["unanimous", "runs agree"], [c.unanimous, c.run_agreement])
        )
    return panels


def plot_bias(r: AuditReport, path: Path) -> Path | None:
    panels = _bias_panels(r)
    if not panels:
        return None
    fig = _figure(2.6 * len(panels), 3.4)
    for k, (title, names, values) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        bars = ax.bar(range(len(values)), values, color=[f"C{i}" for i in range(len(values))])
        ax.bar_label(bars, labels=[f"{100 * v:.1f}%" for v in values], fontsize=7)
        ax.set_xticks(range(len(names)), names, fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_length(bins: tuple[tuple[float, float, int], ...], path: Path, unit: str) -> Path:
    fig = _figure(4.6, 3.6)
    ax = fig.add_subplot()
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.plot([x for x, _, _ in bins], [y for _, y, _ in bins], "o-")
    ax.set_xlabel(f"length(answer 1) - length(answer 2), {unit}")
    ax.set_ylabel("judge score 1 - score 2 (bin mean)")
    ax.set_title("Score difference vs length difference", fontsize=10)
    return _save(fig, path)


def write_plots(r: AuditReport, folder: Path) -> dict[str, Path]:
    """Every plot the report has data for, as PNGs in ``folder``; name -> path."""
    require_matplotlib()  # the same answer whether or not this report has data to draw
    out: dict[str, Path] = {}
    if r.metrics is not None:
        out["confusion"] = plot_confusion(
            r.metrics.confusion,
            folder / "confusion.png",
            "Confusion matrix (normal order, no reference)",
        )
    if r.reliability is not None and r.reliability.available:
        out["reliability"] = plot_reliability(
            r.reliability.bins, folder / "reliability.png", r.reliability.ece or 0.0
        )
    bias = plot_bias(r, folder / "bias.png")
    if bias is not None:
        out["bias"] = bias
    if r.length is not None and r.length.bins:
        out["length"] = plot_length(r.length.bins, folder / "length.png", r.length.unit)
    return out
