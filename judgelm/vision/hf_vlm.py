"""Hugging Face vision-language models (``AutoModelForImageTextToText``, LLaVA-style) as judges.

`HFVisionJudge` puts such a model behind the same contract as `VisionJudgeModel`: the engine
sees a causal LM (``config`` is the text config; ``forward`` / KV cache / ``logits_to_keep``
delegate to the VLM) plus `embed_inputs`, which asks the VLM for its own projected image
features (``get_image_features``) and writes them over the image-token runs. The tokenizer is
the processor's, wrapped in `ImageTokenizer` with the model's image token, so the image formats'
``<image>`` markers expand to exactly the number of features the model produces per image.

Supported: models whose image features have a fixed count per image (LLaVA-1.5 and alikes);
models that tile images into a variable number of crops (LLaVA-NeXT "anyres", Qwen2-VL) are
refused when loaded.

>>> model, tokenizer = load_hf_vision_judge("/models/llava-1.5-7b-hf")            # doctest: +SKIP
>>> judge = Judge(model, tokenizer)                                                # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from judgelm.errors import ModelLoadError
from judgelm.vision.base import ImageJudgeBase
from judgelm.vision.tokens import DEFAULT_IMAGE_TOKEN, ImageTokenizer

__all__ = ["HFVisionJudge", "is_hf_vision_model", "load_hf_vision_judge"]


class HFVisionJudge(ImageJudgeBase):
    """A HF image-text-to-text model + its image processor, behaving like a judge LLM."""

    def __init__(
        self, vlm: nn.Module, image_processor: Any, *, image_token_id: int | None = None, processor: Any = None
    ):
        super().__init__()
        self.vlm = vlm
        self.image_processor = image_processor
        self.processor = processor  # the full processor, saved with the model when given
        config = vlm.config
        token = image_token_id if image_token_id is not None else getattr(config, "image_token_id", None)
        token = token if token is not None else getattr(config, "image_token_index", None)
        if token is None:
            raise ModelLoadError(f"{type(vlm).__name__} has no image_token_id in its config")
        self.image_token_id = int(token)
        probe = self.preprocess(_probe_image(image_processor))
        self.image_shape = tuple(probe.shape)
        with torch.no_grad():
            feats = self.encode_images(probe[None])  # [1, N, H]
        self.n_image_tokens = int(feats.shape[1])

    # ---- the LLM's face (the rest: `ImageJudgeBase`) ----------------------------------------------
    @property
    def lm(self) -> nn.Module:
        return self.vlm

    @property
    def config(self) -> Any:
        return self.vlm.config.get_text_config()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """The VLM (safetensors) and its processor, loadable by `load_hf_vision_judge`."""
        self.vlm.save_pretrained(folder, safe_serialization=True)
        if self.processor is not None:
            self.processor.save_pretrained(folder)
        else:
            self.image_processor.save_pretrained(folder)

    # ---- images ---------------------------------------------------------------------------------
    def preprocess(self, image: Any) -> Tensor:
        """PIL image -> the model's pixel tensor (its own image processor)."""
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]

    def encode_images(self, pixels: Tensor) -> Tensor:
        """``[M, 3, S, S]`` -> ``[M, N, H]``: the VLM's own tower + projector."""
        param = next(self.vlm.parameters())
        out = self.vlm.get_image_features(pixel_values=pixels.to(device=param.device, dtype=param.dtype))
        feats = getattr(out, "pooler_output", out)
        if isinstance(feats, list | tuple):
            feats = torch.stack(list(feats))
        return feats.to(self.get_input_embeddings().weight.dtype)


def _probe_image(image_processor: Any) -> Any:
    from PIL import Image

    size = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", None) or {}
    side = int(size.get("height") or size.get("shortest_edge") or 224) if isinstance(size, dict) else 224
    return Image.new("RGB", (side, side), (127, 127, 127))


def is_hf_vision_model(folder: str | os.PathLike[str]) -> bool:
    """Whether a local folder holds a HF vision-language model (its config has a
    ``vision_config``) rather than a text-only causal LM."""
    import json
    from pathlib import Path

    path = Path(folder) / "config.json"
    try:
        return "vision_config" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def load_hf_vision_judge(
    folder: str | os.PathLike[str],
    device: str | torch.device | None = None,
    dtype: Any = None,
    *,
    image_token: str | None = None,
) -> tuple[HFVisionJudge, ImageTokenizer]:
    """``(model, tokenizer)`` of a local ``AutoModelForImageTextToText`` folder (safetensors;
    nothing is downloaded, no remote code)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from judgelm.engine.loading import resolve_device, resolve_dtype

    dev = resolve_device(device)
    try:
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        vlm = AutoModelForImageTextToText.from_pretrained(
            str(folder), dtype=resolve_dtype(dtype, dev), use_safetensors=True, local_files_only=True
        )
    except Exception as e:  # transformers raises many types here; keep the cause
        raise ModelLoadError(f"could not load the vision-language model {str(folder)!r}: {e}") from e
    if getattr(vlm.config, "image_grid_pinpoints", None):
        raise ModelLoadError("models that tile images into a variable number of crops are not supported")
    token = image_token or getattr(processor, "image_token", None) or DEFAULT_IMAGE_TOKEN
    model = HFVisionJudge(vlm.to(dev).eval(), processor.image_processor, processor=processor)
    tokenizer = ImageTokenizer(processor.tokenizer, n_image_tokens=model.n_image_tokens, image_token=token)
    if tokenizer.image_token_id != model.image_token_id:
        raise ModelLoadError(
            f"the tokenizer's {token!r} is id {tokenizer.image_token_id}; the model expects {model.image_token_id}"
        )
    return model.eval(), tokenizer
