"""Which engine runs a judge model, and why: engines register by name; ``"auto"`` takes the
first registered engine that can run the model exactly, and the choice's reason is logged and
handed to the engine (``engine.reason``).

A new backend is one module with an `Engine` class plus one `register_engine` line below.
``engine=NAME`` (or ``$JUDGELM_ENGINE``) asks for one by name; asking for an engine that cannot
run the model raises with the reason.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from judgelm.engine.base import Engine

__all__ = ["EngineChoice", "choose_engine", "engine_names", "make_engine", "register_engine"]

log = logging.getLogger(__name__)

# model -> (can it run the model exactly?, why / why not)
Fits = Callable[[Any], tuple[bool, str]]
# (model, tokenizer, *, reason=..., **options) -> the engine
Factory = Callable[..., Engine]


@dataclass(frozen=True)
class EngineChoice:
    name: str
    reason: str


@dataclass(frozen=True)
class _Entry:
    target: str | Factory  # "module:Class" (imported when chosen) or the factory itself
    fits: Fits | None  # None: never chosen by "auto", only by name

    def factory(self) -> Factory:
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


_ENGINES: dict[str, _Entry] = {}


def register_engine(name: str, target: str | Factory, *, fits: Fits | None = None) -> None:
    """Register engine ``name``: ``target`` is ``"module:Class"`` or a callable, either taking
    ``(model, tokenizer, *, reason=..., **options)``. With ``fits``, ``"auto"`` considers it, in
    registration order; without, it is built only when asked for by name."""
    _ENGINES[name] = _Entry(target, fits)


def engine_names() -> list[str]:
    return list(_ENGINES)


def _packed_fits(model: Any) -> tuple[bool, str]:
    from judgelm.engine.llama_family import unsupported_reason

    reason = unsupported_reason(model) if model is not None else "no model"
    if reason is not None:
        return False, reason
    return True, f"{model.config.model_type} runs on the packed Llama-family forward"


def _hf_fits(model: Any) -> tuple[bool, str]:
    return (True, "any Hugging Face causal LM") if model is not None else (False, "no model")


register_engine("packed", "judgelm.engine.packed:PackedEngine", fits=_packed_fits)
register_engine("hf", "judgelm.engine.hf:HFEngine", fits=_hf_fits)
register_engine("openai", "judgelm.engine.remote:OpenAIEngine")  # by name: `model` is a served model name


def choose_engine(model: Any, engine: str = "auto") -> EngineChoice:
    """The engine for ``model`` and why (see the module docstring)."""
    wanted = engine if engine != "auto" else os.environ.get("JUDGELM_ENGINE", "auto")
    if wanted == "auto":
        refused = []
        for name, entry in _ENGINES.items():
            if entry.fits is None:
                continue
            ok, why = entry.fits(model)
            if ok:
                return EngineChoice(name, "; ".join(refused) or why)
            refused.append(f"{name}: {why}")
        raise ValueError(f"no engine can run this model ({'; '.join(refused)})")
    if wanted not in _ENGINES:
        raise ValueError(f"engine must be 'auto' or one of {', '.join(map(repr, _ENGINES))}, got {wanted!r}")
    fits = _ENGINES[wanted].fits
    if fits is not None:
        ok, why = fits(model)
        if not ok:
            raise ValueError(f"the {wanted} engine cannot run this model: {why}")
    return EngineChoice(wanted, "requested")


def make_engine(
    model: Any,
    tokenizer: Any,
    *,
    engine: str = "auto",
    devices: Sequence[str | torch.device] | None = None,
    **options: Any,
) -> Engine:
    """The engine for ``model`` (``options`` go to its constructor, e.g. ``max_batch_tokens``;
    ``attention=`` or ``compile=`` for the packed engine); with several ``devices``, one worker
    per device behind a `MultiDeviceEngine`. The choice is logged with its reason (``reason``)."""
    choice = choose_engine(model, engine)
    factory = _ENGINES[choice.name].factory()

    def make(m: Any, tok: Any) -> Engine:
        return factory(m, tok, reason=choice.reason, **options)

    if devices is not None and len(devices) > 1:
        from judgelm.engine.workers import MultiDeviceEngine

        built: Engine = MultiDeviceEngine.on_devices(model, tokenizer, devices, make)
    else:
        built = make(model, tokenizer)
    log.info("judgelm engine: %s (%s)", type(built).__name__, built.reason)
    return built
