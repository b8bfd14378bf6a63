"""Running judge models: loading, batching, generation. Nothing outside this package touches CUDA.

`make_engine` picks the engine: `FastEngine` (packed prefill, slot KV cache, continuous batching)
for the Llama-family checkpoints it runs exactly, `HFEngine` otherwise (see docs/engine.md).
"""

from judgelm.engine.choose import engine_choice, make_engine
from judgelm.engine.fast_engine import FastEngine
from judgelm.engine.hf import HFEngine
from judgelm.engine.loading import load_model_and_tokenizer, resolve_device, resolve_dtype
from judgelm.engine.workers import MultiDeviceEngine

__all__ = [
    "FastEngine",
    "HFEngine",
    "MultiDeviceEngine",
    "engine_choice",
    "load_model_and_tokenizer",
    "make_engine",
    "resolve_device",
    "resolve_dtype",
]
