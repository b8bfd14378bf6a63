"""Running judge models: loading, batching, generation. Nothing outside this package touches CUDA."""

from judgelm.engine.hf import HFEngine
from judgelm.engine.loading import load_model_and_tokenizer, resolve_device, resolve_dtype

__all__ = ["HFEngine", "load_model_and_tokenizer", "resolve_device", "resolve_dtype"]
