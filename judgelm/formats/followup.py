"""Follow-up turns after a verdict (`Judge.discuss`): the judge sees its own prompt and verdict,
one space, then Vicuna v1.1 turns as the JudgeLM demo renders them (baaivision/JudgeLM, commit
636c5c7, ``judgelm/conversation.py``: template ``vicuna_v1.1``, ``SeparatorStyle.ADD_COLON_TWO``,
roles ``USER``/``ASSISTANT``, ``" "`` after a user turn, ``"</s>"`` after an assistant turn)."""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.types import Turn, Verdict

__all__ = ["followup_prompt", "score_line"]


def followup_prompt(context: str, turns: Sequence[Turn], message: str, eos: str) -> str:
    """The text the judge continues: ``context`` (its prompt + verdict), the earlier
    (user, assistant) ``turns`` each closed by ``eos``, then ``message`` and an open assistant turn."""
    pairs = zip(turns[::2], turns[1::2], strict=True)
    history = "".join(f"USER: {u.content} ASSISTANT: {a.content}{eos}" for u, a in pairs)
    return f"{context} {history}USER: {message} ASSISTANT:"


def score_line(verdict: Verdict) -> str:
    """The most likely score line of a logit verdict, as the judge would have written it."""
    if not verdict.distributions:
        return ""
    line = " ".join(f"{d.mode:g}" for d in verdict.distributions)
    return (" " if verdict.prompt and verdict.prompt.endswith("10") else "") + line + "\n"
