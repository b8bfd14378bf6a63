"""``single``: grade one answer (spec §1.3).

The JudgeLM way: a gold answer sits in the Assistant 1 slot with its score forced to 10 by the
prompt (``### Response:10``); the graded answer is Assistant 2; the judge writes `` s``.

- ``gold`` set: that is Assistant 1.
- no ``gold`` but a ``reference``: the reference is used as the gold answer (and also shown in
  the reference block), as the reference code's MM-Vet mode does.
- neither: judgelm's documented extension: the answer alone as Assistant 1, a singular
  instruction, and a free single score after ``### Response:`` (not a published JudgeLM mode;
  prefer giving a gold answer or reference with JudgeLM weights).
"""

from __future__ import annotations

from judgelm.formats._judgelm import APPENDIX, instruction, judgelm_prompt, judgelm_rubric, judgelm_scale, score_spec
from judgelm.formats.base import Formatter, VerdictSpec, require
from judgelm.types import Sample

FORCED_GOLD_SCORE = "10"


class SingleFormat(Formatter):
    name = "single"
    summary = "one answer graded against a gold answer forced to 10 ('### Response:10')"
    swap_kind = "none"
    stop_strings = (APPENDIX,)  # the template written again

    def prepare(self, sample: Sample) -> Sample:
        if sample.gold is None and sample.reference is not None:
            return sample.replace(gold=sample.reference)
        return sample

    def validate(self, sample: Sample) -> None:
        require(not sample.conversations, f"{self.name} takes answers, not conversations", "conversations")
        require(len(sample.answers) == 1, f"{self.name} grades 1 answer, got {len(sample.answers)}", "answers")

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        scale = judgelm_scale(sample, self.name)
        rubric = judgelm_rubric(sample, scale)
        if sample.gold is None:
            text = judgelm_prompt(sample.question, sample.answers, None, instruction(1, scale=scale, rubric=rubric))
            return text, score_spec(1, scale)
        forced = (scale.top,)  # "10" on the default scale: the gold answer's forced score
        text = judgelm_prompt(
            sample.question,
            (sample.gold, sample.answers[0]),
            sample.reference,
            instruction(2, scale=scale, rubric=rubric),
            forced=forced,
        )
        return text, score_spec(2, scale, forced)
