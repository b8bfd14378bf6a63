"""Judging formats: one file per mode, registered by name.

Built in: ``pairwise``, ``single``, ``multi``, ``mmvet`` (JudgeLM-exact) and ``chat`` (judgelm's
multi-turn mode). Register your own with `register_format`.
"""

from judgelm.formats.base import (
    DEFAULT_SCORE_VALUES,
    Formatter,
    ParsedJudgment,
    Prompt,
    VerdictSpec,
    get_format,
    list_formats,
    register_format,
)
from judgelm.formats.chat import ChatFormat
from judgelm.formats.mmvet import MMVetFormat
from judgelm.formats.multi import MultiFormat
from judgelm.formats.pairwise import PairwiseFormat
from judgelm.formats.parsing import DEFAULT_SCORE_RANGE, ParseResult, parse_scores, parse_verdict_line
from judgelm.formats.single import SingleFormat
from judgelm.types import Sample

for _cls in (PairwiseFormat, SingleFormat, MultiFormat, MMVetFormat, ChatFormat):
    register_format(_cls)

import judgelm.formats.image  # noqa: E402,F401  (registers image_single / image_pairwise; no torch import)


def infer_mode(sample: Sample) -> str:
    """The format a sample without ``mode`` is judged in: its own ``mode`` if set, else chat for
    conversations, single for one answer (or a gold answer), pairwise for two, multi for more."""
    if sample.mode:
        return sample.mode
    if sample.conversations:
        return "chat"
    n = len(sample.answers)
    if n == 1 or sample.gold is not None:
        return "single"
    return "pairwise" if n == 2 else "multi"


__all__ = [
    "DEFAULT_SCORE_RANGE",
    "DEFAULT_SCORE_VALUES",
    "ChatFormat",
    "Formatter",
    "MMVetFormat",
    "MultiFormat",
    "PairwiseFormat",
    "ParseResult",
    "ParsedJudgment",
    "Prompt",
    "SingleFormat",
    "VerdictSpec",
    "get_format",
    "infer_mode",
    "list_formats",
    "parse_scores",
    "parse_verdict_line",
    "register_format",
]
