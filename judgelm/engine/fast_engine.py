"""`FastEngine`: the judge engine on the compact Llama-family forward (`judgelm.engine.llama`).

Same interface as `HFEngine` (the scorer and `Judge` cannot tell them apart), different insides:

- **prefill** packs the batch's prompts into one row of tokens (no padding) and writes their K/V
  into a slot cache, one row per prompt (`kv_cache`); prompts sharing a long prefix get it
  computed once (`fast_prefix`). The last layer runs only at each prompt's last token.
- **tree_forward** feeds every row's verdict tree at once under the tree mask, attending to the
  cached prompt; the tree's K/V land after the prompt and are not counted, so the row is intact
  for the next tree step (greedy multi-slot scoring runs several).
- **generate** is continuous batching over a static slot cache (`fast_decode`).
- **memory**: the token budget comes from free device memory (KV + activations per token); a
  CUDA out-of-memory error splits the work in halves and retries (never losing or repeating a
  row), and lowers the budget for later batches.

Model facts (EOS ids, pad id, newline tokens, context length) are the `HFEngine`'s, kept inside.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import torch
from torch import Tensor

from judgelm.engine.batching import plan_batches
from judgelm.engine.fast_decode import ContinuousBatcher
from judgelm.engine.fast_prefix import plan_prefix_batches, shared_prefix_groups
from judgelm.engine.hf import HFEngine
from judgelm.engine.kv_cache import KVCache, extend_step, token_budget, tree_step
from judgelm.engine.llama import FastLlama

__all__ = ["FastEngine", "FastState"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Token budget caps: beyond ~32k packed tokens a 7B's GEMMs are no faster, and the KV cache of
# the batch (512 KB a token for a 7B in bf16) is what fills the memory.
_CUDA_TOKEN_CAP = 32_768
_CPU_TOKEN_CAP = 8_192
# Cache positions kept free after each prompt for the verdict tree (a joint pairwise tree is 120
# tokens with the LLaMA tokenizer; bigger trees widen the cache once).
_TREE_RESERVE = 136


@dataclass
class _Part:
    """Prompts whose K/V share one cache: slot ``i`` holds prompt ``rows[i]``."""

    rows: list[int]
    cache: KVCache
    lengths: list[int]
    finite: list[int]  # per slot: positions [0, finite) hold written (finite) values

    def clean(self, tree: int) -> None:
        """Zero what a tree step of ``tree`` nodes reads but nobody wrote: the masked attention
        reads every row up to the longest prompt + ``tree``, and masked-out garbage can be NaN
        (NaN * 0 = NaN). Batches are sorted by length, so this is a few positions per row."""
        need = max(self.lengths) + tree
        for slot, (n, done) in enumerate(zip(self.lengths, self.finite, strict=True)):
            start = max(done, n + tree)  # the tree itself writes [n, n + tree)
            if start < need:
                self.cache.k[:, slot, start:need] = 0
                self.cache.v[:, slot, start:need] = 0
            self.finite[slot] = max(done, need)


@dataclass
class FastState:
    """What `FastEngine.prefill` returns: the prompts' caches and last-position outputs (input order)."""

    parts: list[_Part]
    last_pos: Tensor  # [B] position of each prompt's last token
    last_hidden: Tensor | None  # [B, H] final-norm hidden state there
    last_logits: Tensor | None  # [B, V] fp32 logits there (want="logits")


class FastEngine:
    """Packed prefill, tree scoring and continuous-batching generation for Llama-family models.

    ``attention`` forces a backend (see `judgelm.engine.attention`); ``compile`` / ``cuda_graphs``
    default to on for CUDA; ``min_shared_prefix`` is the shortest common prefix worth sharing."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_tokens: int | None = None,
        max_batch_size: int | None = None,
        attention: str | None = None,
        compile: bool | None = None,
        cuda_graphs: bool | None = None,
        min_shared_prefix: int = 32,
        max_decode_slots: int = 256,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.hf = HFEngine(model, tokenizer, max_batch_tokens=max_batch_tokens)
        self.fast = FastLlama(model, attention=attention, compile=compile)
        cuda = self.device.type == "cuda"
        self.token_cap = max_batch_tokens or (_CUDA_TOKEN_CAP if cuda else _CPU_TOKEN_CAP)
        self.max_batch_size = max_batch_size or (256 if cuda else 64)
        self.cuda_graphs = cuda if cuda_graphs is None else cuda_graphs
        self.min_shared_prefix = min_shared_prefix
        self.max_decode_slots = max_decode_slots
        self.fault_injector: Callable[[str, int], None] | None = None  # tests: raise OOM on purpose
        self._oom_budget: int | None = None  # lowered after an out-of-memory split

    # ---- model facts ----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.fast.device

    @property
    def attention_backend(self) -> str:
        return self.fast.backend.name

    @property
    def context_length(self) -> int:
        limit = self.hf.context_length
        return min(limit, self.fast.window) if self.fast.window else limit

    @property
    def pad_id(self) -> int:
        return self.hf.pad_id

    @property
    def eos_ids(self) -> frozenset[int]:
        return self.hf.eos_ids

    @property
    def newline_ids(self) -> Tensor:
        return self.hf.newline_ids

    @cached_property
    def linear_head(self) -> tuple[Tensor, Tensor | None]:
        return self.fast.head_weight, self.fast.head_bias

    # ---- memory -------------------------------------------------------------------------------
    @property
    def max_batch_tokens(self) -> int:
        """Packed tokens per batch: the cap, the free memory, and what the last OOM allowed."""
        per_token = self.fast.kv_bytes_per_token() + self.fast.activation_bytes_per_token()
        budget = token_budget(self.device, per_token, cap=self.token_cap)
        return min(budget, self._oom_budget) if self._oom_budget else budget

    def decode_slots(self, width: int, waiting: int) -> int:
        """Cache rows for continuous batching, rows ``width`` tokens wide: what fits in free
        memory beside a refill prefill of a full token budget."""
        cap = min(waiting, self.max_decode_slots if self.device.type == "cuda" else self.max_batch_size)
        if self.device.type != "cuda":
            return max(1, cap)
        free, _ = torch.cuda.mem_get_info(self.device)
        refill = self.max_batch_tokens * self.fast.activation_bytes_per_token()
        fit = int((free * 0.85 - refill) // (width * self.fast.kv_bytes_per_token()))
        return max(1, min(cap, fit))

    def _fault(self, kind: str, n: int) -> None:
        if self.fault_injector is not None:
            self.fault_injector(kind, n)

    def _free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _split_on_oom(
        self, kind: str, items: list[int], cost: Callable[[list[int]], int], fn: Callable[[list[int]], T]
    ) -> list[tuple[list[int], T]]:
        """``[(items, fn(items))]``, or on out-of-memory the same for each half, recursively.
        Every item is in exactly one returned piece; a single item that does not fit raises."""
        try:
            self._fault(kind, len(items))
            return [(items, fn(items))]
        except torch.OutOfMemoryError:
            if len(items) == 1:
                raise
        self._free()  # outside the except block: the traceback no longer pins the batch's tensors
        half = len(items) // 2
        self._oom_budget = max(1, cost(items[:half]))
        log.warning("judgelm: out of memory on %d rows (%s); splitting and retrying", len(items), kind)
        return self._split_on_oom(kind, items[:half], cost, fn) + self._split_on_oom(kind, items[half:], cost, fn)

    # ---- batching -------------------------------------------------------------------------
    def batches(
        self, lengths: Sequence[int], extra_per_item: int, *, prompts: Sequence[Sequence[int]] | None = None
    ) -> list[list[int]]:
        """Packed token-budget batches (no padding cost). With ``prompts``, shared-prefix groups
        stay in one batch and their prefix is costed once."""
        budget, size = self.max_batch_tokens, self.max_batch_size
        if prompts is not None:
            return plan_prefix_batches(
                prompts,
                max_tokens=budget,
                max_size=size,
                extra_per_item=extra_per_item,
                min_length=self.min_shared_prefix,
            )
        return plan_batches(lengths, max_tokens=budget, max_size=size, extra_per_item=extra_per_item, padded=False)

    # ---- prefill --------------------------------------------------------------------------
    def fill(self, cache: KVCache, items: Sequence[tuple[int, Sequence[int]]]) -> Tensor:
        """Prefill ``(slot, tokens)`` items (slots increasing) into ``cache``; returns each item's
        final-norm hidden state at its last token, [R, H]. Shared prefixes are computed once."""
        prompts = [t for _, t in items]
        start = [0] * len(items)
        groups = shared_prefix_groups(prompts, min_length=self.min_shared_prefix)
        if groups:  # each group's prefix once, into its first member's row, then copied
            leaders = sorted((items[g.members[0]][0], 0, prompts[g.members[0]][: g.length]) for g in groups)
            self.fast.forward(extend_step(leaders, cache.width, self.device), cache.k, cache.v)
            for g in groups:
                cache.copy_prefix(items[g.members[0]][0], [items[m][0] for m in g.members[1:]], g.length)
                for m in g.members:
                    start[m] = g.length
        rows = [(slot, s, list(tokens[s:])) for (slot, tokens), s in zip(items, start, strict=True)]
        return self.fast.forward(extend_step(rows, cache.width, self.device), cache.k, cache.v)

    def new_cache(self, slots: int, width: int, *, zeroed: bool = False) -> KVCache:
        """Cache rows for ``slots`` prompts of up to ``width`` tokens; ``zeroed`` when masked
        attention may read positions nobody wrote (decoding)."""
        f = self.fast
        return KVCache.empty(f.n_layers, slots, width, f.n_kv_heads, f.head_dim, f.dtype, self.device, zeroed=zeroed)

    @torch.inference_mode()
    def prefill(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        want: str = "logits",
    ) -> FastState:
        """Prefill the prompts (packed); ``want="logits"``: last-position logits [B, V],
        ``"hidden"``: last-position final hidden states [B, H] (for the verdict head)."""
        if images is not None and any(images):
            raise ValueError("FastEngine runs text-only models; image prompts need HFEngine (see make_engine)")
        if not prompts:
            raise ValueError("no prompts")
        lengths = [len(p) for p in prompts]
        if min(lengths) == 0:
            raise ValueError("an empty prompt")
        self.fast.ensure_positions(max(lengths) + _TREE_RESERVE)

        def run(rows: list[int]) -> tuple[KVCache, Tensor]:
            cache = self.new_cache(len(rows), max(lengths[r] for r in rows) + _TREE_RESERVE)
            return cache, self.fill(cache, [(i, prompts[r]) for i, r in enumerate(rows)])

        pieces = self._split_on_oom("prefill", list(range(len(prompts))), lambda rs: sum(lengths[r] for r in rs), run)
        hidden = torch.empty((len(prompts), self.fast.hidden), dtype=self.fast.dtype, device=self.device)
        parts = []
        for rows, (cache, h) in pieces:
            hidden[torch.tensor(rows, device=self.device)] = h
            parts.append(_Part(rows, cache, [lengths[r] for r in rows], [lengths[r] for r in rows]))
        last_pos = torch.tensor(lengths, device=self.device) - 1
        if want == "hidden":
            return FastState(parts, last_pos, hidden, None)
        return FastState(parts, last_pos, hidden, self.fast.logits(hidden))

    # ---- tree step ------------------------------------------------------------------------
    @torch.inference_mode()
    def tree_forward(
        self,
        state: FastState,
        tokens: Sequence[Sequence[int]],
        parents: Sequence[Sequence[int]],
        depths: Sequence[Sequence[int]],
    ) -> Tensor:
        """Hidden states at [root, node 1, ..., node T] of every row's tree: [B, 1 + T, H]
        (see `HFEngine.tree_forward`; rows with fewer nodes are padded). The cache rows keep
        only their prompts, so tree steps may repeat."""
        root = state.last_hidden
        assert root is not None
        t = max((len(x) for x in tokens), default=0)
        if t == 0:
            return root[:, None]
        out = torch.zeros((root.shape[0], 1 + t, root.shape[1]), dtype=root.dtype, device=self.device)
        out[:, 0] = root
        for part in state.parts:
            if max(part.lengths) + t > part.cache.width:
                part.cache = part.cache.widened(max(part.lengths) + t)
            part.clean(t)

            def run(slots: list[int], part: _Part = part) -> Tensor:
                rows = [part.rows[s] for s in slots]
                step = tree_step(
                    slots[0],
                    [part.lengths[s] for s in slots],
                    [tokens[r] for r in rows],
                    [parents[r] for r in rows],
                    [depths[r] for r in rows],
                    part.cache.width,
                    self.pad_id,
                    self.device,
                    nodes=t,  # every row padded to t nodes: what `_Part.clean` expects written
                )
                return self.fast.forward(step, part.cache.k, part.cache.v).view(len(slots), t, -1)

            slots = list(range(len(part.rows)))
            self.fast.ensure_positions(max(part.lengths) + t)
            for done, h in self._split_on_oom("tree", slots, lambda ss, p=part: sum(p.lengths[s] + t for s in ss), run):
                idx = torch.tensor([part.rows[s] for s in done], device=self.device)
                out[idx, 1:] = h
        return out

    # ---- generation -----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_at_newline: bool = False,
        images: Sequence[Sequence[Tensor]] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        """Greedy continuations (EOS kept; a newline token kept and stopping when
        ``stop_at_newline``; at most ``max_new_tokens``), in input order, by continuous batching."""
        if images is not None and any(images):
            raise ValueError("FastEngine runs text-only models; image prompts need HFEngine (see make_engine)")
        batcher = ContinuousBatcher(self, prompts, max_new_tokens=max_new_tokens, stop_at_newline=stop_at_newline)
        return batcher.run(on_batch)
