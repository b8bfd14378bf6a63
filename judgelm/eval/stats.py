"""What the reference metrics lack: the confusion matrix, Cohen's kappa and bootstrap confidence
intervals. All on the same labels the reference numbers use ({1, 0, -1}, ground-truth failures
dropped, prediction failures as ties), so they describe the same records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from judgelm.eval.metrics import LABELS

__all__ = ["bootstrap_intervals", "cohen_kappa", "confusion_matrix", "pearson", "spearman"]

_INDEX = {label: k for k, label in enumerate(LABELS)}


def confusion_matrix(truth: Sequence[int], pred: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """3x3 counts, rows = truth, columns = prediction, both in `LABELS` order (1, 0, -1).

    Every class keeps its row and column even when absent, so matrices from different runs line up.
    """
    if len(truth) != len(pred):
        raise ValueError(f"truth and prediction differ in length: {len(truth)} vs {len(pred)}")
    m = [[0, 0, 0] for _ in LABELS]
    for t, p in zip(truth, pred, strict=True):
        m[_INDEX[t]][_INDEX[p]] += 1
    return tuple(tuple(row) for row in m)


def _kappa_from_matrix(m: np.ndarray) -> np.ndarray:
    """Cohen's kappa of one or many (..., 3, 3) count matrices; nan where chance agreement is 1
    (a single class on both sides: kappa is undefined, scikit-learn also gives nan)."""
    n = m.sum(axis=(-2, -1)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        po = np.trace(m, axis1=-2, axis2=-1) / n
        pe = (m.sum(axis=-1) * m.sum(axis=-2)).sum(axis=-1) / (n * n)
        kappa = (po - pe) / (1.0 - pe)
    return np.where(np.isclose(pe, 1.0) | (n == 0), np.nan, kappa)


def cohen_kappa(truth: Sequence[int], pred: Sequence[int]) -> float:
    """Cohen's kappa, ``(p_o - p_e) / (1 - p_e)``: agreement beyond what the two label
    frequencies give by chance. ``nan`` when undefined (no records, or one class only)."""
    m = np.asarray(confusion_matrix(truth, pred))
    return float(_kappa_from_matrix(m))


def _macro_from_matrices(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Macro P/R/F1 of (B, 3, 3) matrices over the classes present in truth or prediction."""
    tp = np.diagonal(m, axis1=-2, axis2=-1).astype(float)
    n_true = m.sum(axis=-1).astype(float)
    n_pred = m.sum(axis=-2).astype(float)
    present = (n_true + n_pred) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n_pred > 0, tp / n_pred, 0.0)
        r = np.where(n_true > 0, tp / n_true, 0.0)
        f = np.where(present, 2 * tp / (n_true + n_pred), 0.0)
        k = present.sum(axis=-1)
        return (p * present).sum(-1) / k, (r * present).sum(-1) / k, (f * present).sum(-1) / k


def bootstrap_intervals(
    truth: Sequence[int],
    pred: Sequence[int],
    swapped: Sequence[int] | None = None,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (records resampled with replacement) for accuracy,
    precision, recall, f1, kappa and, with ``swapped``, consistency.

    Each resample recomputes the metric exactly as defined for the full set (macro over the
    labels present *in that resample*). Resamples where a metric is undefined (kappa with one
    class) are left out of its interval. Seeded: the same call gives the same intervals.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = len(truth)
    keys = ["accuracy", "precision", "recall", "f1", "kappa"] + (
        ["consistency"] if swapped is not None else []
    )
    if n == 0 or resamples < 1:
        return {k: (math.nan, math.nan) for k in keys}
    t = np.array([_INDEX[x] for x in truth])
    p = np.array([_INDEX[x] for x in pred])
    same = (
        None
        if swapped is None
        else np.array([-a == b for a, b in zip(pred, swapped, strict=True)], dtype=float)
    )
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # resamples per block: bounds memory at ~2M indices
    mats, cons = [], []
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        cell = t[idx] * 3 + p[idx] + 9 * np.arange(b)[:, None]
        mats.append(np.bincount(cell.ravel(), minlength=9 * b).reshape(b, 3, 3))
        if same is not None:
            cons.append(same[idx].mean(axis=1))
    m = np.concatenate(mats)
    values: dict[str, np.ndarray] = {"accuracy": np.trace(m, axis1=1, axis2=2) / n}
    values["precision"], values["recall"], values["f1"] = _macro_from_matrices(m)
    values["kappa"] = _kappa_from_matrix(m)
    if same is not None:
        values["consistency"] = np.concatenate(cons)
    alpha = (1.0 - level) / 2
    out = {}
    for k in keys:
        v = values[k][~np.isnan(values[k])]
        out[k] = (
            (math.nan, math.nan)
            if v.size == 0
            else (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
        )
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; ``nan`` with fewer than 2 points or a constant variable."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    if len(x) < 2:
        return math.nan
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return math.nan if denom == 0 else float((a * b).sum()) / denom


def _ranks(x: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson of average ranks); ``nan`` when undefined."""
    return pearson(_ranks(x), _ranks(y))
