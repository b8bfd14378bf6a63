"""The judge engine on a Hugging Face causal LM: token-budget batches, one padded prefill, then
KV-cached greedy decoding of the few tokens a verdict needs (or an explanation).

Shapes: B = batch size, L = longest prompt in the batch, V = vocabulary.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import torch

from judgelm.engine.batching import plan_batches, restore_order

__all__ = ["HFEngine"]


class HFEngine:
    """Greedy generation for judging. The batched call is the real one."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_tokens: int | None = None, max_batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens or (32_768 if self.device.type == "cuda" else 8_192)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        limits = [getattr(self.model.config, "max_position_embeddings", None)]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and tok_max < 1_000_000:
            limits.append(tok_max)
        return min(x for x in limits if x) if any(limits) else 2048

    @cached_property
    def cache_kwarg(self) -> str:
        """The forward's name for the KV cache (`cache` in new transformers, else `past_key_values`)."""
        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    @cached_property
    def pad_id(self) -> int:
        for cand in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0):
            if cand is not None:
                return int(cand)
        return 0

    @cached_property
    def eos_ids(self) -> frozenset[int]:
        ids = set()
        for src in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif isinstance(src, list | tuple):
                ids.update(int(x) for x in src)
        return frozenset(ids)

    @cached_property
    def newline_ids(self) -> torch.Tensor:
        """Bool mask [V]: tokens whose text contains a newline (the 'fast eval' stop)."""
        vocab = self.model.get_output_embeddings().weight.shape[0]
        n_tok = len(self.tokenizer)
        texts = self.tokenizer.batch_decode([[i] for i in range(min(vocab, n_tok))])
        mask = torch.zeros(vocab, dtype=torch.bool)
        for i, t in enumerate(texts):
            if "\n" in t:
                mask[i] = True
        return mask.to(self.device)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_at_newline: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        """Greedy continuations (without the prompt) of every prompt, in input order. A row stops
        at EOS (kept), at a token holding a newline when ``stop_at_newline`` (kept), or after
        ``max_new_tokens``."""
        batches = plan_batches(
            [len(p) for p in prompts],
            max_tokens=self.max_batch_tokens,
            max_size=self.max_batch_size,
            extra_per_item=max_new_tokens,
        )
        results = []
        for batch in batches:
            results.append(self._generate_batch([prompts[i] for i in batch], max_new_tokens, stop_at_newline))
            if on_batch is not None:
                on_batch(len(batch))
        return restore_order(batches, results)  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(
        self, prompts: list[Sequence[int]], max_new_tokens: int, stop_at_newline: bool
    ) -> list[list[int]]:
        from transformers import DynamicCache

        dev = self.device
        B, L = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for r, p in enumerate(prompts):  # left padding: every row ends at column L-1
            ids[r, L - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, L - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        kv = {self.cache_kwarg: cache, "use_cache": True}
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1, **kv).logits[
            :, -1
        ]  # [B, V]
        eos = torch.tensor(sorted(self.eos_ids), device=dev, dtype=torch.long)
        out = torch.empty((B, 0), dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        lengths = torch.zeros(B, dtype=torch.long, device=dev)
        pos = positions[:, -1:]
        for _ in range(max_new_tokens):
            nxt = logits.argmax(-1)  # [B]
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            out = torch.cat([out, nxt[:, None]], dim=1)
            lengths += (~done).long()
            stop = torch.isin(nxt, eos)
            if stop_at_newline:
                stop |= self.newline_ids[nxt]
            done |= stop
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=dev)], dim=1)
            pos = pos + 1
            logits = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, **kv).logits[:, -1]
        return [out[r, : int(lengths[r])].tolist() for r in range(B)]
