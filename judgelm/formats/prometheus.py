"""Prometheus 2 (``prometheus-eval``): absolute grading (one response, a 1-5 score against a rubric)
and relative grading (two responses, A or B), with or without a reference answer.

Byte-exact with ``prometheus-eval/prometheus-eval`` ``libs/prometheus-eval/prometheus_eval/``:
templates and system prompts from ``prompts.py``, assembly from ``judge.py`` — the chat
``messages`` (system + user: the API path) and, for the offline path, the fastchat "mistral"
prompt that ``vllm.py`` receives, stripped (`judgelm.formats.fastchat`). ``Prompt.text`` is that
offline prompt; ``Prompt.messages`` the chat form.

- ``prometheus_absolute`` / ``prometheus_relative``: the templates of the released
  ``prometheus-eval==0.1.20`` (= repository commit 1a88c06).
- ``prometheus_relative_repo``: the repository's current relative templates (rewritten in
  e69bb27, Nov 2024; the no-reference one fixed in 62a85d1, Jan 2025; unchanged at dcfb442).

Template choice follows the sample: a ``reference`` (or else ``gold``) selects the
with-reference template, as upstream ``get_prompt_template(..., include_reference)``. (Upstream
``PrometheusEval`` uses whichever template it was built with — the no-reference ones by
default — so a reference passed to it is silently dropped; judgelm never drops it.)

The verdict is explain-first: feedback, then ``[RESULT] <label>``, then the end of the text.
Scales: absolute grading takes score scales (default ``1-5``; ``1-10``, ``yes/no``, ...),
relative grading choice scales (default ``A/B``; ``A/B/tie``). A non-default scale rewrites the
few template phrases that name the scale (judgelm's extension; the default is byte-exact).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from judgelm.formats.base import Formatter, ParsedJudgment, Prompt, VerdictSpec, label_judgment, require
from judgelm.formats.fastchat import mistral_prompt
from judgelm.formats.official import parse_official
from judgelm.formats.rubrics import render_rubric
from judgelm.formats.scales import SCALES, Scale, scale_for
from judgelm.types import Sample

__all__ = ["PrometheusAbsoluteFormat", "PrometheusRelativeFormat", "PrometheusRelativeRepoFormat"]

ABS_SYSTEM_PROMPT = "You are a fair judge assistant tasked with providing clear, objective feedback based on specific criteria, ensuring each assessment reflects the absolute standards set for performance."  # noqa: E501
REL_SYSTEM_PROMPT = "You are a fair judge assistant assigned to deliver insightful feedback that compares individual performances, highlighting how each stands relative to others within the same cohort."  # noqa: E501

RESULT_MARKER = "[RESULT]"
DEFAULT_RUBRIC = "helpfulness"  # upstream requires a rubric; judgelm's default when none is given

# ---- prometheus-eval 0.1.20, prometheus_eval/prompts.py ----------------------------------------
ABSOLUTE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer that gets a score of 5, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Reference Answer (Score 5):
{reference_answer}

###Score Rubrics:
{rubric}

###Feedback: """  # noqa: E501

ABSOLUTE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Score Rubrics:
{rubric}

###Feedback: """  # noqa: E501

RELATIVE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Reference Answer:
{reference_answer}

###Score Rubric:
{rubric}

###Feedback: """  # noqa: E501

RELATIVE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Score Rubric:
{rubric}

###Feedback: """  # noqa: E501

# ---- the repository's relative templates since e69bb27 / 62a85d1 (unchanged at dcfb442) -------
RELATIVE_PROMPT_REPO = """###Task Description:
An instruction (might include an Input inside it), two responses to evaluate (denoted as Response A and Response B), a reference answer, and an evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the two responses strictly based on the given evaluation criteria, not evaluating in general.
2. Make comparisons between Response A, Response B, and the Reference Answer. Instead of examining Response A and Response B separately, go straight to the point and mention about the commonalities and differences between them.
3. After writing the feedback, indicate the better response, either "A" or "B".
4. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (Either "A" or "B")"
5. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Reference Answer:
{reference_answer}

###Score Rubric:
{rubric}

###Feedback: """  # noqa: E501

RELATIVE_PROMPT_WO_REF_REPO = """###Task Description:
An instruction (might include an Input inside it), two responses to evaluate (denoted as Response A and Response B), and an evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the two responses strictly based on the given evaluation criteria, not evaluating in general.
2. Make comparisons between Response A, Response B, and the Reference Answer. Instead of examining Response A and Response B separately, go straight to the point and mention about the commonalities and differences between them.
3. After writing the feedback, indicate the better response, either "A" or "B".
4. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (Either "A" or "B")"
5. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Score Rubric:
{rubric}

###Feedback: """  # noqa: E501


def _rewrite(template: str, changes: dict[str, str]) -> str:
    """Replace each phrase; a phrase that is not in the template is a bug here, not silence.
    Braces in the new phrases (custom labels) are escaped: the template is `str.format`ted next."""
    for old, new in changes.items():
        if old not in template:
            raise AssertionError(f"template phrase {old!r} not found")
        template = template.replace(old, new.replace("{", "{{").replace("}", "}}"))
    return template


def _absolute_template(template: str, scale: Scale) -> str:
    if scale == SCALES["1-5"]:
        return template
    bounds = scale.integer_range()
    score = output = f"one of {scale.label_text()}"
    if bounds is not None:
        score = f"an integer between {bounds[0]} and {bounds[1]}"
        output = f"an integer number between {bounds[0]} and {bounds[1]}"
    changes = {
        "a score that is an integer between 1 and 5": f"a score that is {score}",
        "[RESULT] (an integer number between 1 and 5)": f"[RESULT] ({output})",
    }
    if "{reference_answer}" in template:
        changes["gets a score of 5"] = f"gets a score of {scale.top}"
        changes["###Reference Answer (Score 5):"] = f"###Reference Answer (Score {scale.top}):"
    return _rewrite(template, changes)


def _relative_template(template: str, scale: Scale, repo: bool) -> str:
    a, b = (scale.labels[scale.picks.index(k)] for k in (0, 1))
    tie = scale.tie_label
    if (a, b, tie) == ("A", "B", None):
        return template
    if repo:
        quoted = f'"{a}" or "{b}"' if tie is None else f'"{a}", "{b}" or "{tie}"'
        extra = "" if tie is None else f', or "{tie}" if neither is better'
        return _rewrite(
            template,
            {
                'the better response, either "A" or "B".': f"the better response, either {quoted}{extra}.",
                '[RESULT] (Either "A" or "B")': f"[RESULT] (Either {quoted})",
            },
        )
    extra = "" if tie is None else f", or {tie} if neither is better"
    names = "Response A and Response B" if (a, b) == ("A", "B") else f"Response A ({a}) and Response B ({b})"
    return _rewrite(
        template,
        {
            "choose a better response between Response A and Response B.": (
                f"choose a better response between {names}{extra}."
            ),
            "[RESULT] (A or B)": f"[RESULT] ({scale.label_text()})",
        },
    )


class _PrometheusFormat(Formatter):
    """What both Prometheus modes share: assembly, the explain-first grammar, parsing."""

    explains_first = True
    # the chat template or the task starting over (the verdict marker is a stop only for logit
    # scoring, which reads the result slot itself: `Judge` adds it there)
    stop_strings = ("[INST]", "###Task Description:")
    system_prompt: ClassVar[str]
    official_mode: ClassVar[Literal["prometheus_absolute", "prometheus_relative"]]

    def _reference(self, sample: Sample) -> str | None:
        return sample.reference if sample.reference is not None else sample.gold

    def _content(self, sample: Sample) -> str:
        raise NotImplementedError

    def messages(self, sample: Sample, text: str) -> tuple[tuple[str, str], ...]:
        return (("system", self.system_prompt), ("user", self._content(sample)))

    def _spec(self, scale: Scale, n: int) -> VerdictSpec:
        return VerdictSpec(
            n_scores=n,
            score_values=scale.labels,
            score_numbers=scale.numbers,
            picks=scale.picks,
            lead=" ",
            terminator=None,  # the judge ends its text after "[RESULT] <label>"
            marker=RESULT_MARKER,
        )

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        content = self._content(sample)
        text = mistral_prompt((("system", self.system_prompt), ("user", content)))
        return text, self._spec(self._scale(sample), len(sample.answers))

    def _scale(self, sample: Sample) -> Scale:
        raise NotImplementedError

    def parse(self, text: str, prompt: Prompt, *, official: bool = False) -> ParsedJudgment:
        if official:
            found = parse_official(text, self.official_mode)
            explanation = text.split(RESULT_MARKER)[0].strip()
            if found is None:
                if RESULT_MARKER not in text:
                    return ParsedJudgment(None, explanation, f"the judge never wrote {RESULT_MARKER!r}", "no_verdict")
                return ParsedJudgment(None, explanation, "official parser: no result found", "unparseable")
            return label_judgment(str(found), prompt, explanation)
        return parse_explained(text, prompt)


_LABEL_AFTER = r"\s*:?\s*[(\[]?\s*(?:response\s+|score\s*:?\s*)?(\d+(?:\.\d+)?|[^\s()\[\]/.,:;!?\"']+)"
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def parse_explained(text: str, prompt: Prompt) -> ParsedJudgment:
    """judgelm's reading of an explain-first verdict: the first ``marker`` followed by one of the
    grammar's labels (case-insensitive; brackets, "Response" or "Score:" allowed before it). The
    explanation is the text before that marker. Tells a missing marker (``no_verdict``) from an
    out-of-scale number (``out_of_range``) and anything else (``unparseable``)."""
    spec = prompt.spec
    assert spec.marker is not None
    if spec.marker not in text:
        return ParsedJudgment(None, text.strip(), f"the judge never wrote {spec.marker!r}", "no_verdict")
    labels = {v.lower(): v for v in spec.score_values}
    found = []
    for m in re.finditer(re.escape(spec.marker) + _LABEL_AFTER, text, re.I):
        if m.group(1).lower() in labels:
            return label_judgment(labels[m.group(1).lower()], prompt, text[: m.start()].strip())
        found.append(m.group(1))
    allowed = ", ".join(spec.score_values)
    explanation = text[: text.index(spec.marker)].strip()
    if found and _NUMBER.fullmatch(found[0]):
        return ParsedJudgment(
            None, explanation, f"{found[0]} after {spec.marker} is not one of {allowed}", "out_of_range"
        )
    tail = text[text.index(spec.marker) :][:40]
    return ParsedJudgment(None, explanation, f"no label of {allowed} after {tail!r}", "unparseable")


class PrometheusAbsoluteFormat(_PrometheusFormat):
    name = "prometheus_absolute"
    summary = "Prometheus 2 absolute grading: feedback, then '[RESULT] 1-5' against a rubric"
    swap_kind = "none"
    system_prompt = ABS_SYSTEM_PROMPT
    official_mode = "prometheus_absolute"

    def validate(self, sample: Sample) -> None:
        require(not sample.conversations, f"{self.name} takes answers, not conversations", "conversations")
        require(len(sample.answers) == 1, f"{self.name} grades 1 answer, got {len(sample.answers)}", "answers")

    def _scale(self, sample: Sample) -> Scale:
        return scale_for(sample.scale, "1-5", "score", self.name)

    def _content(self, sample: Sample) -> str:
        scale = self._scale(sample)
        reference = self._reference(sample)
        template = ABSOLUTE_PROMPT if reference is not None else ABSOLUTE_PROMPT_WO_REF
        return _absolute_template(template, scale).format(
            instruction=sample.question,
            response=sample.answers[0],
            rubric=render_rubric(sample.rubric if sample.rubric is not None else DEFAULT_RUBRIC, scale),
            reference_answer=reference,
        )


class PrometheusRelativeFormat(_PrometheusFormat):
    name = "prometheus_relative"
    summary = "Prometheus 2 relative grading (prometheus-eval 0.1.20 templates): feedback, then '[RESULT] A|B'"
    swap_kind = "reverse"
    system_prompt = REL_SYSTEM_PROMPT
    official_mode = "prometheus_relative"
    templates: ClassVar[tuple[str, str]] = (RELATIVE_PROMPT, RELATIVE_PROMPT_WO_REF)
    repo_templates: ClassVar[bool] = False

    def validate(self, sample: Sample) -> None:
        require(not sample.conversations, f"{self.name} takes answers, not conversations", "conversations")
        require(len(sample.answers) == 2, f"{self.name} compares 2 answers, got {len(sample.answers)}", "answers")

    def _scale(self, sample: Sample) -> Scale:
        scale = scale_for(sample.scale, "A/B", "choice", self.name)
        require(len(scale.candidate_picks) == 2, f"{self.name} needs a scale that picks one of 2 responses", "scale")
        return scale

    def _content(self, sample: Sample) -> str:
        reference = self._reference(sample)
        template = self.templates[0] if reference is not None else self.templates[1]
        rubric = sample.rubric if sample.rubric is not None else DEFAULT_RUBRIC
        return _relative_template(template, self._scale(sample), self.repo_templates).format(
            instruction=sample.question,
            response_A=sample.answers[0],
            response_B=sample.answers[1],
            rubric=render_rubric(rubric, criteria_only=True),
            reference_answer=reference,
        )


class PrometheusRelativeRepoFormat(PrometheusRelativeFormat):
    name = "prometheus_relative_repo"
    summary = "Prometheus 2 relative grading, the repository's current templates (e69bb27/62a85d1)"
    templates = (RELATIVE_PROMPT_REPO, RELATIVE_PROMPT_WO_REF_REPO)
    repo_templates = True
