"""From verdicts to scalar rewards, and from trainer-shaped inputs to judge inputs.

Shared by the TRL, veRL and OpenRLHF adapters so that every trainer sees the same numbers:

- a graded answer's reward is its score (``Verdict.scores``: expected scores under
  ``scoring="logits"``, parsed scores under ``"text"``);
- a pairwise-against-reference reward is the margin ``score(answer) - score(reference)``;
- an abstained verdict has no reward (``None``): adapters whose trainer needs a number use an
  explicit, documented stand-in and report the abstention beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from judgelm.types import Verdict

__all__ = [
    "candidate_reward",
    "completion_text",
    "margin_reward",
    "prompt_question",
    "reference_text",
    "score_range_of",
    "to_unit",
]


def candidate_reward(verdict: Verdict, index: int = 0) -> float | None:
    """The score of candidate ``index`` (0-based, the sample's order); None on an abstain."""
    if verdict.abstained or verdict.scores is None or index >= len(verdict.scores):
        return None
    return float(verdict.scores[index])


def margin_reward(verdict: Verdict) -> float | None:
    """``score(answer 0) - score(answer 1)``: > 0 when the policy's answer beat the reference."""
    if verdict.abstained or verdict.scores is None or len(verdict.scores) != 2:
        return None
    return float(verdict.scores[0] - verdict.scores[1])


def score_range_of(verdict: Verdict | None, fallback: tuple[float, float]) -> tuple[float, float]:
    """The range a verdict's scores live in: its format's own scale (``Provenance.score_range``:
    1-5 for Prometheus, 0-1 for a choice), else ``fallback`` (a verdict that never reached a
    format, or an older serialised one)."""
    found = verdict.provenance.score_range if verdict is not None else None
    return tuple(found) if found is not None else fallback  # type: ignore[return-value]


def to_unit(value: float, score_range: tuple[float, float], *, margin: bool = False) -> float:
    """Map a score (or a margin) onto [0, 1] (the scale OpenRLHF's ``scores`` and many GRPO
    recipes expect): ``lo -> 0, hi -> 1``; a margin ``-(hi-lo) -> 0, 0 -> 0.5, hi-lo -> 1``."""
    lo, hi = score_range
    span = (hi - lo) or 1.0
    unit = (value + span) / (2 * span) if margin else (value - lo) / span
    return min(1.0, max(0.0, unit))


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a multimodal part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type", "text") == "text")
    return "" if content is None else str(content)


def completion_text(completion: Any) -> str:
    """A TRL completion as the answer text: a string as is; a conversational completion (a list
    of message dicts) as its assistant messages' text, joined by blank lines."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content"))
    if isinstance(completion, Sequence):
        parts = [
            _content_text(m.get("content"))
            for m in completion
            if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"
        ]
        return "\n\n".join(p for p in parts if p)
    raise TypeError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


def prompt_question(prompt: Any) -> str:
    """A TRL prompt as the judge's question.

    A string is used verbatim. A conversation (a list of message dicts) with a single user
    message becomes that message's text (system messages are the policy's instructions, not part
    of the question); a longer conversation becomes
    ``"User: ...\\n\\nAssistant: ...\\n\\nUser: ..."`` so the judge sees the context the final
    answer responds to."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence):
        raise TypeError(f"a prompt must be a string or a list of messages, got {type(prompt).__name__}")
    turns = [m for m in prompt if isinstance(m, Mapping) and m.get("role") != "system"]
    if len(turns) == 1:
        return _content_text(turns[0].get("content"))
    return "\n\n".join(f"{str(m.get('role', 'user')).capitalize()}: {_content_text(m.get('content'))}" for m in turns)


def reference_text(value: Any) -> str | None:
    """A dataset's gold answer as text (numbers and structures written out); None/"" -> None.
    NumPy values (veRL reads its parquet columns into NumPy arrays) count as their Python ones."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(value, ensure_ascii=False)
