"""``mmvet``: the reference code's text-only MM-Vet grading (spec §1.5).

``reference`` holds the MM-Vet ground truth (inserted verbatim); ``answers`` the one prediction.
The gold answer in the Assistant 1 slot is derived from the ground truth when not given: one
alternative of a ``<OR>`` list, chosen by a seeded RNG keyed on (seed, sample id, ground truth) so
it does not depend on batch position, with ``<AND>`` replaced by " and ".
"""

from __future__ import annotations

import random

from judgelm.formats._judgelm import MMVET_INSTRUCTION, judgelm_prompt, judgelm_scale, score_spec
from judgelm.formats.base import VerdictSpec, require
from judgelm.formats.single import SingleFormat
from judgelm.types import Sample


def gold_from_ground_truth(ground_truth: str, *, seed: int = 0, key: str = "") -> str:
    alternatives = ground_truth.split("<OR>")
    chosen = random.Random(f"{seed}\0{key}\0{ground_truth}").choice(alternatives)
    return chosen.replace("<AND>", " and ")


class MMVetFormat(SingleFormat):
    name = "mmvet"
    summary = "MM-Vet text grading: prediction vs ground truth (<OR>/<AND>), '### Response:10'"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def prepare(self, sample: Sample) -> Sample:
        if sample.gold is None and sample.reference is not None:
            key = sample.id or sample.question
            return sample.replace(gold=gold_from_ground_truth(sample.reference, seed=self.seed, key=key))
        return sample

    def validate(self, sample: Sample) -> None:
        super().validate(sample)
        require(sample.reference is not None, "mmvet needs the ground truth in `reference`", "reference")

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        require(sample.rubric is None, "mmvet's instruction is fixed; it takes no rubric", "rubric")
        scale = judgelm_scale(sample, self.name)
        forced = (scale.top,)
        text = judgelm_prompt(
            sample.question, (sample.gold or "", sample.answers[0]), sample.reference, MMVET_INSTRUCTION, forced=forced
        )
        return text, score_spec(2, scale, forced)
