"""Calibrating a judge's verdict distributions: fit, measure, save (the `Calibration` value
itself lives beside what applies it, `judgelm.scoring.combine`).

A `Calibration` rescales every verdict distribution the scoring head reads — the joint
distribution over verdict lines, or each slot's distribution in greedy mode — as
``p_T(x) ∝ p(x)^(1/T) · exp(bias[x])`` (temperature scaling; the optional per-value bias applies
to one-slot distributions only, i.e. single-answer grading). ``T`` (and the bias) are fitted on
labelled data by minimising the negative log-likelihood of the labels:

- ``target="preference"``: pairwise labels 1 / 0 / -1 (answer 1 better, tie, answer 2 better);
  the likelihood is the judge's P(first better), P(tie), P(second better).
- ``target="scores"``: teacher scores per answer; the likelihood is each answer's probability of
  the teacher's score (rounded to the nearest allowed value).

Reported before and after: NLL, Brier score and ECE (15 equal-width confidence bins, confidence =
the largest probability of the decision distribution). The fitted calibration is saved in
``judge.json`` beside the weights and loaded by `Judge.from_pretrained`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from judgelm.scoring.combine import Calibration, combine_orders

if TYPE_CHECKING:
    from judgelm.scoring.scorer import PromptScores

__all__ = [
    "Calibration",
    "CalibrationItem",
    "CalibrationReport",
    "calibrate_judge",
    "calibration_metrics",
    "fit_calibration",
    "plot_reliability",
    "reliability_bins",
]

Target = Literal["preference", "scores"]
N_BINS = 15


@dataclass(frozen=True)
class CalibrationItem:
    """One labelled sample's raw verdict distributions (one `PromptScores` per order judged)."""

    results: tuple[PromptScores, ...]
    orders: tuple[tuple[int, ...], ...]
    label: int | None = None  # preference: 1, 0, -1
    scores: tuple[float, ...] | None = None  # teacher scores per answer


@dataclass(frozen=True)
class CalibrationReport:
    calibration: Calibration
    target: str
    n_fit: int
    n_heldout: int
    before: dict[str, float]
    after: dict[str, float]
    bins_before: list[tuple[float, float, int]] = field(default_factory=list)
    bins_after: list[tuple[float, float, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibration": self.calibration.to_dict(),
            "target": self.target,
            "n_fit": self.n_fit,
            "n_heldout": self.n_heldout,
            "heldout_before": self.before,
            "heldout_after": self.after,
        }


def _outcomes(item: CalibrationItem, calibration: Calibration, target: Target) -> list[tuple[list[float], int]]:
    """(decision distribution, index of the true outcome) pairs for one item."""
    combined = combine_orders(item.results, item.orders, calibration)
    if target == "preference":
        if item.label is None or combined.preference is None:
            return []
        p = combined.preference
        return [([p.first, p.tie, p.second], {1: 0, 0: 1, -1: 2}[item.label])]
    if item.scores is None:
        return []
    out = []
    for dist, truth in zip(combined.distributions, item.scores, strict=True):
        k = min(range(len(dist.values)), key=lambda i: abs(dist.values[i] - truth))
        out.append((list(dist.probs), k))
    return out


def calibration_metrics(
    items: Sequence[CalibrationItem], calibration: Calibration, target: Target
) -> tuple[dict[str, float], list[tuple[float, float, int]]]:
    """NLL, Brier, ECE and accuracy of ``items`` under ``calibration``, and the reliability bins."""
    pairs = [o for item in items for o in _outcomes(item, calibration, target)]
    if not pairs:
        return {"n": 0, "nll": math.nan, "brier": math.nan, "ece": math.nan, "accuracy": math.nan}, []
    nll = brier = 0.0
    conf_correct = []
    for probs, y in pairs:
        nll -= math.log(max(probs[y], 1e-12))
        brier += sum((p - (1.0 if k == y else 0.0)) ** 2 for k, p in enumerate(probs))
        best = max(range(len(probs)), key=probs.__getitem__)
        conf_correct.append((probs[best], best == y))
    bins = reliability_bins(conf_correct)
    ece = sum(n * abs(acc - conf) for conf, acc, n in bins) / len(pairs)
    n = len(pairs)
    return {
        "n": n,
        "nll": nll / n,
        "brier": brier / n,
        "ece": ece,
        "accuracy": sum(c for _, c in conf_correct) / n,
    }, bins


def reliability_bins(
    conf_correct: Sequence[tuple[float, bool]], n_bins: int = N_BINS
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per non-empty equal-width bin."""
    sums = [[0.0, 0.0, 0] for _ in range(n_bins)]
    for conf, correct in conf_correct:
        b = min(int(conf * n_bins), n_bins - 1)
        sums[b][0] += conf
        sums[b][1] += float(correct)
        sums[b][2] += 1
    return [(c / n, a / n, n) for c, a, n in sums if n]


def _golden_section(f: Any, lo: float, hi: float, iters: int = 40) -> float:
    """Minimise a unimodal f on [lo, hi]."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_calibration(
    items: Sequence[CalibrationItem],
    *,
    target: Target = "preference",
    heldout: float = 0.3,
    seed: int = 0,
    fit_bias: bool = False,
) -> CalibrationReport:
    """Fit a temperature (searched on log T in [1/20, 20]) on a random (1 - ``heldout``) split
    and report NLL / Brier / ECE on the held-out rest, before and after."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_hold = round(len(items) * heldout) if len(items) > 1 else 0
    hold = [items[i] for i in order[:n_hold]]
    fit = [items[i] for i in order[n_hold:]]
    if not fit:
        raise ValueError("no items to fit a calibration on")

    def nll(cal: Calibration) -> float:
        return calibration_metrics(fit, cal, target)[0]["nll"]

    log_t = _golden_section(lambda lt: nll(Calibration(math.exp(lt))), math.log(1 / 20), math.log(20))
    cal = Calibration(round(math.exp(log_t), 6))
    if fit_bias and target == "scores":
        cal = _fit_value_bias(fit, cal)
    evaluate_on = hold or fit
    before, bins_before = calibration_metrics(evaluate_on, Calibration(), target)
    after, bins_after = calibration_metrics(evaluate_on, cal, target)
    return CalibrationReport(cal, target, len(fit), len(hold), before, after, bins_before, bins_after)


def _fit_value_bias(items: Sequence[CalibrationItem], cal: Calibration, rounds: int = 3) -> Calibration:
    """Coordinate descent on a per-value log-bias (single-slot distributions), keeping T."""
    n_values = len(items[0].results[0].values)
    bias = [0.0] * n_values
    for _ in range(rounds):
        for k in range(n_values):

            def f(b: float, k: int = k) -> float:
                trial = [*bias]
                trial[k] = b
                return calibration_metrics(items, Calibration(cal.temperature, tuple(trial)), "scores")[0]["nll"]

            bias[k] = _golden_section(f, -5.0, 5.0, iters=25)
    return Calibration(cal.temperature, tuple(round(b, 6) for b in bias))


def plot_reliability(report: CalibrationReport, path: str | Path) -> Path:
    """A reliability diagram (before vs after) as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        from judgelm.errors import MissingDependencyError

        raise MissingDependencyError("matplotlib", "eval", "Reliability diagrams") from None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect")
    for bins, name in ((report.bins_before, "raw"), (report.bins_after, f"T={report.calibration.temperature:.2f}")):
        if bins:
            ax.plot([b[0] for b in bins], [b[1] for b in bins], "o-", label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"ECE {report.before['ece']:.3f} -> {report.after['ece']:.3f}")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def calibrate_judge(
    judge: Any,
    items: Sequence[Any],
    *,
    target: Target = "preference",
    heldout: float = 0.3,
    seed: int = 0,
    swap: bool = False,
    fit_bias: bool = False,
) -> CalibrationReport:
    """Judge labelled items (`judgelm.eval.Labelled`: ``sample`` + ``label`` / ``scores``) with
    logit scoring, uncalibrated, and fit a calibration on them. The judge is not changed: assign
    ``judge.calibration = report.calibration`` (and save) to use it."""
    raw = judge.raw_scores([it.sample for it in items], swap=swap)
    data = [
        CalibrationItem(tuple(r[0]), tuple(r[1]), label=it.label, scores=it.scores)
        for it, r in zip(items, raw, strict=True)
        if r is not None
    ]
    return fit_calibration(data, target=target, heldout=heldout, seed=seed, fit_bias=fit_bias)
