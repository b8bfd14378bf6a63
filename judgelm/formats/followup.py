"""Follow-up turns after a verdict (`Judge.discuss`), as the JudgeLM demo renders them
(baaivision/JudgeLM, commit 636c5c7):

- ``judgelm/conversation.py``, ``Conversation.get_prompt``: when the first message holds
  ``### Response:`` (a judge prompt), the ``ADD_COLON_TWO`` branch returns that prompt, then the
  verdict, then each later message as ``role + ": " + message + seps[i % 2]`` and the open turn
  as ``role + ":"`` — template ``vicuna_v1.1``: roles ``USER``/``ASSISTANT``, ``" "`` after a user
  turn, ``"</s>"`` after an assistant turn. Nothing separates the verdict from the first ``USER:``.
- ``judgelm/serve/gradio_web_server_judgelm.py``, ``bot_response_v2``: the verdict (and every
  reply) kept in the conversation is the judge's text stripped (``data["text"].strip()``).
"""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.types import Turn, Verdict

__all__ = ["NEXT_TURN", "REPLY_MARKER", "followup_context", "followup_prompt", "score_line"]

NEXT_TURN = "USER:"  # the judge writing the user's next turn: its reply is over
REPLY_MARKER = "ASSISTANT:"  # a reply that starts by naming its own turn again


def followup_context(prompt: str, verdict_text: str) -> str:
    """The judge prompt followed by its verdict as the demo keeps it (stripped)."""
    return prompt + verdict_text.strip()


def followup_prompt(context: str, turns: Sequence[Turn], message: str, eos: str) -> str:
    """The text the judge continues: ``context`` (`followup_context`), the earlier
    (user, assistant) ``turns`` each closed by ``eos``, then ``message`` and an open assistant turn."""
    pairs = zip(turns[::2], turns[1::2], strict=True)
    history = "".join(f"USER: {u.content} ASSISTANT: {a.content}{eos}" for u, a in pairs)
    return f"{context}{history}USER: {message} ASSISTANT:"


def score_line(verdict: Verdict) -> str:
    """The most likely score line of a logit verdict, as the judge would have written it."""
    return " ".join(f"{d.mode:g}" for d in verdict.distributions or ())
