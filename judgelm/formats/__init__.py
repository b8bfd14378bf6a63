"""Judging formats: one file per mode, registered by name.

Built in: ``pairwise``, ``single``, ``multi``, ``mmvet`` (JudgeLM-exact), ``chat`` (judgelm's
multi-turn mode), ``prometheus_absolute`` / ``prometheus_relative`` (/ ``_repo``) (Prometheus 2)
and ``pandalm`` (PandaLM-7B). Register your own with `register_format`.
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
from judgelm.formats.official import parse_official
from judgelm.formats.pairwise import PairwiseFormat
from judgelm.formats.pandalm import PandaLMFormat
from judgelm.formats.parsing import DEFAULT_SCORE_RANGE, ParseResult, parse_scores, parse_verdict_line
from judgelm.formats.prometheus import PrometheusAbsoluteFormat, PrometheusRelativeFormat, PrometheusRelativeRepoFormat
from judgelm.formats.rubrics import BUILTIN_RUBRICS, SCORE_RUBRIC_TEMPLATE, render_rubric
from judgelm.formats.scales import SCALES, Scale, resolve_scale
from judgelm.formats.single import SingleFormat
from judgelm.types import Sample

for _cls in (
    PairwiseFormat,
    SingleFormat,
    MultiFormat,
    MMVetFormat,
    ChatFormat,
    PrometheusAbsoluteFormat,
    PrometheusRelativeFormat,
    PrometheusRelativeRepoFormat,
    PandaLMFormat,
):
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
    "BUILTIN_RUBRICS",
    "DEFAULT_SCORE_RANGE",
    "DEFAULT_SCORE_VALUES",
    "SCALES",
    "SCORE_RUBRIC_TEMPLATE",
    "ChatFormat",
    "Formatter",
    "MMVetFormat",
    "MultiFormat",
    "PairwiseFormat",
    "PandaLMFormat",
    "ParseResult",
    "ParsedJudgment",
    "PrometheusAbsoluteFormat",
    "PrometheusRelativeFormat",
    "PrometheusRelativeRepoFormat",
    "Prompt",
    "Scale",
    "SingleFormat",
    "VerdictSpec",
    "get_format",
    "infer_mode",
    "list_formats",
    "parse_official",
    "parse_scores",
    "parse_verdict_line",
    "register_format",
    "render_rubric",
    "resolve_scale",
]
