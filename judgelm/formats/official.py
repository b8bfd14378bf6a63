"""What each family's own code reads from a judge's text, exactly (quirks included).

`parse_official` returns the upstream parser's value, nothing more or less:

- ``prometheus_absolute``: ``_parse_output_absolute`` of ``prometheus_eval/parser.py``
  (prometheus-eval 0.1.20): an ``int`` 1..5, ``None`` on failure.
- ``prometheus_relative`` (and ``_repo``): ``_parse_output_relative``: ``"A"`` or ``"B"``, ``None``.
- ``pandalm``: ``parse_pandalm_response`` of ``pandalm/utils/pandalm_inference.py``
  (WeOpenML/PandaLM): ``1``, ``2``, or ``0`` for a tie *and* for anything unreadable.
- JudgeLM formats: the reference ``parse_score`` (spec §2): ``[s1, s2]`` floats, ``[-1, -1]``
  on failure.

judgelm's own parsers (`Formatter.parse`) accept what these accept in official mode but report a
failure as a failure (an abstained verdict with its reason), never as a tie or a score.
"""

from __future__ import annotations

import re

__all__ = ["pandalm_strip", "parse_official"]

# _parse_output_absolute's pattern (re.IGNORECASE | re.VERBOSE), comments dropped.
_ABSOLUTE = re.compile(
    r"""
    (?:\[RESULT\]|\[SCORE\]|Score:?|score:?|Result:?|\[Result\]:?|score\s+of)
    \s*
    (?:\(|\[|\s)*
    (\d+)
    (?:(?:\)|\]|\s|$)|(?:/\s*5|\s*out\s*of\s*5))?
    (?:\s*$)
    """,
    re.IGNORECASE | re.VERBOSE,
)
# _parse_output_relative's pattern (re.IGNORECASE | re.VERBOSE | re.MULTILINE), comments dropped.
_RELATIVE = re.compile(
    r"""
    (?:\[RESULT\]|\[RESULT:\s*|\[Response\s+|\[Result\](?:\s+Response)?|\[Result:\s*|(?:^|\n)Result:?\s*)
    \s*
    (A|B)
    (?:\])?
    (?:\s*$)
    """,
    re.IGNORECASE | re.VERBOSE | re.MULTILINE,
)
# PandaLMBatchInferenceProvider.pattern: special-token strings removed from responses and output.
_PANDALM_SPECIAL = re.compile(
    r"<unk>|<pad>|<s>|</s>|\[PAD\]|<\|endoftext\|>|\[UNK\]|\[CLS\]|\[MASK\]|<\|startofpiece\|>|<\|endofpiece\|>|\[gMASK\]|\[sMASK\]"
)


def pandalm_strip(text: str) -> str:
    """``pattern.sub("", text.strip()).strip()``: how PandaLM cleans responses and outputs."""
    return _PANDALM_SPECIAL.sub("", text.strip()).strip()


def _prometheus_absolute(text: str | None) -> int | None:
    if text is None:  # parse_output returns (None, None) for None
        return None
    m = _ABSOLUTE.search(text)
    if m and 1 <= int(m.group(1)) <= 5:
        return int(m.group(1))
    return None


def _prometheus_relative(text: str | None) -> str | None:
    if text is None:
        return None
    m = _RELATIVE.search(text)
    return m.group(1).upper() if m else None


def _pandalm(text: str) -> int:
    first = text.strip().split("\n")[0]
    if first in ("1", "2"):
        return int(first)
    return 0  # "tie" (any case) and everything unreadable alike


def _judgelm(text: str) -> list[float]:
    fields = text.split("\n")[0].replace(",", " ").split(" ")
    if len(fields) != 2:
        return [-1, -1]
    try:
        return [float(fields[0]), float(fields[1])]
    except ValueError:
        return [-1, -1]


_PARSERS = {
    "prometheus_absolute": _prometheus_absolute,
    "prometheus_relative": _prometheus_relative,
    "prometheus_relative_repo": _prometheus_relative,
    "pandalm": _pandalm,
    "pairwise": _judgelm,
}


def parse_official(text: str | None, mode: str) -> int | str | list[float] | None:
    """The upstream parser's result for ``text`` in ``mode`` (a format name; see the module
    docstring). ``mode`` may also be upstream's own ``"absolute"`` / ``"relative"``."""
    mode = {"absolute": "prometheus_absolute", "relative": "prometheus_relative"}.get(mode, mode)
    try:
        parser = _PARSERS[mode]
    except KeyError:
        raise ValueError(f"no official parser for mode {mode!r}; known: {', '.join(_PARSERS)}") from None
    return parser(text)  # type: ignore[operator]
