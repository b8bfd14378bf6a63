"""The JudgeLM template strings, byte-exact (see the spec's §1), and the pieces every JudgeLM-style
format assembles a prompt from. The weights were trained on exactly these bytes: change nothing.

A prompt is plain concatenation, no chat wrapper:
``SYSTEM + "\\n" + question block [+ reference block] + answer blocks + "[System]\\n" + instruction
+ "\\n\\n" + appendix``. Inputs are inserted verbatim (never stripped).
"""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.errors import InvalidSampleError
from judgelm.formats.base import VerdictSpec
from judgelm.formats.rubrics import render_rubric
from judgelm.formats.scales import Scale, scale_for
from judgelm.types import Sample

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
APPENDIX = "### Response:"

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
).split()


def number_word(n: int) -> str:
    """English word for n (0..20), digits above."""
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def assistant_list(n: int) -> str:
    """'1 and 2', '1, 2 and 3', ... as in the N-answer instruction."""
    if n < 2:
        return "1"
    return ", ".join(str(k) for k in range(1, n)) + f" and {n}"


_OUTPUT_MANY = (
    "Please first output a single line containing only {word} values indicating the scores for "
    "Assistant {assistants}, respectively. The {word} scores are separated by a space. In the "
    "subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any "
    "potential bias and ensuring that the order in which the responses were presented does not "
    "affect your judgment."
)
_OUTPUT_ONE = (
    "Please first output a single line containing only one value indicating the score for "
    "Assistant 1. In the subsequent line, please provide a comprehensive explanation of your "
    "evaluation, avoiding any potential bias."
)
_RATE_MANY = (
    "Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each "
    "assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\n"
)
_RATE_ONE = (
    "Please rate the helpfulness, relevance, accuracy, level of details of its response. The "
    "assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\n"
)


def _rate(text: str, scale: Scale | None, rubric: str | None, many: bool) -> str:
    """The rating sentence, with judgelm's extensions: another score scale, a rubric."""
    if scale is not None and scale.labels != DEFAULT_SCALE_LABELS:
        lo, hi = min(scale.numbers), max(scale.numbers)
        text = text.replace("on a scale of 1 to 10", f"on a scale of {lo:g} to {hi:g}")
    if rubric is not None:
        whose = "their responses" if many else "its response"
        text = text.replace(
            f"the helpfulness, relevance, accuracy, level of details of {whose}", f"{whose} by the score rubric below"
        )
        text += f"[Score Rubric]\n{rubric}\n"
    return text


def instruction(n: int, *, chat: bool = False, scale: Scale | None = None, rubric: str | None = None) -> str:
    """The `[System]` instruction for n assistants.

    n == 2, ``chat=False`` is the published pairwise text; n >= 3 is the published N-answer
    rewrite ("two" -> the number word, "1 and 2" -> "1, 2 and 3"). n == 1 (grading with no gold
    answer) and ``chat=True`` (judging multi-turn conversations, after MT-Bench's multi-turn judge)
    are judgelm's extensions, in the same words and with the same verdict grammar. So are a
    ``scale`` other than 1-10 ("on a scale of 1 to 5") and a ``rubric`` (rated "by the score
    rubric below", shown after the rating sentence).
    """
    if n == 1:
        subject = (
            "an AI assistant in the multi-turn conversation with the user displayed above. Please "
            "focus on its answer to the user's final question, taking the whole conversation into "
            "account.\n"
            if chat
            else "an AI assistant in response to the user question displayed above.\n"
        )
        rate = _rate(_RATE_ONE, scale, rubric, many=False)
        return f"We would like to request your feedback on the performance of {subject}{rate}{_OUTPUT_ONE}"
    word = number_word(n)
    subject = (
        f"{word} AI assistants in the multi-turn conversations with the user displayed above. "
        "Please focus on their answers to the user's final question, taking the whole "
        "conversation into account.\n"
        if chat
        else f"{word} AI assistants in response to the user question displayed above.\n"
    )
    output = _OUTPUT_MANY.format(word=word, assistants=assistant_list(n))
    rate = _rate(_RATE_MANY, scale, rubric, many=True)
    return f"We would like to request your feedback on the performance of {subject}{rate}{output}"


MMVET_INSTRUCTION = (
    "We would like to request your feedback on the performance of two AI assistants' answers in "
    "comparing with the reference answer and determine if they match meaningfully. Please rate "
    "the helpfulness, relevance, accuracy, level of details of the Assistants' answers. To "
    "accomplish the task, you must : 1. Focus on the meaningful match between the reference "
    "answer and the Assistants' answers.\n 2. Consider synonyms or paraphrases as valid matches.\n"
    " 3. Evaluate the correctness of the Assistants' answers compared to the reference answer.\n"
    " 4. If there are multiple reference answers, the Assistants' answer is considered correct as "
    "long as it is close to any of the answers.\n"
    "Please first output a single line containing only two values indicating the scores for "
    "Assistant 1 and 2, respectively. The two scores are separated by a space. In the subsequent "
    "line, please provide a comprehensive explanation of your evaluation, avoiding any potential "
    "bias and ensuring that the order in which the responses were presented does not affect your "
    "judgment."
)


DEFAULT_SCALE_LABELS = tuple(str(i) for i in range(1, 11))


def judgelm_scale(sample: Sample, fmt: str) -> Scale:
    """The sample's score scale (default 1-10); JudgeLM formats write numbers, so its labels
    must be numbers."""
    scale = scale_for(sample.scale, "1-10", "score", fmt)
    try:
        [float(label) for label in scale.labels]
    except ValueError:
        raise InvalidSampleError(
            f"{fmt} writes numeric scores; scale {scale.name!r} has words (use prometheus_absolute)", field="scale"
        ) from None
    return scale


def judgelm_rubric(sample: Sample, scale: Scale) -> str | None:
    return None if sample.rubric is None else render_rubric(sample.rubric, scale)


def score_spec(n: int, scale: Scale, forced: Sequence[str] = ()) -> VerdictSpec:
    """n scores on the first line, each a label of ``scale`` (numbers, so no score_numbers)."""
    return VerdictSpec(n_scores=n, forced=tuple(forced), score_values=scale.labels)


def question_block(question: str) -> str:
    return f"[Question]\n{question}\n\n"


def reference_block(reference: str | None) -> str:
    return "" if reference is None else f"[Reference Answer]\n{reference}\n\n"


def answer_block(k: int, answer: str) -> str:
    """Assistant k's block (k counts from 1)."""
    return f"[The Start of Assistant {k}'s Answer]\n{answer}\n\n[The End of Assistant {k}'s Answer]\n\n"


def judgelm_prompt(
    question: str,
    answers: Sequence[str],
    reference: str | None,
    instruction_text: str,
    forced: Sequence[str] = (),
) -> str:
    """Assemble a JudgeLM prompt; ``forced`` scores follow the appendix (``### Response:10``)."""
    blocks = "".join(answer_block(k, a) for k, a in enumerate(answers, start=1))
    return (
        f"{SYSTEM}\n{question_block(question)}{reference_block(reference)}{blocks}"
        f"[System]\n{instruction_text}\n\n{APPENDIX}{' '.join(forced)}"
    )
