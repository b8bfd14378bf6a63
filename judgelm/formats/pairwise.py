"""``pairwise``: two answers scored side by side (spec §1.1, §1.2 with a reference)."""

from __future__ import annotations

from judgelm.formats._judgelm import APPENDIX, instruction, judgelm_prompt, judgelm_rubric, judgelm_scale, score_spec
from judgelm.formats.base import Formatter, VerdictSpec, require
from judgelm.types import Sample


class PairwiseFormat(Formatter):
    name = "pairwise"
    summary = "two answers, scores 's1 s2' (JudgeLM; with reference when `reference` is set)"
    swap_kind = "reverse"
    stop_strings = (APPENDIX,)  # the template written again

    def validate(self, sample: Sample) -> None:
        require(not sample.conversations, "pairwise takes answers, not conversations", "conversations")
        require(len(sample.answers) == 2, f"pairwise needs 2 answers, got {len(sample.answers)}", "answers")

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        scale = judgelm_scale(sample, self.name)
        rate = instruction(2, scale=scale, rubric=judgelm_rubric(sample, scale))
        return judgelm_prompt(sample.question, sample.answers, sample.reference, rate), score_spec(2, scale)
