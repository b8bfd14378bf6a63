"""Verdict scales: what a judge may answer, and so what its verdict grammar allows.

Two kinds:

- a *score* scale gives every shown candidate one label with a number (``1-5``, ``1-10``,
  ``yes/no`` = 1/0): JudgeLM formats and ``prometheus_absolute``;
- a *choice* scale names the better candidate, optionally a tie (``A/B``, ``A/B/tie``, PandaLM's
  ``1/2/Tie``): ``prometheus_relative`` and ``pandalm``. Each label picks a shown slot (0-based)
  or ``None`` for a tie; a choice reads as per-candidate scores win 1, tie 0.5, loss 0, so
  swapping, combining orders, calibration and evaluation treat both kinds alike.

A scale is given by name (``"1-5"``, ``"A/B/tie"``, any ``"lo-hi"`` integer range), as a list of
labels (numbers: those numbers; words: 1..k in order), or as a mapping ``{"labels": [...],
"numbers": [...]}`` / ``{"labels": [...], "picks": [0, 1, null]}``; per sample (`Sample.scale`)
or per judge (``JudgeConfig.scale``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from judgelm.errors import FormatError, InvalidSampleError

__all__ = ["SCALES", "Scale", "resolve_scale", "scale_for"]

TIE_SCORE = 0.5  # a tie's per-candidate score on a choice scale (win 1, loss 0)


@dataclass(frozen=True)
class Scale:
    """The labels a judge may write (exact strings) and what each means."""

    labels: tuple[str, ...]
    numbers: tuple[float, ...] = ()  # score scales: the number of each label
    picks: tuple[int | None, ...] = ()  # choice scales: the shown slot each label picks (None: tie)
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels) or not all(self.labels):
            raise FormatError(f"a scale needs >= 2 distinct non-empty labels, got {list(self.labels)}")
        if bool(self.numbers) == bool(self.picks):
            raise FormatError("a scale has either numbers (scores) or picks (a choice), not both or neither")
        if len(self.numbers or self.picks) != len(self.labels):
            raise FormatError(f"scale {self.label_text()}: one number or pick per label")
        if self.numbers and not all(math.isfinite(x) for x in self.numbers):
            raise FormatError(f"scale {self.label_text()}: numbers must be finite")
        if self.picks and sorted(p for p in self.picks if p is not None) != list(range(len(self.candidate_picks))):
            raise FormatError(f"scale {self.label_text()}: picks must name slots 0..k-1 once each (None: tie)")
        if self.picks and self.picks.count(None) > 1:
            raise FormatError(f"scale {self.label_text()}: at most one tie label")

    @property
    def kind(self) -> Literal["score", "choice"]:
        return "score" if self.numbers else "choice"

    @property
    def candidate_picks(self) -> tuple[int, ...]:
        return tuple(p for p in self.picks if p is not None)

    @property
    def has_tie(self) -> bool:
        return None in self.picks

    @property
    def tie_label(self) -> str | None:
        return self.labels[self.picks.index(None)] if self.has_tie else None

    def integer_range(self) -> tuple[int, int] | None:
        """(lo, hi) when the labels are the integers lo..hi written plainly, in order."""
        try:
            values = [int(label) for label in self.labels]
        except ValueError:
            return None
        lo = values[0]
        plain = [str(v) for v in values] == list(self.labels)  # "01" or "+1" are not plain integers
        return (lo, values[-1]) if plain and values == list(range(lo, lo + len(values))) else None

    @property
    def top(self) -> str:
        """The label of the best score (score scales)."""
        return self.labels[max(range(len(self.labels)), key=self.numbers.__getitem__)]

    def label_text(self, last: str = "or") -> str:
        """'A or B', '1, 2 or Tie' (labels in order)."""
        if len(self.labels) == 2:
            return f"{self.labels[0]} {last} {self.labels[1]}"
        return ", ".join(self.labels[:-1]) + f" {last} {self.labels[-1]}"

    def score_of(self, label: str, n_candidates: int) -> tuple[float, ...]:
        """Per-shown-slot scores of one label: its number (score scales, one slot), or win 1 /
        tie 0.5 / loss 0 (choice scales)."""
        i = self.labels.index(label)
        if self.numbers:
            return (self.numbers[i],)
        pick = self.picks[i]
        return tuple(TIE_SCORE if pick is None else float(pick == k) for k in range(n_candidates))


def _range(name: str) -> Scale | None:
    m = re.fullmatch(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*", name)
    if not m:
        return None
    lo, hi = int(m.group(1)), int(m.group(2))
    if hi - lo < 1 or hi - lo > 200:
        raise FormatError(f"scale {name!r}: a range needs 2..201 integers")
    return Scale(
        tuple(str(v) for v in range(lo, hi + 1)), numbers=tuple(float(v) for v in range(lo, hi + 1)), name=name
    )


SCALES: dict[str, Scale] = {
    "1-5": Scale(tuple("12345"), numbers=(1.0, 2.0, 3.0, 4.0, 5.0), name="1-5"),
    "1-10": _range("1-10"),  # type: ignore[dict-item]
    "yes/no": Scale(("yes", "no"), numbers=(1.0, 0.0), name="yes/no"),
    "A/B": Scale(("A", "B"), picks=(0, 1), name="A/B"),
    "A/B/tie": Scale(("A", "B", "tie"), picks=(0, 1, None), name="A/B/tie"),
    "1/2": Scale(("1", "2"), picks=(0, 1), name="1/2"),
    "1/2/Tie": Scale(("1", "2", "Tie"), picks=(0, 1, None), name="1/2/Tie"),
}


def _from_labels(labels: Sequence[Any]) -> Scale:
    if isinstance(labels, str) or not all(isinstance(x, str | int | float) for x in labels):
        raise FormatError("scale labels must be a list of strings or numbers")
    strings = tuple(str(x) for x in labels)
    try:
        numbers = tuple(float(x) for x in strings)
    except ValueError:
        numbers = tuple(float(k) for k in range(1, len(strings) + 1))  # words: 1..k in order
    return Scale(strings, numbers=numbers, name="/".join(strings))


def resolve_scale(value: Any) -> Scale:
    """A `Scale` from a `Scale`, a name, a list of labels or a mapping (see the module docstring);
    raises `FormatError` saying what is wrong."""
    if isinstance(value, Scale):
        return value
    if isinstance(value, str):
        scale = SCALES.get(value) or _range(value)
        if scale is None:
            raise FormatError(f"unknown scale {value!r}; use one of {', '.join(SCALES)}, 'lo-hi', or a list of labels")
        return scale
    if isinstance(value, Mapping):
        unknown = set(value) - {"labels", "numbers", "picks", "name"}
        if unknown or "labels" not in value:
            raise FormatError("a scale mapping has 'labels' and 'numbers' or 'picks' (and optionally 'name')")
        labels = tuple(str(x) for x in value["labels"])
        name = str(value.get("name") or "/".join(labels))
        if "picks" in value:
            picks = tuple(None if p is None else int(p) for p in value["picks"])
            return Scale(labels, picks=picks, name=name)
        if "numbers" in value:
            return Scale(labels, numbers=tuple(float(x) for x in value["numbers"]), name=name)
        return _from_labels(labels)
    if isinstance(value, Sequence):
        return _from_labels(value)
    raise FormatError(f"a scale is a name, a list of labels or a mapping, got {type(value).__name__}")


def scale_for(value: Any, default: str, kind: Literal["score", "choice"], fmt: str) -> Scale:
    """The scale a format uses for a sample: ``value`` (the sample's or the judge's) or the
    format's ``default``; a scale that is malformed or of the wrong kind is the sample's error."""
    try:
        scale = resolve_scale(default if value is None else value)
    except FormatError as e:
        raise InvalidSampleError(str(e), field="scale") from None
    if scale.kind != kind:
        want = "a score scale (1-5, 1-10, yes/no, ...)" if kind == "score" else "a choice scale (A/B, A/B/tie, ...)"
        raise InvalidSampleError(f"{fmt} needs {want}, got {scale.name or scale.label_text()!r}", field="scale")
    return scale
