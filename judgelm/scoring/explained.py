"""Logit scoring for explain-first grammars (Prometheus: feedback, then ``[RESULT] <label>``).

The judge first writes its feedback (greedy generation, done by the caller). Each continuation is
cut right after its first verdict marker; the prompt plus that feedback is then scored like any
prompt — one batched prefill and one tree step over the allowed ``lead + label + EOS`` lines — so
the verdict is the judge's probability of every allowed result at the result slot, not a parse of
the one it happened to write. A continuation without the marker gets no scores and says why
(ended its text, or ran out of tokens): an abstention with its reason, never a retry loop.

The prompt + feedback is prefilled again rather than reusing the generation's KV cache: the
engines free their cache when generation returns. The extra prefill is one parallel pass over
tokens the engine has just processed one at a time (see benchmarks/explain_first.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from judgelm.engine.base import RowFailure
from judgelm.modalities.text import EncodedPrompt, encode
from judgelm.scoring.grammar import SlotStrategy
from judgelm.scoring.scorer import PromptScores, score_prompts

__all__ = ["ExplainedScores", "cut_at_marker", "score_explained"]


@dataclass(frozen=True)
class ExplainedScores:
    """One explain-first prompt read back: the feedback (text before the marker, or all the text
    when there is none) and the verdict distribution at the result slot, or why there is none."""

    feedback: str
    scores: PromptScores | RowFailure | None
    reason: str | None = None


def cut_at_marker(tokenizer: Any, generated: Sequence[int], marker: str) -> tuple[int, str] | None:
    """(k, text): the fewest generated tokens whose decoded text holds ``marker``, and that text
    cut right after the marker's first occurrence; ``None`` when the marker never appears."""
    ids = list(generated)
    decode = lambda n: tokenizer.decode(ids[:n], skip_special_tokens=True)  # noqa: E731
    if marker not in decode(len(ids)):
        return None
    lo, hi = 1, len(ids)  # the marker is in decode(ids[:hi]); find the smallest such prefix
    while lo < hi:
        mid = (lo + hi) // 2
        if marker in decode(mid):
            hi = mid
        else:
            lo = mid + 1
    text = decode(hi)
    return hi, text[: text.index(marker) + len(marker)]


def _continued(tokenizer: Any, prompt: EncodedPrompt, generated: Sequence[int], k: int, text: str) -> EncodedPrompt:
    """The prompt followed by the judge's feedback up to its marker: the generated ids when the
    marker ends on a token boundary, else the text re-encoded (the token completing the marker
    carried more text, e.g. ``]:``)."""
    feedback_prompt = dataclasses.replace(prompt.prompt, text=prompt.prompt.text + text)
    if tokenizer.decode(list(generated[:k]), skip_special_tokens=True) == text:
        return EncodedPrompt(feedback_prompt, (*prompt.input_ids, *generated[:k]), prompt.truncation)
    return EncodedPrompt(feedback_prompt, tuple(encode(tokenizer, feedback_prompt.text)), prompt.truncation)


def _missing(tokenizer: Any, generated: Sequence[int], marker: str, max_new_tokens: int) -> str:
    ended = bool(generated) and generated[-1] == getattr(tokenizer, "eos_token_id", None)
    how = "ended its text" if ended else f"stopped at max_new_tokens={max_new_tokens}"
    return f"the judge wrote {len(generated)} tokens without {marker!r} ({how})"


def score_explained(
    engine: Any,
    tokenizer: Any,
    prompts: Sequence[EncodedPrompt],
    generated: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    strategy: SlotStrategy = "auto",
    on_batch: Callable[[int], None] | None = None,
) -> list[ExplainedScores]:
    """Verdict distributions at the result slot of every explain-first prompt, in input order;
    ``generated`` are the judge's continuations (token ids, EOS kept)."""
    out: list[ExplainedScores | None] = [None] * len(prompts)
    todo: list[tuple[int, str, EncodedPrompt]] = []
    for i, (prompt, ids) in enumerate(zip(prompts, generated, strict=True)):
        marker = prompt.prompt.spec.marker
        assert marker is not None, "score_explained needs an explain-first grammar"
        cut = cut_at_marker(tokenizer, ids, marker)
        if cut is None:
            text = tokenizer.decode(list(ids), skip_special_tokens=True)
            out[i] = ExplainedScores(text.strip(), None, _missing(tokenizer, ids, marker, max_new_tokens))
            continue
        k, text = cut
        todo.append((i, text[: -len(marker)].strip(), _continued(tokenizer, prompt, ids, k, text)))
    if todo:
        scored = score_prompts(engine, tokenizer, [c for _, _, c in todo], strategy=strategy, on_batch=on_batch)
        for (i, feedback, _), res in zip(todo, scored, strict=True):
            out[i] = ExplainedScores(feedback, res)
    return out  # type: ignore[return-value]
