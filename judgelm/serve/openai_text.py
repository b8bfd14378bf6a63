"""The two log-probability layouts of the OpenAI routes (token texts from
`judgelm.modalities.detokenize`):

- completions: ``{"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}``
  (``top_logprobs`` holds the chosen token and the k most likely, like vLLM);
- chat: ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}``.

Log-probabilities go on the wire floored at -9999.0 (OpenAI's value for "very unlikely"; -inf is
not JSON). With vLLM's ``return_tokens_as_token_ids`` tokens are written ``token_id:N``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from judgelm.engine.base import TokenLogprobs
from judgelm.modalities.detokenize import added_text

__all__ = ["chat_logprobs", "completion_logprobs", "wire_logprob"]


def wire_logprob(value: float) -> float:
    return -9999.0 if math.isnan(value) else max(value, -9999.0)


def _token_name(tokenizer: Any, token: int, before: Sequence[int], as_ids: bool) -> str:
    return f"token_id:{token}" if as_ids else added_text(tokenizer, before, token)


def completion_logprobs(
    tokenizer: Any,
    ids: Sequence[int],
    infos: Sequence[TokenLogprobs | None],
    pieces: Sequence[str],
    *,
    context: Sequence[int] = (),
    offset: int = 0,
    as_ids: bool = False,
) -> dict[str, Any]:
    """The completions ``logprobs`` object for ``ids`` (``infos[i]`` None: no log-probability,
    the first prompt token), ``pieces`` their texts, text offsets from ``offset``."""
    tokens, token_lps, tops, offsets = [], [], [], []
    before = list(context)
    for token, info, piece in zip(ids, infos, pieces, strict=True):
        tokens.append(f"token_id:{token}" if as_ids else piece)
        offsets.append(offset)
        offset += len(piece)
        if info is None:
            token_lps.append(None)
            tops.append(None)
        else:
            token_lps.append(wire_logprob(info.logprob))
            top = {tokens[-1]: wire_logprob(info.logprob)}
            for t, lp in info.top:
                top.setdefault(_token_name(tokenizer, t, before, as_ids), wire_logprob(lp))
            tops.append(top)
        before.append(token)
    return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": wire_logprob(logprob), "bytes": list(token.encode("utf-8", errors="replace"))}


def chat_logprobs(
    tokenizer: Any,
    ids: Sequence[int],
    infos: Sequence[TokenLogprobs],
    pieces: Sequence[str],
    *,
    context: Sequence[int] = (),
    as_ids: bool = False,
) -> dict[str, Any]:
    """The chat ``logprobs`` object (``{"content": [...]}``) for generated ``ids``."""
    content = []
    before = list(context)
    for token, info, piece in zip(ids, infos, pieces, strict=True):
        entry = _entry(f"token_id:{token}" if as_ids else piece, info.logprob)
        entry["top_logprobs"] = [_entry(_token_name(tokenizer, t, before, as_ids), lp) for t, lp in info.top]
        content.append(entry)
        before.append(token)
    return {"content": content}
