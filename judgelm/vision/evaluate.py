"""Does the judge look at the image? Agreement with the truth, with the image shown or withheld.

Conditions (each sample keeps its question and answers; only the pixels change):

- ``image``:    the sample's own image(s);
- ``blank``:    uniform grey images of the same sizes (the image withheld);
- ``shuffled``: the image(s) of another sample with the same question (a wrong but plausible
  picture: a judge that reads the image is misled, one that ignores it is not).

Truth comes from each sample's ``meta`` (the synthetic task set writes it): ``true_label``
(pairwise: 1 if answer 1 is right, -1 if answer 2 is) or ``correct`` (single-answer grading; the
judge says "right" when its score is above ``threshold``). An abstained or tied verdict counts
as a disagreement.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from judgelm.modalities.image import blank_like, load_image
from judgelm.types import Sample, Verdict

__all__ = ["CONDITIONS", "agrees", "summarize", "withheld_comparison", "withhold"]

CONDITIONS: tuple[str, ...] = ("image", "blank", "shuffled")


def withhold(samples: Sequence[Sample], condition: str, *, seed: int = 0) -> list[Sample]:
    """``samples`` with their images replaced as ``condition`` says (images are loaded, so
    invalid ones fail here with the usual `InvalidSampleError`)."""
    if condition == "image":
        return list(samples)
    if condition == "blank":
        out = []
        for s in samples:
            loaded = [load_image(src, sample_id=s.id, index=i) for i, src in enumerate(s.images)]
            out.append(s.replace(images=tuple(blank_like(loaded))))
        return out
    if condition == "shuffled":
        rng = random.Random(f"judgelm-shuffled\0{seed}")
        by_question: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(samples):
            by_question[s.question].append(i)
        donor = list(range(len(samples)))
        for group in by_question.values():
            if len(group) > 1:  # a derangement within the group: rotate a shuffled copy by one
                order = rng.sample(group, len(group))
                for a, b in zip(order, order[1:] + order[:1], strict=True):
                    donor[a] = b
        return [s.replace(images=samples[donor[i]].images) for i, s in enumerate(samples)]
    raise ValueError(f"unknown condition {condition!r}; choose from {CONDITIONS}")


def agrees(verdict: Verdict, meta: Mapping[str, Any], *, threshold: float = 5.5) -> bool:
    """Whether a verdict matches the truth in ``meta`` (see the module docstring)."""
    if verdict.abstained or verdict.scores is None:
        return False
    if "true_label" in meta:
        return verdict.label == int(meta["true_label"])
    if "correct" in meta:
        return (verdict.scores[-1] > threshold) == bool(meta["correct"])
    raise KeyError("the sample's meta has neither 'true_label' nor 'correct'")


def summarize(samples: Sequence[Sample], verdicts: Sequence[Verdict], *, threshold: float = 5.5) -> dict[str, Any]:
    """Agreement overall and per task / per format, plus the abstain count."""
    groups: dict[str, list[bool]] = defaultdict(list)
    abstained = 0
    for s, v in zip(samples, verdicts, strict=True):
        ok = agrees(v, s.meta, threshold=threshold)
        abstained += v.abstained
        groups["all"].append(ok)
        groups[f"task:{s.meta.get('task', '?')}"].append(ok)
        groups[f"format:{v.format}"].append(ok)
    return {
        "n": len(samples),
        "abstained": abstained,
        "agreement": {k: round(sum(v) / len(v), 4) for k, v in sorted(groups.items())},
    }


def withheld_comparison(
    judge: Any,
    samples: Sequence[Sample],
    *,
    conditions: Sequence[str] = CONDITIONS,
    seed: int = 0,
    **judge_kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """`summarize` of ``judge.judge(withhold(samples, c))`` for every condition ``c``."""
    return {c: summarize(samples, judge.judge(withhold(samples, c, seed=seed), **judge_kwargs)) for c in conditions}
