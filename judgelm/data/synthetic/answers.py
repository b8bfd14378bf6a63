"""Candidate answers made by systematic edits of the true answer.

Every candidate has a *kind* that fixes its true quality, so the right judgment is known:

====================  =====================================================  =======
kind                  edit                                                   quality
====================  =====================================================  =======
``correct``           the true answer, briefly phrased                        9
``rambling``          the true answer buried in filler                        7
``partial``           partly right (hedged, a slip, a wrong unit, ...)        5
``wrong``             a plausible wrong answer, phrased confidently           3
``off_topic``         fluent text about something else                        2
``refusal``           declines to answer                                      1
====================  =====================================================  =======
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from judgelm.data.synthetic.tasks import Problem

__all__ = ["KINDS", "QUALITY", "Candidate", "make_candidate"]

QUALITY: dict[str, int] = {
    "correct": 9,
    "rambling": 7,
    "partial": 5,
    "wrong": 3,
    "off_topic": 2,
    "refusal": 1,
}
KINDS: tuple[str, ...] = tuple(QUALITY)

_BRIEF = ("{v}", "The answer is {v}.", "It is {v}.", "{v}.", "The result is {v}.", "Answer: {v}")
_OPENERS = (
    "Great question! Let me think about this step by step, because questions like this deserve care.",
    "Sure, I would be happy to help with that. There are a few things worth keeping in mind here.",
    "That is an interesting one. Many people find this kind of problem tricky at first glance.",
)
_CLOSERS = (
    "I hope this helps, and feel free to ask if you have any other questions about this topic!",
    "Let me know if you would like me to explain any part of this in more detail.",
    "Problems like this are a good exercise, so it is worth double-checking the steps yourself.",
)
_OFF_TOPIC = (
    "The capital of France is Paris, which is famous for the Eiffel Tower.",
    "Photosynthesis is the process plants use to turn light into chemical energy.",
    "The Pacific Ocean is the largest and deepest ocean on Earth.",
    "Regular exercise and a balanced diet are important for good health.",
    "Shakespeare wrote many plays, including Hamlet and Macbeth.",
    "Water boils at 100 degrees Celsius at sea level.",
)
_REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "As an AI language model, I am unable to answer this question.",
    "I'm not able to provide an answer to that.",
    "Sorry, I cannot assist with this.",
)


@dataclass(frozen=True)
class Candidate:
    """One candidate answer: its text, its kind, and the answer it states (if any)."""

    kind: str
    text: str
    stated: str | None  # the answer the text commits to ("95"), None for off-topic/refusal

    @property
    def quality(self) -> int:
        return QUALITY[self.kind]


def make_candidate(kind: str, problem: Problem, rng: random.Random, *, avoid: tuple[str, ...] = ()) -> Candidate:
    """A candidate of ``kind`` for ``problem``; ``avoid`` lists texts already used for this
    question, so two candidates of the same kind still differ (up to a few retries)."""
    for _ in range(8):
        cand = _draw(kind, problem, rng)
        if cand.text not in avoid:
            return cand
    return cand


def _draw(kind: str, problem: Problem, rng: random.Random) -> Candidate:
    brief = rng.choice(_BRIEF)
    if kind == "correct":
        return Candidate(kind, brief.format(v=problem.truth), problem.truth)
    if kind == "rambling":
        opener, closer = rng.choice(_OPENERS), rng.choice(_CLOSERS)
        body = f"{opener} So the answer is {problem.truth}. {closer}"
        return Candidate(kind, body, problem.truth)
    if kind == "partial":
        return Candidate(kind, problem.partial, None)
    if kind == "wrong":
        value = rng.choice(problem.wrong)
        return Candidate(kind, brief.format(v=value), value)
    if kind == "off_topic":
        return Candidate(kind, rng.choice(_OFF_TOPIC), None)
    if kind == "refusal":
        return Candidate(kind, rng.choice(_REFUSALS), None)
    raise ValueError(f"unknown answer kind {kind!r}; known: {', '.join(KINDS)}")
