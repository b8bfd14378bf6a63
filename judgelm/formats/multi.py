"""``multi``: N >= 3 answers in one prompt (spec §1.4), scored "s1 s2 ... sN"."""

from __future__ import annotations

from judgelm.formats._judgelm import APPENDIX, instruction, judgelm_prompt, judgelm_rubric, judgelm_scale, score_spec
from judgelm.formats.base import Formatter, VerdictSpec, require
from judgelm.types import Sample


class MultiFormat(Formatter):
    name = "multi"
    summary = "N >= 3 answers, scores 's1 ... sN' (JudgeLM zero-shot; ranking)"
    swap_kind = "cyclic"
    stop_strings = (APPENDIX,)  # the template written again

    def validate(self, sample: Sample) -> None:
        require(not sample.conversations, "multi takes answers, not conversations", "conversations")
        require(len(sample.answers) >= 3, f"multi needs >= 3 answers, got {len(sample.answers)}", "answers")

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        n = len(sample.answers)
        scale = judgelm_scale(sample, self.name)
        rate = instruction(n, scale=scale, rubric=judgelm_rubric(sample, scale))
        return judgelm_prompt(sample.question, sample.answers, sample.reference, rate), score_spec(n, scale)
