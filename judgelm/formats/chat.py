"""``chat``: judging multi-turn conversations (judgelm's own mode; the reference code had none).

Design, after MT-Bench's multi-turn judge prompts, in JudgeLM's words and grammar: each
assistant's whole conversation with the same user is shown in its own block, the instruction asks
for the answers to the user's *final* question in the light of the whole conversation, and the
verdict is the usual first line of scores ("s1 s2"; "s" for one conversation).

    <SYSTEM>
    [Reference Answer]                       (optional: a reference for the final user turn)
    ...
    [The Start of Assistant 1's Conversation with User]

    ### User:
    <turn 1>

    ### Assistant 1:
    <turn 2>

    ...
    [The End of Assistant 1's Conversation with User]

    [The Start of Assistant 2's Conversation with User]
    ...
    [System]
    <instruction(n, chat=True)>

    ### Response:

Every conversation starts with a user turn, alternates, and ends with an assistant turn; compared
conversations must share the same user turns. Truncation shortens assistant turns, latest last.
"""

from __future__ import annotations

from collections.abc import Sequence

from judgelm.formats._judgelm import (
    APPENDIX,
    SYSTEM,
    instruction,
    judgelm_rubric,
    judgelm_scale,
    reference_block,
    score_spec,
)
from judgelm.formats.base import Formatter, VerdictSpec, require
from judgelm.types import Sample, Turn


def conversation_block(k: int, conversation: Sequence[Turn]) -> str:
    turns = "".join(
        f"### User:\n{t.content}\n\n" if t.role == "user" else f"### Assistant {k}:\n{t.content}\n\n"
        for t in conversation
    )
    return (
        f"[The Start of Assistant {k}'s Conversation with User]\n\n{turns}"
        f"[The End of Assistant {k}'s Conversation with User]\n\n"
    )


class ChatFormat(Formatter):
    name = "chat"
    summary = "multi-turn conversations: compare 2+ assistants with the same user, or grade 1"
    swap_kind = "reverse"
    stop_strings = (APPENDIX,)  # the template written again

    def orders(self, sample: Sample, swap: bool = False) -> tuple[tuple[int, ...], ...]:
        if swap and len(sample.conversations) > 2:
            from judgelm.swap import swap_orders

            return swap_orders(len(sample.conversations), "cyclic")
        return super().orders(sample, swap)

    def validate(self, sample: Sample) -> None:
        convs = sample.conversations
        require(len(convs) >= 1, "chat needs `conversations` (one per assistant)", "conversations")
        require(not sample.answers, "chat takes conversations; put answers in assistant turns", "answers")
        for k, conv in enumerate(convs):
            field = f"conversations[{k}]"
            require(len(conv) >= 2, "a conversation needs a user turn and an assistant reply", field)
            for i, turn in enumerate(conv):
                expected = "user" if i % 2 == 0 else "assistant"
                require(
                    turn.role == expected, f"turn {i} must be {expected!r}, got {turn.role!r}", f"{field}[{i}].role"
                )
            require(conv[-1].role == "assistant", "must end with an assistant turn", field)
        users = [tuple(t.content for t in conv if t.role == "user") for conv in convs]
        for k, u in enumerate(users[1:], start=1):
            require(u == users[0], "compared conversations must share the same user turns", f"conversations[{k}]")

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        n = len(sample.conversations)
        scale = judgelm_scale(sample, self.name)
        rate = instruction(n, chat=True, scale=scale, rubric=judgelm_rubric(sample, scale))
        blocks = "".join(conversation_block(k, conv) for k, conv in enumerate(sample.conversations, start=1))
        text = f"{SYSTEM}\n{reference_block(sample.reference)}{blocks}[System]\n{rate}\n\n{APPENDIX}"
        return text, score_spec(n, scale)

    def shortenable(self, sample: Sample) -> list[str]:
        return [t.content for conv in sample.conversations for t in conv if t.role == "assistant"]

    def with_shortened(self, sample: Sample, texts: Sequence[str]) -> Sample:
        it = iter(texts)
        convs = tuple(
            tuple(Turn(t.role, next(it)) if t.role == "assistant" else t for t in conv) for conv in sample.conversations
        )
        return sample.replace(conversations=convs)
