"""Reading scores out of a judge's text.

``official=True`` is the reference ``parse_score`` exactly (generalised from 2 to n scores): the
text before the first "\\n", commas turned into spaces, ``split(' ')``, exactly n fields, each
``float()``-able — else failure (the reference returned ``[-1, -1]`` and counted it a tie).

The default tolerant mode also reads ``8, 9``, stray spaces, ``8/10 9/10``, ``Scores: 8 9`` and
``Assistant 1: 8, Assistant 2: 9`` (on one line or one per line), checks the range, and never
guesses: anything else fails with a reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["DEFAULT_SCORE_RANGE", "DEFAULT_SCORE_VALUES", "ParseResult", "parse_scores", "parse_verdict_line"]

# The JudgeLM score scale: the strings a verdict may write per slot, and their range.
DEFAULT_SCORE_VALUES: tuple[str, ...] = tuple(str(i) for i in range(1, 11))
DEFAULT_SCORE_RANGE: tuple[float, float] = (float(DEFAULT_SCORE_VALUES[0]), float(DEFAULT_SCORE_VALUES[-1]))

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_SCORE = rf"({_NUM})(?:\s*/\s*10(?![\d.]))?"
_SEP = r"(?:\s*[,;]\s*|\s+and\s+|\s+)"
_PLAIN = re.compile(rf"^(?:(?:overall\s+)?(?:scores?|ratings?)\s*[:=]\s*)?{_SCORE}(?:{_SEP}{_SCORE})*$", re.I)
_PLAIN_ITEM = re.compile(_SCORE)
_LABELLED = re.compile(rf"assistant\s*(\d+)(?:'s)?\s*(?:score)?\s*[:=\-]?\s*{_SCORE}", re.I)
_DECOR = re.compile(r"^[\s*`_#>]+|[\s*`_.]+$")


@dataclass(frozen=True)
class ParseResult:
    scores: tuple[float, ...] | None
    reason: str | None = None
    reason_code: str | None = None  # "unparseable" | "out_of_range"


def _official(text: str, n: int) -> ParseResult:
    fields = text.split("\n")[0].replace(",", " ").split(" ")
    if len(fields) != n:
        return ParseResult(None, f"official parser: expected {n} fields, found {len(fields)}", "unparseable")
    try:
        return ParseResult(tuple(float(f) for f in fields))
    except ValueError as e:
        return ParseResult(None, f"official parser: {e}", "unparseable")


def _tolerant(text: str, n: int, score_range: tuple[float, float]) -> ParseResult:
    lines = [_DECOR.sub("", line) for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return ParseResult(None, "empty output", "unparseable")
    first = lines[0]
    scores: list[float] | None = None
    if _PLAIN.match(first):
        found = [float(m.group(1)) for m in _PLAIN_ITEM.finditer(first)]
        if len(found) != n:
            return ParseResult(
                None, f"expected {n} scores on the first line, found {len(found)}: {first!r}", "unparseable"
            )
        scores = found
    else:
        labelled = _LABELLED.findall(first)
        if len(labelled) < n:  # one "Assistant k: s" per line
            per_line = [_LABELLED.findall(line) for line in lines[:n]]
            if all(len(p) == 1 for p in per_line):
                labelled = [p[0] for p in per_line]
        by_slot = {int(k): float(s) for k, s in labelled}
        if labelled and len(labelled) == n and sorted(by_slot) == list(range(1, n + 1)):
            scores = [by_slot[k] for k in range(1, n + 1)]
    if scores is None:
        return ParseResult(None, f"no score line with {n} scores: {first[:80]!r}", "unparseable")
    lo, hi = score_range
    bad = [s for s in scores if not (math.isfinite(s) and lo <= s <= hi)]
    if bad:
        return ParseResult(None, f"score {bad[0]:g} outside {lo:g}..{hi:g}", "out_of_range")
    return ParseResult(tuple(scores))


def parse_verdict_line(
    text: str, n: int, *, official: bool = False, score_range: tuple[float, float] = DEFAULT_SCORE_RANGE
) -> ParseResult:
    """Parse n scores from a verdict (its first line); the result says why when it fails."""
    return _official(text, n) if official else _tolerant(text, n, score_range)


def parse_scores(
    text: str, n: int = 2, official: bool = False, score_range: tuple[float, float] = DEFAULT_SCORE_RANGE
) -> tuple[float, ...] | None:
    """n scores read from a judge's output, or ``None`` when they cannot be read.

    >>> parse_scores("8 9\\nAssistant 2 is better.", 2)
    (8.0, 9.0)
    >>> parse_scores("8, 9", 2, official=True) is None  # the reference fails on ", "
    True
    """
    return parse_verdict_line(text, n, official=official, score_range=score_range).scores
