"""The synthetic teacher: writes JudgeLM-style judgments ("s1 s2\\n<explanation>") of candidates
whose true quality is known, in a plain and a with-reference variant.

The teacher can be given the biases the paper is about, each as an explicit per-record draw so
the generator controls the randomness:

- ``favour_first`` (position bias): when Assistant 1 is within ``margin`` points of the best
  answer, the teacher makes Assistant 1 the strict winner, and says so.
- ``fooled`` (knowledge bias, plain variant only): a wrong answer the teacher cannot verify
  without the reference is scored as if it were correct.
- ``noise``: per-slot score offsets (-1, 0, +1), shared by both variants.

``brief`` explanations keep one short clause per assistant (still naming each "Assistant k", so
swapping rewrites them): cheaper targets for small training runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.data.synthetic.answers import QUALITY, Candidate
from judgelm.data.synthetic.tasks import Problem

__all__ = ["teacher_judgment", "teacher_scores"]

_PLAIN = {
    "correct": "Assistant {k} gives the correct answer, {truth}, clearly and concisely.",
    "rambling": "Assistant {k} reaches the correct answer, {truth}, but buries it in filler.",
    "partial": "Assistant {k} is only partly right: it {note}.",
    "wrong": "Assistant {k} answers {stated}, which is incorrect; the correct answer is {truth}.",
    "fooled": "Assistant {k} answers {stated} directly and concisely.",
    "off_topic": "Assistant {k} does not address the question at all.",
    "refusal": "Assistant {k} refuses to answer the question.",
}
_WITH_REFERENCE = {
    "correct": "Assistant {k}'s answer, {truth}, matches the reference answer and is concise.",
    "rambling": "Assistant {k}'s answer agrees with the reference answer ({truth}) but is padded with filler.",
    "partial": "Assistant {k} is only partly consistent with the reference answer: it {note}.",
    "wrong": "Assistant {k} answers {stated}, which contradicts the reference answer ({truth}).",
    "off_topic": "Assistant {k} does not address the question; nothing matches the reference.",
    "refusal": "Assistant {k} refuses, so there is nothing to compare with the reference.",
}
_BRIEF_PLAIN = {
    "correct": "Assistant {k} is correct.",
    "rambling": "Assistant {k} is correct but verbose.",
    "partial": "Assistant {k} is partly right.",
    "wrong": "Assistant {k} is wrong.",
    "fooled": "Assistant {k} is concise.",
    "off_topic": "Assistant {k} is off topic.",
    "refusal": "Assistant {k} refuses.",
}
_BRIEF_WITH_REFERENCE = {
    "correct": "Assistant {k} matches the reference.",
    "rambling": "Assistant {k} matches the reference but is verbose.",
    "partial": "Assistant {k} partly matches the reference.",
    "wrong": "Assistant {k} contradicts the reference.",
    "off_topic": "Assistant {k} is off topic.",
    "refusal": "Assistant {k} refuses.",
}


def teacher_scores(
    candidates: Sequence[Candidate],
    *,
    with_reference: bool,
    favour_first: bool = False,
    fooled: Sequence[bool] = (),
    noise: Sequence[int] = (),
    margin: int = 1,
) -> tuple[tuple[int, ...], bool]:
    """The teacher's integer scores per slot, and whether its position bias changed them."""
    fooled = tuple(fooled) or (False,) * len(candidates)
    noise = tuple(noise) or (0,) * len(candidates)
    scores = []
    for cand, fool, off in zip(candidates, fooled, noise, strict=True):
        kind = "correct" if (fool and not with_reference and cand.kind == "wrong") else cand.kind
        scores.append(min(10, max(1, QUALITY[kind] + off)))
    biased = False
    if favour_first and len(scores) >= 2:
        best_other = max(scores[1:])
        if scores[0] >= best_other - margin and scores[0] <= best_other:
            # Close call: the biased teacher lets Assistant 1 win by a point.
            if best_other < 10:
                scores[0] = best_other + 1
            else:
                scores[0] = 10
                scores[1:] = [min(s, 9) for s in scores[1:]]
            biased = True
    return tuple(scores), biased


def _conclusion(scores: Sequence[int], biased: bool) -> str:
    n = len(scores)
    best = max(scores)
    top = [k + 1 for k, s in enumerate(scores) if s == best]
    if biased and top == [1]:
        return "The answers are close, but Assistant 1 is slightly better."
    if len(top) == n:
        return (
            f"Both assistants perform equally {'well' if best >= 5 else 'poorly'}."
            if n == 2
            else (f"All assistants perform equally {'well' if best >= 5 else 'poorly'}.")
        )
    if len(top) == 1:
        return (
            f"Therefore, Assistant {top[0]} performs better."
            if n == 2
            else f"Therefore, Assistant {top[0]} performs best."
        )
    names = " and ".join(f"Assistant {k}" for k in top)
    return f"{names} perform equally well and better than the rest."


def teacher_judgment(
    problem: Problem,
    candidates: Sequence[Candidate],
    *,
    with_reference: bool,
    favour_first: bool = False,
    fooled: Sequence[bool] = (),
    noise: Sequence[int] = (),
    margin: int = 1,
    brief: bool = False,
) -> tuple[tuple[int, ...], str, bool]:
    """(scores, judgment text, whether the position bias changed the scores) for the
    candidates in the order given, JudgeLM style: the scores on the first line, separated by
    single spaces, then the explanation."""
    scores, biased = teacher_scores(
        candidates,
        with_reference=with_reference,
        favour_first=favour_first,
        fooled=fooled,
        noise=noise,
        margin=margin,
    )
    fooled = tuple(fooled) or (False,) * len(candidates)
    if brief:
        table = _BRIEF_WITH_REFERENCE if with_reference else _BRIEF_PLAIN
    else:
        table = _WITH_REFERENCE if with_reference else _PLAIN
    parts = []
    for k, (cand, fool) in enumerate(zip(candidates, fooled, strict=True), start=1):
        key = "fooled" if (fool and not with_reference and cand.kind == "wrong") else cand.kind
        parts.append(table[key].format(k=k, truth=problem.truth, stated=cand.stated, note=problem.partial_note))
    if not brief:
        parts.append(_conclusion(scores, biased))
    return scores, " ".join(str(s) for s in scores) + "\n" + " ".join(parts), biased
