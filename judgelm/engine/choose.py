"""Which engine runs a judge model, and why (logged once per engine built).

- `FastEngine` (packed prefill, slot KV cache, continuous batching) for Llama / Mistral / Qwen2
  style checkpoints it runs exactly (`judgelm.engine.llama.unsupported_reason` says why not);
- `HFEngine` for everything else: vision judges (``embed_inputs``), other architectures,
  quantized weights, models without a plain linear head;
- several devices: one worker of the chosen kind per device (`MultiDeviceEngine`).

``engine="hf"|"fast"`` (or ``$JUDGELM_ENGINE``) overrides the choice; ``"fast"`` on a model the
fast engine cannot run raises with the reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import torch

from judgelm.engine.hf import HFEngine
from judgelm.engine.llama import unsupported_reason

__all__ = ["engine_choice", "make_engine"]

log = logging.getLogger(__name__)

EngineKind = Literal["auto", "fast", "hf"]


def engine_choice(model: Any, engine: EngineKind = "auto") -> tuple[str, str]:
    """``("fast" | "hf", reason)`` for ``model``."""
    wanted = engine if engine != "auto" else os.environ.get("JUDGELM_ENGINE", "auto")
    if wanted not in ("auto", "fast", "hf"):
        raise ValueError(f"engine must be 'auto', 'fast' or 'hf', got {wanted!r}")
    if wanted == "hf":
        return "hf", "requested"
    reason = unsupported_reason(model) if model is not None else "no model"
    if reason is None:
        return "fast", f"{model.config.model_type} runs on the packed fast path"
    if wanted == "fast":
        raise ValueError(f"the fast engine cannot run this model: {reason}")
    return "hf", reason


def make_engine(
    model: Any,
    tokenizer: Any,
    *,
    engine: EngineKind = "auto",
    devices: Sequence[str | torch.device] | None = None,
    max_batch_tokens: int | None = None,
    **fast_options: Any,
) -> Any:
    """The engine for ``model`` (see the module docstring); ``fast_options`` go to `FastEngine`."""
    kind, reason = engine_choice(model, engine)
    if kind == "fast":
        from judgelm.engine.fast_engine import FastEngine

        def make(m: Any, tok: Any) -> Any:
            return FastEngine(m, tok, max_batch_tokens=max_batch_tokens, **fast_options)
    else:

        def make(m: Any, tok: Any) -> Any:
            return HFEngine(m, tok, max_batch_tokens=max_batch_tokens)

    if devices is not None and len(devices) > 1:
        from judgelm.engine.workers import MultiDeviceEngine

        built: Any = MultiDeviceEngine.on_devices(model, tokenizer, devices, make)
    else:
        built = make(model, tokenizer)
    extra = f", attention {built.attention_backend}" if kind == "fast" else ""
    log.info("judgelm engine: %s (%s%s)", type(built).__name__, reason, extra)
    built.engine_reason = reason
    return built
