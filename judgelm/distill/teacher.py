"""The teacher's prompt and the reading of its judgments.

The default prompt is the paper's GPT-4 prompt: the system sentence, then the question, the
(optional) reference answer and the two answers, then the ``[System]`` instruction asking for the
score line first and the explanation after it (JudgeLM repo, baaivision/JudgeLM
``judgelm/llm_judge/common.py`` at 0da7c221, ``conv_judge_pair`` / ``conv_judge_pair_w_reference``:
``system``, ``prompt_template``, ``prompt``). It is rendered by the ``pairwise`` format itself
(`judgelm.formats`), so the teacher sees the bytes JudgeLM judges are trained on: chat endpoints
get the system sentence as the system message and the rest as the user message; completions
endpoints and local models get the whole JudgeLM prompt, ending ``### Response:``.

A custom prompt (`TeacherPrompt.from_file`) is JSON ``{"system", "template",
"template_w_reference"}`` with the placeholders ``{question}``, ``{answer_1}``, ``{answer_2}``,
``{reference}`` (filled literally: braces in the inputs are safe).

A judgment must start with a line of two scores: read with the reference parser it is kept as
written; read only by the tolerant parser (``8, 9``, ``Scores: 8 9``) its first line is rewritten
to ``s1 s2`` (counted as repaired); unreadable, it is a parse failure, recorded with the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from judgelm.distill.models import TextRequest
from judgelm.formats import get_format
from judgelm.formats._judgelm import APPENDIX, SYSTEM
from judgelm.formats.parsing import parse_verdict_line
from judgelm.types import Sample

__all__ = ["Judgment", "TeacherPrompt", "read_judgment"]

_SLOTS = re.compile(r"\{(question|answer_1|answer_2|reference)\}")


def _paper_template(with_reference: bool) -> str:
    """The pairwise JudgeLM prompt between the system sentence and the appendix, with the
    placeholders where the inputs go."""
    sample = Sample("{question}", ("{answer_1}", "{answer_2}"), reference="{reference}" if with_reference else None)
    text = get_format("pairwise").render(sample).text
    assert text.startswith(SYSTEM + "\n") and text.endswith(APPENDIX)
    return text[len(SYSTEM) + 1 : -len(APPENDIX)]


@dataclass(frozen=True)
class TeacherPrompt:
    system: str
    template: str
    template_w_reference: str
    appendix: str = APPENDIX  # ends the plain-text form (completions, local models)

    @classmethod
    def paper(cls) -> TeacherPrompt:
        return cls(SYSTEM, _paper_template(False), _paper_template(True))

    @classmethod
    def from_file(cls, path: str | Path) -> TeacherPrompt:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        missing = [k for k in ("system", "template", "template_w_reference") if not isinstance(data.get(k), str)]
        if missing:
            raise ValueError(f"{path}: the teacher prompt needs string fields {missing}")
        return cls(data["system"], data["template"], data["template_w_reference"], data.get("appendix", APPENDIX))

    def request(self, question: str, answer_1: str, answer_2: str, reference: str | None = None) -> TextRequest:
        values = {"question": question, "answer_1": answer_1, "answer_2": answer_2, "reference": reference or ""}
        template = self.template if reference is None else self.template_w_reference
        user = _SLOTS.sub(lambda m: values[m.group(1)], template)
        messages = ({"role": "system", "content": self.system}, {"role": "user", "content": user})
        return TextRequest(messages, f"{self.system}\n{user}{self.appendix}")


@dataclass(frozen=True)
class Judgment:
    """A teacher judgment read back: ``text`` (JudgeLM training form) and ``score``, or why not."""

    text: str | None
    score: tuple[float, float] | None
    repaired: bool = False
    reason: str | None = None


def read_judgment(raw: str) -> Judgment:
    text = raw.lstrip(" \t\r\n")  # the judge writes its score line right after "### Response:"
    official = parse_verdict_line(text, 2, official=True)
    if official.scores is not None:
        return Judgment(text, official.scores)  # type: ignore[arg-type]
    tolerant = parse_verdict_line(text, 2)
    if tolerant.scores is None:
        return Judgment(None, None, reason=tolerant.reason)
    s1, s2 = tolerant.scores
    rest = text.split("\n", 1)[1] if "\n" in text else ""
    return Judgment(f"{s1:g} {s2:g}\n{rest}", (s1, s2), repaired=True)
