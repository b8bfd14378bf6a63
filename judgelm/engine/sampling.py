"""Choosing each row's next token from its logits, the one place both local engines do it.

Greedy (``temperature`` 0, the default) is ``argmax`` over the logits, exactly as before. Sampling
draws from ``softmax(logits / temperature)`` restricted to the nucleus (the fewest most likely
tokens whose probability reaches ``top_p``), on the CPU, with one `torch.Generator` per row seeded
from ``(seed, the row's prompt)``: a row's samples do not depend on which rows share its batch, on
the device split or on an out-of-memory restart (the row restarts with a fresh generator and
repeats its tokens exactly, like greedy rows do).

With ``logprobs`` = k the chooser also reports each chosen token's log-probability and the k most
likely tokens under the model's own distribution (`TokenLogprobs`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

import torch
from torch import Tensor

from judgelm.engine.base import GenerationOptions, TokenLogprobs

__all__ = ["TokenChooser", "report_token", "row_seed"]


def report_token(options: GenerationOptions, index: int, token: int, info: TokenLogprobs | None) -> None:
    """Hand a chosen token to ``options.on_token`` and its log-probabilities to ``on_logprobs``."""
    if options.on_token is not None:
        options.on_token(index, token)
    if info is not None and options.on_logprobs is not None:
        options.on_logprobs(index, info)


def row_seed(seed: int, prompt: Sequence[int]) -> int:
    """A 63-bit generator seed from the request's ``seed`` and the row's prompt ids."""
    h = hashlib.blake2b(digest_size=8)
    h.update(int(seed).to_bytes(16, "little", signed=True))
    h.update(b"".join(int(t).to_bytes(4, "little", signed=False) for t in prompt))
    return int.from_bytes(h.digest(), "little") >> 1


class TokenChooser:
    """Next tokens for rows of a generation call (see the module docstring).

    ``start(row, prompt)`` (re)starts a row before its first token; ``choose(logits, rows)``
    picks the next token of each of ``rows`` from ``logits`` [len(rows), V] and returns them
    with their `TokenLogprobs` (None unless ``options.logprobs`` is set)."""

    def __init__(self, options: GenerationOptions):
        self.options = options
        self._generators: dict[int, torch.Generator] = {}

    def start(self, row: int, prompt: Sequence[int]) -> None:
        if self.options.greedy:
            return
        seed = self.options.seed
        g = torch.Generator()
        g.manual_seed(row_seed(seed, prompt) if seed is not None else secrets.randbits(63))
        self._generators[row] = g

    def choose(self, logits: Tensor, rows: Sequence[int]) -> tuple[list[int], list[TokenLogprobs] | None]:
        opts = self.options
        if opts.greedy:
            tokens = logits.argmax(-1).tolist()
        else:
            tokens = self._sample(logits, rows)
        if opts.logprobs is None:
            return tokens, None
        logp = torch.log_softmax(logits.float(), dim=-1)  # [n, V]
        chosen = logp.gather(1, torch.tensor(tokens, device=logp.device)[:, None])[:, 0].tolist()
        k = min(opts.logprobs, logp.shape[-1])
        top_v, top_i = logp.topk(k, dim=-1) if k else (logp[:, :0], logp[:, :0].long())
        infos = [
            TokenLogprobs(tok, lp, tuple(zip(ids, vals, strict=True)))
            for tok, lp, ids, vals in zip(tokens, chosen, top_i.tolist(), top_v.tolist(), strict=True)
        ]
        return tokens, infos

    def _sample(self, logits: Tensor, rows: Sequence[int]) -> list[int]:
        opts = self.options
        probs = torch.softmax(logits.float().cpu() / opts.temperature, dim=-1)  # [n, V]
        if opts.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            # keep a token while the mass before it is below top_p: the first token always stays
            drop = (sorted_p.cumsum(-1) - sorted_p) >= opts.top_p
            probs = probs.scatter(1, order, sorted_p.masked_fill(drop, 0.0))
        out = []
        for r, row in enumerate(rows):
            g = self._generators.get(row)
            if g is None:
                raise RuntimeError(f"row {row} was not started")
            out.append(int(torch.multinomial(probs[r], 1, generator=g)))
        return out
