"""Running judge models: loading, the `Engine` protocol and its implementations, batching,
generation. Nothing outside this package touches CUDA.

`make_engine` picks the engine by the registry (`judgelm.engine.registry`): `PackedEngine` (packed
prefill, slot KV cache, continuous batching) for the Llama-family checkpoints it runs exactly,
`HFEngine` otherwise (see docs/engine.md).
"""

from judgelm.engine.base import Capabilities, Engine, GenerationOptions, ModelFacts
from judgelm.engine.hf import HFEngine
from judgelm.engine.loading import load_model_and_tokenizer, resolve_device, resolve_dtype
from judgelm.engine.packed import PackedEngine
from judgelm.engine.registry import EngineChoice, choose_engine, make_engine, register_engine
from judgelm.engine.workers import MultiDeviceEngine

__all__ = [
    "Capabilities",
    "Engine",
    "EngineChoice",
    "GenerationOptions",
    "HFEngine",
    "ModelFacts",
    "MultiDeviceEngine",
    "PackedEngine",
    "choose_engine",
    "load_model_and_tokenizer",
    "make_engine",
    "register_engine",
    "resolve_device",
    "resolve_dtype",
]
