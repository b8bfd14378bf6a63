"""Decoding (greedy, or sampled: `judgelm.engine.sampling`) with continuous batching over a
static slot cache.

A fixed number of cache rows (slots, from free memory) each hold one prompt being continued.
Every step feeds each busy row's last token at its next position; a row that writes a stop
token, completes a stop string (`GenerationOptions`) or writes its last allowed token is
finished and its slot goes back to the pool; when a quarter of the slots are free (or nothing
runs) the waiting prompts are prefilled into them in one packed call (`PackedEngine.fill`,
shared prefixes included).

`DecodeStep` is the step itself, with static buffers: on CUDA it is captured once into a CUDA
graph (hundreds of kernel launches become one replay; the first replay is checked against the
eager step, and any failure falls back to eager with a warning). The eager path builds the same
`Step` from the same buffers, so CPU tests run the same logic.

On CUDA out-of-memory the rows in flight go back to the queue (decoding is deterministic:
greedy, or sampled from a generator restarted with the row, they restart from their prompt),
the slot count halves, and decoding goes on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from judgelm.engine.base import GenerationOptions, TokenLogprobs
from judgelm.engine.kv_cache import KVCache
from judgelm.engine.llama_family import LlamaFamilyForward, Masked, Step, Varlen
from judgelm.engine.sampling import TokenChooser, report_token

if TYPE_CHECKING:
    from judgelm.engine.packed import PackedEngine

__all__ = ["ContinuousBatcher", "DecodeStep"]

log = logging.getLogger(__name__)


class DecodeStep:
    """Logits [n, V] of one token for cache rows ``0..n-1``: row ``s`` gets ``tokens[s]`` at
    position ``positions[s]`` (its K/V written there) and attends to positions ``[0, positions[s]]``.

    With ``graphs`` (CUDA) every call steps all rows (static shapes) through a captured graph."""

    def __init__(self, lm: LlamaFamilyForward, cache: KVCache, *, graphs: bool):
        self.lm, self.cache = lm, cache
        n, width, dev = cache.slots, cache.width, lm.device
        self.tokens = torch.zeros(n, dtype=torch.long, device=dev)
        self.pos = torch.zeros(n, dtype=torch.long, device=dev)
        self.slot_ids = torch.arange(n, device=dev)
        # varlen route: row s is query segment [s, s+1) over keys [s*W, s*W + pos_s + 1), then a
        # query-less gap to (s+1)*W
        self.cu_q = torch.arange(2 * n + 1, device=dev, dtype=torch.int32).add(1).div(2, rounding_mode="floor")
        self.row_start = (self.slot_ids * width).int()
        self.graphs = graphs and dev.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.graph_out: Tensor | None = None

    @property
    def all_rows(self) -> bool:
        """Whether every call must step every row (the captured graph's static shape)."""
        return self.graphs

    def _step(self, n: int, width: int) -> Step:
        pos = self.pos[:n]
        if self.lm.backend.fast_varlen:
            cu_k = torch.empty(2 * n + 1, dtype=torch.int32, device=pos.device)
            cu_k[0] = 0
            cu_k[1::2] = self.row_start[:n] + pos.int() + 1
            cu_k[2::2] = self.row_start[:n] + self.cache.width
            attn: Varlen | Masked = Varlen(self.cu_q[: 2 * n + 1], cu_k, 1, self.cache.width)
        else:
            allowed = torch.arange(width, device=pos.device)[None, None, :] <= pos[:, None, None]  # [n, 1, W]
            attn = Masked(slice(0, n), width, allowed)
        return Step(ids=self.tokens[:n], pos=pos, slot=self.slot_ids[:n], at=pos, attn=attn)

    def _eager(self, n: int, width: int) -> Tensor:
        return self.lm.logits(self.lm.forward(self._step(n, width), self.cache.k, self.cache.v))

    def __call__(self, tokens: Sequence[int], positions: Sequence[int]) -> Tensor:
        n = len(tokens)
        self.tokens[:n].copy_(torch.tensor(list(tokens)), non_blocking=True)
        self.pos[:n].copy_(torch.tensor(list(positions)), non_blocking=True)
        if self.graphs and n == self.cache.slots:
            if self.graph is None:
                self._capture()
            if self.graph is not None:
                self.graph.replay()
                assert self.graph_out is not None
                return self.graph_out
        return self._eager(n, self.cache.width if self.graphs else max(positions) + 1)

    def _capture(self) -> None:
        n, width = self.cache.slots, self.cache.width
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up: compile the fused ops, allocate
                for _ in range(2):
                    ref = self._eager(n, width)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._eager(n, width)
            graph.replay()  # the same inputs: K/V writes are idempotent
            if not torch.equal(out.argmax(-1), ref.argmax(-1)):
                raise RuntimeError("the replayed step disagrees with the eager step")
            self.graph, self.graph_out = graph, out
        except Exception as e:
            log.warning("judgelm: CUDA graph capture of the decoding step failed (%s); decoding eagerly", e)
            self.graphs = False
            torch.cuda.synchronize()


class ContinuousBatcher:
    """Continuations of ``prompts`` (input order) through a pool of cache rows; tokens are chosen
    by `TokenChooser` (greedy by default)."""

    def __init__(self, engine: PackedEngine, prompts: Sequence[Sequence[int]], options: GenerationOptions):
        self.engine = engine
        self.prompts = [list(p) for p in prompts]
        self.max_new = options.max_new_tokens
        self.stop = options.stop_ids(engine.facts)
        self.options = options
        self.chooser = TokenChooser(options)
        self.stop_strings = options.stop_strings_for(engine.facts)
        self.reported = [0] * len(self.prompts)  # tokens of each row already given to on_token
        self.results: list[list[int] | None] = [None] * len(self.prompts)
        # per slot: the prompt it continues (None: free), its new tokens, its cached length
        self.row: list[int | None] = []
        self.out: list[list[int]] = []
        self.cached: list[int] = []

    def run(self, on_batch: Callable[[int], None] | None = None) -> list[list[int]]:
        if not self.prompts:
            return []
        if self.max_new <= 0:
            return [[] for _ in self.prompts]
        if not all(self.prompts):
            raise ValueError("an empty prompt")
        waiting = deque(sorted(range(len(self.prompts)), key=lambda i: (-len(self.prompts[i]), i)))
        width = max(map(len, self.prompts)) + self.max_new
        self.engine.lm.ensure_positions(width)
        slots = self.engine.decode_slots(width, len(waiting))
        while waiting:
            try:
                self._serve(waiting, slots, width, on_batch)
                continue
            except torch.OutOfMemoryError:
                if slots == 1:
                    raise
            in_flight = [r for r in self.row if r is not None]
            waiting.extendleft(reversed(in_flight))  # they restart from their prompts
            self.row = []
            self.engine.release_memory()
            slots //= 2
            log.warning("judgelm: out of memory while decoding; %d rows re-queued, %d slots now", len(in_flight), slots)
        assert all(r is not None for r in self.results), "a row was lost"
        return self.results  # type: ignore[return-value]

    def _push(self, s: int, token: int, info: TokenLogprobs | None) -> bool:
        """Record slot ``s``'s next token; True when its row is finished (and the slot free)."""
        r = self.row[s]
        assert r is not None and self.results[r] is None, "a row was finished twice"
        self.out[s].append(token)
        if len(self.out[s]) > self.reported[r]:  # a re-queued row repeats its tokens: report once
            self.reported[r] = len(self.out[s])
            report_token(self.options, r, token, info)
        ended = token in self.stop or len(self.out[s]) >= self.max_new
        if ended or (self.stop_strings is not None and self.stop_strings.hit(self.out[s])):
            self.results[r] = self.out[s]
            self.row[s] = None
            return True
        return False

    def _serve(self, waiting: deque[int], slots: int, width: int, on_batch: Callable[[int], None] | None) -> None:
        engine = self.engine
        cache = engine.new_cache(slots, width, zeroed=True)  # masked decoding reads whole rows
        step = DecodeStep(engine.lm, cache, graphs=engine.cuda_graphs)
        self.row, self.out, self.cached = [None] * slots, [[] for _ in range(slots)], [0] * slots
        refill_at = max(1, slots // 4)
        while waiting or any(r is not None for r in self.row):
            free = [s for s in range(slots) if self.row[s] is None]
            if waiting and free and (len(free) == slots or len(free) >= refill_at or len(waiting) <= len(free)):
                finished = self._refill(cache, free, waiting)
                if finished and on_batch is not None:
                    on_batch(finished)
            busy = [s for s in range(slots) if self.row[s] is not None]
            if not busy:
                continue
            engine.fault_point("decode", len(busy))
            hi = slots if step.all_rows else busy[-1] + 1
            tokens = [self.out[s][-1] if self.row[s] is not None else engine.facts.pad_id for s in range(hi)]
            positions = [self.cached[s] if self.row[s] is not None else 0 for s in range(hi)]
            with torch.inference_mode():
                logits = step(tokens, positions)  # [hi, V]
                mine = logits if len(busy) == logits.shape[0] else logits[busy]
                nxt, infos = self.chooser.choose(mine, [self.row[s] for s in busy])  # type: ignore[misc]
            finished = 0
            for k, s in enumerate(busy):
                self.cached[s] += 1
                finished += self._push(s, nxt[k], infos[k] if infos is not None else None)
            if finished and on_batch is not None:
                on_batch(finished)

    def _refill(self, cache: KVCache, free: list[int], waiting: deque[int]) -> int:
        """Prefill waiting prompts into free slots (one packed call within the token budget)."""
        budget = self.engine.max_batch_tokens
        take: list[int] = []
        tokens = 0
        while waiting and len(take) < len(free):
            n = len(self.prompts[waiting[0]])
            if take and tokens + n > budget:
                break
            take.append(waiting.popleft())
            tokens += n
        used = free[: len(take)]
        for s, r in zip(used, take, strict=True):  # in flight from here on: re-queued on OOM
            self.row[s], self.out[s], self.cached[s] = r, [], len(self.prompts[r])
            self.chooser.start(r, self.prompts[r])  # a restarted row repeats its samples
        self.engine.fault_point("fill", len(take))
        with torch.inference_mode():
            hidden = self.engine.fill(cache, [(s, self.prompts[r]) for s, r in zip(used, take, strict=True)])
            first, infos = self.chooser.choose(self.engine.lm.logits(hidden), take)
        return sum(
            self._push(s, tok, infos[k] if infos is not None else None)
            for k, (s, tok) in enumerate(zip(used, first, strict=True))
        )
