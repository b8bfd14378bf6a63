"""`HFEngine`: the portable engine, on any Hugging Face causal LM through its own forward.

One prefill per token-budget batch (left-padded), then either KV-cached decoding (text
verdicts, explanations) or a *tree step*: the verdict grammar's token trie fed in one forward pass
under a tree attention mask, reading hidden states at every trie node (logit scoring). Vision
judges (``embed_inputs``) run here.

Shapes: B = batch size, L = longest prompt in the batch, T = tree tokens, H = hidden size,
V = vocabulary.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import torch
from torch import Tensor

from judgelm.engine.base import (
    Capabilities,
    Engine,
    GenerationOptions,
    VerdictTree,
    embeds_images,
    model_facts,
    tree_logprobs,
)
from judgelm.engine.batching import plan_batches, restore_order
from judgelm.engine.sampling import TokenChooser, report_token

__all__ = ["HFEngine", "PrefillState"]


@dataclass
class PrefillState:
    """The KV cache of a left-padded batch of prompts, and what the next steps need."""

    cache: Any
    mask: Tensor  # [B, L] 1 = real token (left padding)
    last_pos: Tensor  # [B] position id of each prompt's last token
    last_hidden: Tensor | None  # [B, H] final hidden state at the last prompt token
    last_logits: Tensor | None  # [B, V] logits there (generation)


class HFEngine(Engine):
    """Batched prefill, decoding (greedy or sampled) and tree scoring. The batched call is the real one."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_tokens: int | None = None,
        max_batch_size: int = 64,
        reason: str = "built directly",
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.reason = reason
        self.facts = model_facts(model, tokenizer)
        self.capabilities = Capabilities(logits=True, images=embeds_images(model))
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens or (32_768 if self.device.type == "cuda" else 8_192)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @cached_property
    def cache_kwarg(self) -> str:
        """The forward's name for the KV cache (`cache` in new transformers, else `past_key_values`)."""
        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def batches(self, prompts: Sequence[Sequence[int]], extra_per_item: int) -> list[list[int]]:
        """Token-budget batches, costed padded (rows are left-padded to the longest)."""
        return plan_batches(
            [len(p) for p in prompts],
            max_tokens=self.max_batch_tokens,
            max_size=self.max_batch_size,
            extra_per_item=extra_per_item,
        )

    # ---- prefill ------------------------------------------------------------------------------
    def _input_kwargs(self, ids: Tensor, images: Sequence[Sequence[Tensor]] | None) -> dict[str, Tensor]:
        if images is not None and any(images):
            if not self.capabilities.images:
                raise ValueError("this model takes no images (it has no vision tower)")
            return {"inputs_embeds": self.model.embed_inputs(ids, images)}
        return {"input_ids": ids}

    @torch.inference_mode()
    def prefill(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        want: Literal["hidden", "logits"] = "hidden",
    ) -> PrefillState:
        """Run the prompts (left-padded) through the model, keeping the KV cache.

        ``want="hidden"``: last-position final hidden states, what the tree step starts from
        (logits when the model's head is not linear); ``"logits"``: last-position logits
        (decoding)."""
        from transformers import DynamicCache

        dev = self.device
        B, L = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((B, L), self.facts.pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for r, p in enumerate(prompts):  # left padding: every prompt ends at column L-1
            ids[r, L - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            mask[r, L - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        kwargs = {
            **self._input_kwargs(ids, images),
            "attention_mask": mask,
            "position_ids": positions,
            self.cache_kwarg: cache,
            "use_cache": True,
        }
        hidden = logits = None
        if want == "hidden" and self.facts.head is not None:
            hidden = self.model.get_decoder()(**kwargs).last_hidden_state[:, -1]  # [B, H]
        else:
            logits = self.model(**kwargs, logits_to_keep=1).logits[:, -1].float()  # [B, V]
        return PrefillState(cache, mask, positions[:, -1], hidden, logits)

    # ---- greedy decoding ----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: GenerationOptions,
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        """Continuations (without the prompt) of every prompt, in input order, one static
        batch per token budget (see `GenerationOptions` for where a row stops)."""
        batches = self.batches(prompts, options.max_new_tokens)
        results = []
        for batch in batches:
            imgs = None if images is None else [images[i] for i in batch]
            results.append(self._generate_batch(prompts, batch, imgs, options))
            if on_batch is not None:
                on_batch(len(batch))
        return restore_order(batches, results)  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(
        self, prompts: Sequence[Sequence[int]], batch: list[int], images: Any, options: GenerationOptions
    ) -> list[list[int]]:
        state = self.prefill([prompts[i] for i in batch], images=images, want="logits")
        dev, B = self.device, len(batch)
        logits, mask, pos = state.last_logits, state.mask, state.last_pos[:, None]
        assert logits is not None
        stop = torch.tensor(sorted(options.stop_ids(self.facts)), device=dev, dtype=torch.long)
        stop_strings = options.stop_strings_for(self.facts)
        rows: list[list[int]] = [[] for _ in range(B)]  # new tokens so far, on the host (stop strings)
        out = torch.empty((B, 0), dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        lengths = torch.zeros(B, dtype=torch.long, device=dev)
        chooser = TokenChooser(options)
        for i in batch:
            chooser.start(i, prompts[i])
        for _ in range(options.max_new_tokens):
            chosen, infos = chooser.choose(logits, batch)
            nxt = torch.where(done, self.facts.pad_id, torch.tensor(chosen, device=dev))  # [B]
            out = torch.cat([out, nxt[:, None]], dim=1)
            live: list[int] = []  # rows that wrote a token this step
            if options.on_token is not None or infos is not None or stop_strings is not None:
                for r, finished in enumerate(done.tolist()):
                    if not finished:
                        live.append(r)
                        rows[r].append(chosen[r])
                        report_token(options, batch[r], chosen[r], infos[r] if infos is not None else None)
            lengths += (~done).long()
            done |= torch.isin(nxt, stop)
            if stop_strings is not None:
                for r in live:
                    if stop_strings.hit(rows[r]):
                        done[r] = True
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=dev)], dim=1)
            pos = pos + 1
            logits = self.model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=pos,
                **{self.cache_kwarg: state.cache, "use_cache": True},
            ).logits[:, -1]
        return [out[r, : int(lengths[r])].tolist() for r in range(B)]

    # ---- tree step (logit scoring) ------------------------------------------------------------
    def tree_step(self, state: PrefillState, trees: Sequence[VerdictTree | None]) -> list[Tensor | None]:
        """`Engine.tree_step`: candidate log-probabilities at every node of every row's tree."""
        return tree_logprobs(self.tree_forward, state, trees, self.facts.head)

    @torch.inference_mode()
    def tree_forward(
        self,
        state: PrefillState,
        tokens: Sequence[Sequence[int]],
        parents: Sequence[Sequence[int]],
        depths: Sequence[Sequence[int]],
    ) -> Tensor:
        """Feed each row's token tree after its prompt; return the final hidden states at [root,
        node 1, ..., node T] of every row, [B, 1 + T, H] (logits [B, 1 + T, V] when
        ``facts.head`` is None: a head that is not linear).

        Node i (1-based) attends to its row's prompt, its ancestors and itself; siblings never see
        each other. ``parents`` index nodes (0 = root = the prompt's last token). Rows with fewer
        nodes are padded; padded nodes attend only to themselves. The cache is cropped back to
        the prompt afterwards, so several tree steps can follow one prefill.
        """
        dev = self.device
        B, L = state.mask.shape
        T = max((len(t) for t in tokens), default=0)
        linear = self.facts.head is not None
        root = state.last_hidden if linear else state.last_logits
        assert root is not None
        if T == 0:
            return root[:, None]
        ids = torch.full((B, T), self.facts.pad_id, dtype=torch.long)
        pos = torch.zeros((B, T), dtype=torch.long)
        allowed = torch.zeros((B, T, L + T), dtype=torch.bool)
        allowed[:, :, :L] = state.mask.bool().cpu()[:, None, :]
        for r, (toks, pars, deps) in enumerate(zip(tokens, parents, depths, strict=True)):
            n = len(toks)
            ids[r, :n] = torch.tensor(list(toks), dtype=torch.long)
            pos[r, :n] = torch.tensor(list(deps), dtype=torch.long)
            for i in range(n):  # ancestors of node i+1 (nodes are in topological order)
                allowed[r, i, L + i] = True
                p = pars[i]
                if p > 0:
                    allowed[r, i, L : L + T] |= allowed[r, p - 1, L : L + T]
            for i in range(n, T):  # padding attends to itself and the prompt only
                allowed[r, i, L + i] = True
        dtype = next(self.model.parameters()).dtype
        bias = torch.zeros(allowed.shape, dtype=dtype)
        bias.masked_fill_(~allowed, torch.finfo(dtype).min)
        kwargs = {
            "input_ids": ids.to(dev),
            "attention_mask": bias[:, None].to(dev),  # [B, 1, T, L+T] additive mask, used as is
            "position_ids": state.last_pos[:, None] + pos.to(dev),
            self.cache_kwarg: state.cache,
            "use_cache": True,
        }
        if linear:  # hidden states: the verdict head computes only the candidates' logits
            out = self.model.get_decoder()(**kwargs).last_hidden_state  # [B, T, H]
        else:  # a non-linear head (softcapping, scaling): full logits
            out = self.model(**kwargs).logits.float()  # [B, T, V]
        state.cache.crop(-T)  # drop the tree again (negative = tokens to remove, in every version)
        return torch.cat([root[:, None].to(out.dtype), out], dim=1)
