"""The verdict table `judgelm judge` prints without ``-o``: a header, one row per verdict as it is
made (the column widths are fixed up front from the input, so rows print as they stream), then a
legend that explains every column shown."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from judgelm.types import Verdict
from judgelm.verdict_display import decision_note, outcome, sig3

__all__ = ["LEGEND", "VerdictTable"]

LEGEND = {
    "id": "the record's id (else its line number)",
    "format": "the judging format (prompt template) used",
    "scores": "expected score of each answer, in input order: the judge's probability-weighted score "
    "(3 significant digits; from the parsed score line with --scoring text)",
    "result": "the winning answer, tie, graded (one answer) or abstained (why: note); a * marks a winner "
    "decided by the outcome probabilities against the larger shown score (why: note)",
    "conf": "how sure the judge is of the result: 1 - entropy / log(K) of its K outcome probabilities "
    "(1 = certain, 0 = every outcome equally likely)",
    "p(grammar)": "the probability the judge writes a verdict line at all; scores and result are read "
    "within that line (the untrained demo judge puts almost none there)",
    "swap": "(--swap) whether both answer orders gave the same winner",
    "note": "why it abstained, what decided a * result, or the judge's explanation (--explain)",
}
_NOTE_WIDTH = 80


class VerdictTable:
    """Rows of verdicts under fixed-width columns; ``write`` prints one line (default: stdout)."""

    def __init__(
        self,
        keys: Sequence[str],
        formats: Sequence[str],
        max_answers: int,
        *,
        swap: bool = False,
        write: Callable[[str], None] | None = None,
    ):
        self.columns = ["id", "format", "scores", "result", "conf", "p(grammar)", *(["swap"] if swap else []), "note"]
        self.write = write or (lambda line: print(line, file=sys.stdout, flush=True))
        widths = {
            "id": max(map(len, keys), default=0),
            "format": max(map(len, formats), default=0),
            "scores": 5 * max_answers - 1,  # "10.0 2.60 ..."
            "result": len("abstained") + 1,  # "answer 10*"
            "conf": 4,
            "swap": len("order-dependent"),
        }
        self.widths = [max(len(c), widths.get(c, len(c))) for c in self.columns]
        self.started = False

    def _line(self, cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, self.widths, strict=True)).rstrip()

    def add(self, key: str, v: Verdict) -> None:
        if not self.started:
            self.write(self._line(self.columns))
            self.write(self._line(["-" * w for w in self.widths]))
            self.started = True
        self.write(self._line(self.cells(key, v)))

    def cells(self, key: str, v: Verdict) -> list[str]:
        why = decision_note(v)
        note = f"{v.reason_code}: {v.reason}" if v.abstained else (why or v.explanation or "")
        note = " ".join(note.split())
        values = {
            "id": key,
            "format": v.format,
            "scores": "-" if v.scores is None else " ".join(sig3(s) for s in v.scores),
            "result": outcome(v) + ("*" if why else ""),
            "conf": "-" if v.confidence is None else f"{v.confidence:.2f}",
            "p(grammar)": "-" if not v.distributions else f"{1 - v.distributions[0].outside_mass:.2g}",
            "swap": "-" if v.consistent is None else ("consistent" if v.consistent else "order-dependent"),
            "note": note if len(note) <= _NOTE_WIDTH else note[: _NOTE_WIDTH - 1] + "…",
        }
        return [values[c] for c in self.columns]

    def legend(self) -> None:
        """What every column shown means (printed once, after the rows)."""
        if not self.started:
            return
        self.write("")
        width = max(map(len, self.columns))
        for c in self.columns:
            self.write(f"  {c.ljust(width)}  {LEGEND[c]}")
