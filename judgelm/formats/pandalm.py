"""``pandalm``: PandaLM-7B's pairwise prompt, byte-exact with ``WeOpenML/PandaLM``
``pandalm/utils/pandalm_inference.py`` (``build_pandalm_prompt``, commit 3871806).

The question is the task's instruction (verbatim); ``Sample.input`` fills ``### Input`` when
non-empty (upstream: ``if input:``); the responses are stripped and cleaned of special-token
strings as upstream does. The judge writes its verdict first — ``1``, ``2`` or ``Tie`` on the
first line — then ``### Reason: ...`` and ``### Reference: ...``; the scoring head reads the
verdict line directly (grammar ``1\\n`` / ``2\\n`` / ``Tie\\n``, scale ``1/2/Tie``; ``1/2`` drops
the tie). PandaLM's tokenizer prepends ``</s>`` (id 2) as BOS: see docs/formats.md.
"""

from __future__ import annotations

import re

from judgelm.formats.base import Formatter, ParsedJudgment, Prompt, VerdictSpec, label_judgment, require
from judgelm.formats.official import pandalm_strip, parse_official
from judgelm.formats.rubrics import render_rubric
from judgelm.formats.scales import Scale, scale_for
from judgelm.types import Sample

__all__ = ["PandaLMFormat", "pandalm_prompt"]

EVALUATION = "### Evaluation:"


def pandalm_prompt(
    instruction: str, input: str | None, response1: str, response2: str, rubric: str | None = None
) -> str:
    """``build_pandalm_prompt(instruction, input, resp1, resp2)`` (no result: the inference
    prompt). ``rubric`` is judgelm's extension: a ``### Rubric`` block, not in upstream."""
    resp1, resp2 = pandalm_strip(response1), pandalm_strip(response2)
    rsp = f"### Response 1:\n{resp1}\n\n### Response 2:\n{resp2}"
    evaluate = "Evaluate the responses and generate a reference answer for the task."
    extra = ""
    if rubric is not None:
        evaluate = "Evaluate the responses according to the Rubric and generate a reference answer for the task."
        extra = f"### Rubric:\n{rubric}\n\n"
    if input:
        return (
            "Below are two responses for a given task. The task is defined by the Instruction with an Input that "
            f"provides further context. {evaluate}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
            f"{extra}{rsp}\n\n{EVALUATION}\n"
        )
    return (
        f"Below are two responses for a given task. The task is defined by the Instruction. {evaluate}\n\n"
        f"### Instruction:\n{instruction}\n\n{extra}{rsp}\n\n{EVALUATION}\n"
    )


class PandaLMFormat(Formatter):
    name = "pandalm"
    summary = "PandaLM-7B: two responses, verdict '1' | '2' | 'Tie' first, then reason and reference"
    swap_kind = "reverse"
    uses_input = True
    stop_strings = ("### Instruction:", EVALUATION)  # the task written again (the verdict has Reason, Reference)

    def validate(self, sample: Sample) -> None:
        require(not sample.conversations, f"{self.name} takes answers, not conversations", "conversations")
        require(len(sample.answers) == 2, f"{self.name} compares 2 answers, got {len(sample.answers)}", "answers")

    def _scale(self, sample: Sample) -> Scale:
        scale = scale_for(sample.scale, "1/2/Tie", "choice", self.name)
        require(len(scale.candidate_picks) == 2, f"{self.name} needs a scale that picks one of 2 responses", "scale")
        return scale

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        scale = self._scale(sample)
        rubric = None if sample.rubric is None else render_rubric(sample.rubric, criteria_only=True)
        text = pandalm_prompt(sample.question, sample.input, sample.answers[0], sample.answers[1], rubric)
        return text, VerdictSpec(n_scores=2, score_values=scale.labels, picks=scale.picks, terminator="\n")

    def parse(self, text: str, prompt: Prompt, *, official: bool = False) -> ParsedJudgment:
        spec = prompt.spec
        if official:
            # postprocess_output: the decoded prompt+output split at "### Evaluation:", [1]; an
            # instruction or response that contains that string makes upstream read the wrong part.
            output = pandalm_strip((prompt.text + text).strip().split(EVALUATION)[1])
            first = output.strip().split("\n")[0]
            found = parse_official(output, "pandalm")
            explanation = output.partition("\n")[2].strip()
            if found == 0 and first.lower() != "tie":
                return ParsedJudgment(
                    None, explanation, f"official parser: {first[:40]!r} is not 1, 2 or Tie", "unparseable"
                )
            label = {1: spec.score_values[spec.picks.index(0)], 2: spec.score_values[spec.picks.index(1)]}.get(found)
            if label is None:  # a tie
                if None not in spec.picks:
                    return ParsedJudgment(None, explanation, "a tie, which this scale does not allow", "out_of_range")
                label = spec.score_values[spec.picks.index(None)]
            return label_judgment(label, prompt, explanation)
        first, _, rest = pandalm_strip(text).partition("\n")
        word = re.sub(r"^(?:response\s+)|[\s.:!]+$", "", first.strip(), flags=re.I)
        labels = {v.lower(): v for v in spec.score_values}
        if word.lower() in labels:
            return label_judgment(labels[word.lower()], prompt, rest.strip())
        allowed = ", ".join(spec.score_values)
        code = "out_of_range" if word.lower() in ("1", "2", "tie") else "unparseable"
        return ParsedJudgment(None, rest.strip(), f"first line {first[:40]!r} is not one of {allowed}", code)
