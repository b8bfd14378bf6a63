"""`PackedEngine`: the engine on packed tokens, over the compact Llama-family forward
(`judgelm.engine.llama_family`: Llama, Mistral, Qwen2). The `Engine` protocol, like `HFEngine`;
different insides:

- **prefill** packs the batch's prompts into one row of tokens (no padding) and writes their K/V
  into a slot cache, one row per prompt (`kv_cache`); prompts sharing a long prefix get it
  computed once (`shared_prefix`). The last layer runs only at each prompt's last token.
- **tree_step** feeds every row's verdict tree at once under the tree mask, attending to the
  cached prompt; the tree's K/V land after the prompt and are not counted, so the row is intact
  for the next tree step (greedy multi-slot scoring runs several).
- **generate** is continuous batching over a static slot cache (`continuous`).
- **memory**: the token budget comes from free device memory (KV + activations per token); a
  CUDA out-of-memory error splits the work in halves and retries (never losing or repeating a
  row), and lowers the budget for later batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from judgelm.engine.base import Capabilities, Engine, GenerationOptions, VerdictTree, model_facts, tree_logprobs
from judgelm.engine.continuous import ContinuousBatcher
from judgelm.engine.kv_cache import KVCache, extend_step, token_budget, tree_step
from judgelm.engine.llama_family import LlamaFamilyForward
from judgelm.engine.shared_prefix import plan_prefix_batches, shared_prefix_groups

__all__ = ["PackedEngine", "PackedState"]

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
class PackedState:
    """What `PackedEngine.prefill` returns: the prompts' caches and last-position outputs (input order)."""

    parts: list[_Part]
    last_pos: Tensor  # [B] position of each prompt's last token
    last_hidden: Tensor | None  # [B, H] final-norm hidden state there
    last_logits: Tensor | None  # [B, V] fp32 logits there (want="logits")


class PackedEngine(Engine):
    """Packed prefill, tree scoring and continuous-batching generation for Llama-family models.

    ``attention`` forces a backend (see `judgelm.engine.attention`); ``compile`` / ``cuda_graphs``
    default to on for CUDA; ``min_shared_prefix`` is the shortest common prefix worth sharing."""

    capabilities = Capabilities(logits=True, images=False)

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
        reason: str = "built directly",
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.lm = LlamaFamilyForward(model, attention=attention, compile=compile)
        self.reason = f"{reason}, attention {self.lm.backend.name}"
        facts = model_facts(model, tokenizer)
        if self.lm.window:  # sliding windows: full attention is the same function up to the window
            facts = replace(facts, context_length=min(facts.context_length, self.lm.window))
        self.facts = facts
        cuda = self.device.type == "cuda"
        self.token_cap = max_batch_tokens or (_CUDA_TOKEN_CAP if cuda else _CPU_TOKEN_CAP)
        self.max_batch_size = max_batch_size or (256 if cuda else 64)
        self.cuda_graphs = cuda if cuda_graphs is None else cuda_graphs
        self.min_shared_prefix = min_shared_prefix
        self.max_decode_slots = max_decode_slots
        self.fault_injector: Callable[[str, int], None] | None = None  # tests: raise OOM on purpose
        self._oom_budget: int | None = None  # lowered after an out-of-memory split

    @property
    def device(self) -> torch.device:
        return self.lm.device

    @property
    def attention_backend(self) -> str:
        return self.lm.backend.name

    # ---- memory -------------------------------------------------------------------------------
    @property
    def max_batch_tokens(self) -> int:
        """Packed tokens per batch: the cap, the free memory, and what the last OOM allowed."""
        per_token = self.lm.kv_bytes_per_token() + self.lm.activation_bytes_per_token()
        budget = token_budget(self.device, per_token, cap=self.token_cap)
        return min(budget, self._oom_budget) if self._oom_budget else budget

    def decode_slots(self, width: int, waiting: int) -> int:
        """Cache rows for continuous batching, rows ``width`` tokens wide: what fits in free
        memory beside a refill prefill of a full token budget."""
        cap = min(waiting, self.max_decode_slots if self.device.type == "cuda" else self.max_batch_size)
        if self.device.type != "cuda":
            return max(1, cap)
        free, _ = torch.cuda.mem_get_info(self.device)
        refill = self.max_batch_tokens * self.lm.activation_bytes_per_token()
        fit = int((free * 0.85 - refill) // (width * self.lm.kv_bytes_per_token()))
        return max(1, min(cap, fit))

    def fault_point(self, stage: str, rows: int) -> None:
        """A point where ``fault_injector`` (tests) may raise an out-of-memory error: before each
        prefill ("prefill"), tree step ("tree"), decoding step ("decode") and refill ("fill")."""
        if self.fault_injector is not None:
            self.fault_injector(stage, rows)

    def release_memory(self) -> None:
        """Hand cached device memory back after an out-of-memory error."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _split_on_oom(
        self, kind: str, items: list[int], cost: Callable[[list[int]], int], fn: Callable[[list[int]], T]
    ) -> list[tuple[list[int], T]]:
        """``[(items, fn(items))]``, or on out-of-memory the same for each half, recursively.
        Every item is in exactly one returned piece; a single item that does not fit raises."""
        try:
            self.fault_point(kind, len(items))
            return [(items, fn(items))]
        except torch.OutOfMemoryError:
            if len(items) == 1:
                raise
        self.release_memory()  # outside the except block: the traceback no longer pins the batch's tensors
        half = len(items) // 2
        self._oom_budget = max(1, cost(items[:half]))
        log.warning("judgelm: out of memory on %d rows (%s); splitting and retrying", len(items), kind)
        return self._split_on_oom(kind, items[:half], cost, fn) + self._split_on_oom(kind, items[half:], cost, fn)

    # ---- batching -------------------------------------------------------------------------
    def batches(self, prompts: Sequence[Sequence[int]], extra_per_item: int) -> list[list[int]]:
        """Packed token-budget batches (no padding cost); shared-prefix groups stay in one batch
        and their prefix is costed once."""
        return plan_prefix_batches(
            prompts,
            max_tokens=self.max_batch_tokens,
            max_size=self.max_batch_size,
            extra_per_item=extra_per_item,
            min_length=self.min_shared_prefix,
        )

    # ---- prefill --------------------------------------------------------------------------
    def fill(self, cache: KVCache, items: Sequence[tuple[int, Sequence[int]]]) -> Tensor:
        """Prefill ``(slot, tokens)`` items (slots increasing) into ``cache``; returns each item's
        final-norm hidden state at its last token, [R, H]. Shared prefixes are computed once."""
        prompts = [t for _, t in items]
        start = [0] * len(items)
        groups = shared_prefix_groups(prompts, min_length=self.min_shared_prefix)
        if groups:  # each group's prefix once, into its first member's row, then copied
            leaders = sorted((items[g.members[0]][0], 0, prompts[g.members[0]][: g.length]) for g in groups)
            self.lm.forward(extend_step(leaders, cache.width, self.device), cache.k, cache.v)
            for g in groups:
                cache.copy_prefix(items[g.members[0]][0], [items[m][0] for m in g.members[1:]], g.length)
                for m in g.members:
                    start[m] = g.length
        rows = [(slot, s, list(tokens[s:])) for (slot, tokens), s in zip(items, start, strict=True)]
        return self.lm.forward(extend_step(rows, cache.width, self.device), cache.k, cache.v)

    def new_cache(self, slots: int, width: int, *, zeroed: bool = False) -> KVCache:
        """Cache rows for ``slots`` prompts of up to ``width`` tokens; ``zeroed`` when masked
        attention may read positions nobody wrote (decoding)."""
        f = self.lm
        return KVCache.empty(f.n_layers, slots, width, f.n_kv_heads, f.head_dim, f.dtype, self.device, zeroed=zeroed)

    @torch.inference_mode()
    def prefill(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        want: Literal["hidden", "logits"] = "hidden",
    ) -> PackedState:
        """Prefill the prompts (packed), keeping their K/V; last-position final hidden states
        [B, H] (what the tree step starts from), and with ``want="logits"`` also their logits."""
        if images is not None and any(images):
            raise ValueError("PackedEngine runs text-only models; image prompts need HFEngine (see make_engine)")
        if not prompts:
            raise ValueError("no prompts")
        lengths = [len(p) for p in prompts]
        if min(lengths) == 0:
            raise ValueError("an empty prompt")
        self.lm.ensure_positions(max(lengths) + _TREE_RESERVE)

        def run(rows: list[int]) -> tuple[KVCache, Tensor]:
            cache = self.new_cache(len(rows), max(lengths[r] for r in rows) + _TREE_RESERVE)
            return cache, self.fill(cache, [(i, prompts[r]) for i, r in enumerate(rows)])

        pieces = self._split_on_oom("prefill", list(range(len(prompts))), lambda rs: sum(lengths[r] for r in rs), run)
        hidden = torch.empty((len(prompts), self.lm.hidden), dtype=self.lm.dtype, device=self.device)
        parts = []
        for rows, (cache, h) in pieces:
            hidden[torch.tensor(rows, device=self.device)] = h
            parts.append(_Part(rows, cache, [lengths[r] for r in rows], [lengths[r] for r in rows]))
        last_pos = torch.tensor(lengths, device=self.device) - 1
        if want == "hidden":
            return PackedState(parts, last_pos, hidden, None)
        return PackedState(parts, last_pos, hidden, self.lm.logits(hidden))

    # ---- tree step ------------------------------------------------------------------------
    def tree_step(self, state: PackedState, trees: Sequence[VerdictTree | None]) -> list[Tensor | None]:
        """`Engine.tree_step`: candidate log-probabilities at every node of every row's tree."""
        return tree_logprobs(self.tree_forward, state, trees, self.facts.head)

    @torch.inference_mode()
    def tree_forward(
        self,
        state: PackedState,
        tokens: Sequence[Sequence[int]],
        parents: Sequence[Sequence[int]],
        depths: Sequence[Sequence[int]],
    ) -> Tensor:
        """Final hidden states at [root, node 1, ..., node T] of every row's tree: [B, 1 + T, H]
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
                    self.facts.pad_id,
                    self.device,
                    nodes=t,  # every row padded to t nodes: what `_Part.clean` expects written
                )
                return self.lm.forward(step, part.cache.k, part.cache.v).view(len(slots), t, -1)

            slots = list(range(len(part.rows)))
            self.lm.ensure_positions(max(part.lengths) + t)
            for done, h in self._split_on_oom("tree", slots, lambda ss, p=part: sum(p.lengths[s] + t for s in ss), run):
                idx = torch.tensor([part.rows[s] for s in done], device=self.device)
                out[idx, 1:] = h
        return out

    # ---- generation -----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: GenerationOptions,
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        """Continuations in input order, by continuous batching (see `GenerationOptions`
        for where a row stops)."""
        if images is not None and any(images):
            raise ValueError("PackedEngine runs text-only models; image prompts need HFEngine (see make_engine)")
        return ContinuousBatcher(self, prompts, options).run(on_batch)
