"""A multimodal judge on disk, and back.

A judge folder holds::

    config.json, model.safetensors      the LLM (Hugging Face, safetensors)
    tokenizer*.json                     its tokenizer, with the image token added
    vision.safetensors                  projector.* (always) and tower.* (unless the tower is an
                                        untouched local pretrained file, referenced instead)
    judge.json                          "vision": VisionSpec (tower name, pretrained path,
                                        projector, n_image_tokens, image_token, feature_layer,
                                        the tower's open_clip config)

`load_vision_judge` rebuilds exactly that; `Judge.from_pretrained` calls it when ``judge.json``
has a ``vision`` entry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from judgelm.config import JudgeConfig
from judgelm.errors import ModelLoadError
from judgelm.vision.model import VisionJudgeModel, VisionSpec
from judgelm.vision.projector import build_projector
from judgelm.vision.tokens import ImageTokenizer
from judgelm.vision.tower import create_tower

__all__ = ["VISION_WEIGHTS", "is_vision_judge", "load_vision_judge", "save_vision_judge"]

VISION_WEIGHTS = "vision.safetensors"


def is_vision_judge(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a judge whose ``judge.json`` has a ``vision`` entry."""
    config = JudgeConfig.load(folder) if Path(folder).is_dir() else None
    return bool(config and config.vision)


def save_vision_judge(
    model: VisionJudgeModel,
    tokenizer: Any,
    folder: str | os.PathLike[str],
    *,
    config: JudgeConfig | None = None,
    save_tower: bool | None = None,
) -> JudgeConfig:
    """Write the judge to ``folder``; returns the `JudgeConfig` written to ``judge.json`` (the
    given ``config``, or the folder's existing one, with ``vision`` set).

    ``save_tower``: store the tower's weights (default: unless they come from a local
    pretrained file and are frozen)."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    if save_tower is None:
        save_tower = spec.pretrained is None or any(p.requires_grad for p in model.tower.parameters())
    model.llm.save_pretrained(out, safe_serialization=True)
    inner = tokenizer.inner if isinstance(tokenizer, ImageTokenizer) else tokenizer
    inner.save_pretrained(out)
    tensors = {f"projector.{k}": v for k, v in model.projector.state_dict().items()}
    if save_tower:
        tensors.update({f"tower.{k}": v for k, v in model.tower.visual.state_dict().items()})
    save_file(
        {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
        str(out / VISION_WEIGHTS),
        metadata={"format": "pt", "judgelm": "vision", "tower": spec.tower, "projector": spec.projector},
    )
    base = config or JudgeConfig.load(out) or JudgeConfig()
    written = base.replace(vision=spec.to_dict())
    written.save(out)
    return written


def _resolve_pretrained(path: str | None, folder: Path) -> str | None:
    if path is None or Path(path).is_file():
        return path
    local = folder / path
    return str(local) if local.is_file() else path  # a missing file fails in create_tower


def load_vision_judge(
    folder: str | os.PathLike[str], device: str | torch.device | None = None, dtype: Any = None
) -> tuple[VisionJudgeModel, ImageTokenizer]:
    """``(model in eval mode, tokenizer)`` of a judge saved by `save_vision_judge`."""
    from safetensors.torch import load_file

    from judgelm.engine.loading import load_model_and_tokenizer

    root = Path(folder)
    if not root.is_dir():  # judge.json of a hub repo said "vision": its tower files need a local copy
        raise ModelLoadError(
            f"{folder} is a vision judge: download it to a folder first (hf download {folder} --local-dir DIR)"
        )
    config = JudgeConfig.load(root)
    if config is None or not config.vision:
        raise ModelLoadError(f"{root} has no judge.json with a 'vision' entry")
    spec = VisionSpec.from_dict(config.vision)
    weights = root / VISION_WEIGHTS
    if not weights.is_file():
        raise ModelLoadError(f"{weights} is missing")
    llm, tokenizer, _ = load_model_and_tokenizer(str(root), device=device, dtype=dtype)
    tensors = load_file(str(weights))
    tower_sd = {k.removeprefix("tower."): v for k, v in tensors.items() if k.startswith("tower.")}
    proj_sd = {k.removeprefix("projector."): v for k, v in tensors.items() if k.startswith("projector.")}
    tower = create_tower(
        spec.tower,
        pretrained=None if tower_sd else _resolve_pretrained(spec.pretrained, root),
        feature_layer=spec.feature_layer,
        config=spec.tower_config,
    )
    try:
        if tower_sd:
            tower.visual.load_state_dict(tower_sd, strict=True)
        projector = build_projector(spec.projector, tower.width, llm.get_input_embeddings().weight.shape[1])
        projector.load_state_dict(proj_sd, strict=True)
    except RuntimeError as e:  # missing / unexpected / mis-shaped keys
        raise ModelLoadError(f"{weights} does not fit the tower {spec.tower!r} + {spec.projector!r}: {e}") from e
    if tower.n_tokens != spec.n_image_tokens:
        raise ModelLoadError(f"judge.json says {spec.n_image_tokens} image tokens; the tower gives {tower.n_tokens}")
    wrapped = ImageTokenizer(tokenizer, n_image_tokens=spec.n_image_tokens, image_token=spec.image_token)
    ref = next(llm.parameters())
    tower.to(device=ref.device, dtype=ref.dtype)
    projector.to(device=ref.device, dtype=ref.dtype)
    if not tower_sd:
        tower.requires_grad_(False)  # still the pretrained file: saving again references it
    model = VisionJudgeModel(llm, tower, projector, spec=spec, image_token_id=wrapped.image_token_id)
    return model.eval(), wrapped
