"""The model to fine-tune: a pretrained causal LM (any HF id, folder or GGUF, through the same
safe loader as `Judge.from_pretrained`), or the architecture of a ``config.json`` with random
weights; optionally wrapped with LoRA adapters (peft)."""

from __future__ import annotations

from typing import Any

import torch

from judgelm.errors import MissingDependencyError
from judgelm.modalities.text import load_tokenizer
from judgelm.train.config import TrainConfig

__all__ = ["add_lora", "load_for_training"]


def load_for_training(cfg: TrainConfig) -> tuple[Any, Any]:
    """(model on CPU in train mode, tokenizer). Trainer / accelerate place it on devices."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from judgelm.engine.loading import drop_gguf_marker, load_model_and_tokenizer, resolve_dtype

    dtype = resolve_dtype(cfg.load_dtype, torch.device("cpu"))
    if cfg.from_scratch:
        tokenizer = load_tokenizer(cfg.tokenizer or cfg.model, trust_remote_code=cfg.trust_remote_code)
        config = AutoConfig.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
        torch.manual_seed(cfg.seed)  # the random init is part of the run's identity
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    else:
        model, tokenizer, _ = load_model_and_tokenizer(
            cfg.model, device="cpu", dtype=dtype, trust_remote_code=cfg.trust_remote_code
        )
        if cfg.tokenizer:
            tokenizer = load_tokenizer(cfg.tokenizer, trust_remote_code=cfg.trust_remote_code)
        drop_gguf_marker(model)
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; a judge must learn to stop")
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.config.use_cache = False
    return model.train(), tokenizer


def add_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap ``model`` with LoRA adapters on ``cfg.lora_target_modules``."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise MissingDependencyError("peft", "train", "LoRA training") from None
    targets = cfg.lora_target_modules
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)
