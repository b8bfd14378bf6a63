"""Several devices on one machine: one engine (worker) per device, each batch split among them,
results merged in input order.

`MultiDeviceEngine` implements the `Engine` protocol, so `Judge` and the scorer use it unchanged:
`batches` plans batches as large as all workers together; `prefill` hands each worker a
contiguous share of the batch balanced by tokens and runs them concurrently (one thread per
worker: the host thread mostly waits on its device, and kernels release the GIL); `tree_step`
runs each worker on its share (the verdict head on the worker's device); `generate` deals the
prompts out by length and merges. Its facts are the first worker's, with the smallest context.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from threading import Lock
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from judgelm.engine.base import Engine, GenerationOptions, VerdictTree
from judgelm.engine.batching import plan_batches

__all__ = ["MultiDeviceEngine", "MultiState", "replicate_model", "split_balanced"]

T = TypeVar("T")


def split_balanced(lengths: Sequence[int], parts: int) -> list[list[int]]:
    """Split indices ``0..n-1`` into at most ``parts`` contiguous runs of similar total length
    (empty runs dropped)."""
    total = sum(lengths)
    runs: list[list[int]] = [[] for _ in range(parts)]
    acc = 0
    for i, n in enumerate(lengths):
        k = min(parts - 1, (acc + n / 2) * parts // max(total, 1))  # the run owning this item's middle
        runs[int(k)].append(i)
        acc += n
    return [r for r in runs if r]


def replicate_model(model: Any, device: torch.device | str) -> Any:
    """A copy of ``model`` on ``device``, its weights copied straight there (device to device:
    no second copy on the source)."""
    device = torch.device(device)
    with torch.device("meta"):
        replica = type(model)(copy.deepcopy(model.config))
    replica.load_state_dict({k: v.to(device) for k, v in model.state_dict().items()}, assign=True)
    modules = dict(replica.named_modules())
    for name, buf in model.named_buffers():  # non-persistent buffers (rotary frequencies) too
        owner, _, attr = name.rpartition(".")
        modules[owner]._buffers[attr] = buf.to(device)
    replica.generation_config = copy.deepcopy(model.generation_config)
    return replica.eval()


@dataclass
class MultiState:
    shares: list[tuple[list[int], int, Any]]  # (rows of the batch, worker index, its state)
    last_hidden: Tensor | None  # [B, H] on the first device
    last_logits: Tensor | None  # [B, V]
    last_pos: Tensor


class MultiDeviceEngine(Engine):
    """One engine per device, used as one engine."""

    def __init__(self, engines: Sequence[Any]):
        if not engines:
            raise ValueError("no engines")
        self.engines = list(engines)
        first = self.engines[0]
        self.facts = replace(first.facts, context_length=min(e.facts.context_length for e in self.engines))
        self.capabilities = first.capabilities
        self.reason = f"{first.reason}; {len(self.engines)} workers"
        self._pool = ThreadPoolExecutor(max_workers=len(self.engines), thread_name_prefix="judgelm-worker")
        self._lock = Lock()

    @classmethod
    def on_devices(
        cls,
        model: Any,
        tokenizer: Any,
        devices: Sequence[str | torch.device],
        make: Callable[[Any, Any], Any],
    ) -> MultiDeviceEngine:
        """Workers ``make(model_on_device, tokenizer)``: the model itself on its own device,
        copies elsewhere."""
        home = next(model.parameters()).device
        engines = []
        for dev in map(torch.device, devices):
            m = model if dev == home else replicate_model(model, dev)
            engines.append(make(m, tokenizer))
        return cls(engines)

    @property
    def device(self) -> torch.device:
        return self.engines[0].device

    @property
    def max_batch_tokens(self) -> int:
        return sum(e.max_batch_tokens for e in self.engines)

    def batches(self, prompts: Sequence[Sequence[int]], extra_per_item: int) -> list[list[int]]:
        size = sum(e.max_batch_size for e in self.engines)
        return plan_batches(
            [len(p) for p in prompts],
            max_tokens=self.max_batch_tokens,
            max_size=size,
            extra_per_item=extra_per_item,
            padded=False,
        )

    # ---- running on every worker -----------------------------------------------------------
    def _on(self, worker: int, fn: Callable[[], T]) -> T:
        dev = self.engines[worker].device
        with torch.cuda.device(dev) if dev.type == "cuda" else nullcontext():
            return fn()

    def _map(self, jobs: list[tuple[int, Callable[[], T]]]) -> list[T]:
        if len(jobs) == 1:
            return [self._on(*jobs[0])]
        futures = [self._pool.submit(self._on, w, fn) for w, fn in jobs]
        return [f.result() for f in futures]

    def _locked(self, fn: Callable[..., None] | None) -> Callable[..., None] | None:
        """``fn`` called under one lock: workers report from their own threads."""
        if fn is None:
            return None

        def report(*args: Any) -> None:
            with self._lock:
                fn(*args)

        return report

    # ---- the engine interface --------------------------------------------------------------
    def prefill(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        want: Literal["hidden", "logits"] = "hidden",
    ) -> MultiState:
        shares = split_balanced([len(p) for p in prompts], len(self.engines))

        def job(w: int, rows: list[int]) -> Callable[[], Any]:
            imgs = None if images is None else [images[r] for r in rows]
            return lambda: self.engines[w].prefill([prompts[r] for r in rows], images=imgs, want=want)

        states = self._map([(w, job(w, rows)) for w, rows in enumerate(shares)])
        home = self.device

        def gather(attr: str) -> Tensor | None:
            parts = [getattr(s, attr) for s in states]
            if any(p is None for p in parts):
                return None
            return _in_order(shares, [p.to(home) for p in parts])

        last_pos = _in_order(shares, [s.last_pos.to(home) for s in states])
        return MultiState(
            [(rows, w, s) for w, (rows, s) in enumerate(zip(shares, states, strict=True))],
            gather("last_hidden"),
            gather("last_logits"),
            last_pos,
        )

    def tree_step(self, state: MultiState, trees: Sequence[VerdictTree | None]) -> list[Tensor | None]:
        def job(w: int, rows: list[int], sub: Any) -> Callable[[], list[Tensor | None]]:
            return lambda: self.engines[w].tree_step(sub, [trees[r] for r in rows])

        outs = self._map([(w, job(w, rows, sub)) for rows, w, sub in state.shares])
        merged: list[Tensor | None] = [None] * len(trees)
        for (rows, _, _), out in zip(state.shares, outs, strict=True):
            for r, lp in zip(rows, out, strict=True):
                merged[r] = lp
        return merged

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: GenerationOptions,
        *,
        images: Sequence[Sequence[Tensor]] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        shares = [sorted(order[w :: len(self.engines)]) for w in range(len(self.engines))]
        shares = [s for s in shares if s]
        report = self._locked(on_batch)
        on_token, on_logprobs = self._locked(options.on_token), self._locked(options.on_logprobs)

        def job(w: int, rows: list[int]) -> Callable[[], list[list[int]]]:
            imgs = None if images is None else [images[r] for r in rows]
            # each worker numbers its own prompts: map them back to input order
            mine = replace(
                options,
                on_token=None if on_token is None else lambda i, t: on_token(rows[i], t),
                on_logprobs=None if on_logprobs is None else lambda i, x: on_logprobs(rows[i], x),
            )
            return lambda: self.engines[w].generate([prompts[r] for r in rows], mine, images=imgs, on_batch=report)

        outs = self._map([(w, job(w, rows)) for w, rows in enumerate(shares)])
        merged: list[list[int] | None] = [None] * len(prompts)
        for rows, out in zip(shares, outs, strict=True):
            for r, o in zip(rows, out, strict=True):
                merged[r] = o
        assert all(m is not None for m in merged)
        return merged  # type: ignore[return-value]


def _in_order(shares: Sequence[Sequence[int]], parts: Sequence[Tensor]) -> Tensor:
    """Rows of ``parts`` (share by share) put back at their batch positions."""
    rows = torch.tensor(list(itertools.chain.from_iterable(shares)), device=parts[0].device)
    cat = torch.cat(list(parts))
    out = torch.empty_like(cat)
    out[rows] = cat
    return out
