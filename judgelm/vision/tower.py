"""The vision tower: the image encoder of any open_clip model, read at an intermediate layer.

LLaVA-style, the judge sees patch features from the *penultimate* block (``feature_layer=-2``):
the last block is tuned to the contrastive pooled embedding, the one before keeps more local
detail. Class/prefix tokens are dropped; ``n_tokens`` patch features per image remain.

Weights come from a local file (``pretrained=PATH``; nothing is ever downloaded) or are random
(``pretrained=None``). Architectures are open_clip model configs by name: the built-in ones
(``ViT-B-32``, ``ViT-L-14``, ...) or one registered with `register_tower_config`. judgelm ships
tiny configs: `TEST_TOWER` for unit tests, `SHAPES_TOWER` (64 tokens) and `SHAPES_TOWER_16`
(16 tokens) for the synthetic benchmark.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from judgelm.errors import MissingDependencyError, ModelLoadError

__all__ = [
    "SHAPES_TOWER",
    "SHAPES_TOWER_16",
    "TEST_TOWER",
    "TOWER_CONFIGS",
    "VisionTower",
    "create_tower",
    "register_tower_config",
    "tower_config",
]

TEST_TOWER = "judgelm-test-vit"
SHAPES_TOWER = "judgelm-shapes-vit"
SHAPES_TOWER_16 = "judgelm-shapes-vit-16"

# open_clip model configs (a text tower is required by the format; it is built and dropped).
_TINY_TEXT = {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}
TOWER_CONFIGS: Mapping[str, Mapping[str, Any]] = {
    # 32x32 pixels, 8x8 patches -> 16 tokens of width 32; two blocks (features after block 1).
    TEST_TOWER: {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": _TINY_TEXT,
    },
    # 64x64 pixels, 8x8 patches -> 64 tokens of width 96; three blocks (features after block 2).
    SHAPES_TOWER: {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "head_width": 32, "patch_size": 8},
        "text_cfg": _TINY_TEXT,
    },
    # The same with 16x16 patches -> 16 tokens per image (a shorter prompt, less diluted patches).
    SHAPES_TOWER_16: {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "head_width": 32, "patch_size": 16},
        "text_cfg": _TINY_TEXT,
    },
}

_CONFIG_DIR: Path | None = None


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        raise MissingDependencyError("open_clip_torch", "image", "Vision-aware judging") from None
    return open_clip


def _config_dir() -> Path:
    global _CONFIG_DIR
    if _CONFIG_DIR is None:
        _CONFIG_DIR = Path(tempfile.mkdtemp(prefix="judgelm-open-clip-"))
        atexit.register(shutil.rmtree, _CONFIG_DIR, ignore_errors=True)
    return _CONFIG_DIR


def register_tower_config(name: str, config: Mapping[str, Any]) -> None:
    """Make ``name`` an open_clip model config (``{"embed_dim", "vision_cfg", "text_cfg"}``).

    Registering the same config again is a no-op; a different config under a built-in or
    earlier name replaces it for this process."""
    open_clip = _open_clip()
    if not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ValueError("an open_clip config needs 'embed_dim', 'vision_cfg' and 'text_cfg'")
    if name in open_clip.list_models() and open_clip.get_model_config(name) == dict(config):
        return
    if "/" in name or name.startswith((".", "hf-hub:", "local-dir:")):
        raise ValueError(f"not a plain model name: {name!r}")
    path = _config_dir() / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    open_clip.add_model_config(path)  # public API: open_clip reads configs from files


def tower_config(name: str) -> dict[str, Any]:
    """The open_clip config of a model name (judgelm's tiny ones are registered on demand)."""
    open_clip = _open_clip()
    if name in TOWER_CONFIGS:
        register_tower_config(name, TOWER_CONFIGS[name])
    config = open_clip.get_model_config(name)
    if config is None:
        raise ModelLoadError(f"unknown open_clip model {name!r}; register it with register_tower_config")
    return config


class VisionTower(nn.Module):
    """``forward(pixels [M, 3, S, S]) -> patch features [M, N, C]`` at ``feature_layer``."""

    def __init__(
        self,
        visual: nn.Module,
        preprocess: Callable[[Any], Tensor],
        *,
        name: str,
        pretrained: str | None,
        feature_layer: int,
        config: Mapping[str, Any],
    ):
        super().__init__()
        self.visual = visual
        self.preprocess = preprocess  # PIL image -> [3, S, S] (open_clip's own eval transform)
        self.name = name
        self.pretrained = pretrained
        self.feature_layer = feature_layer
        self.config = dict(config)
        size = getattr(visual, "image_size", None) or (224, 224)
        self.image_size: tuple[int, int] = tuple(size) if isinstance(size, tuple | list) else (size, size)  # type: ignore[assignment]
        with torch.no_grad():  # one dummy image tells the token count and width of any tower type
            probe = self.forward(torch.zeros(1, 3, *self.image_size))
        self.n_tokens, self.width = int(probe.shape[1]), int(probe.shape[2])

    def forward(self, pixels: Tensor) -> Tensor:
        param = next(self.visual.parameters())
        out = self.visual.forward_intermediates(
            pixels.to(device=param.device, dtype=param.dtype),
            indices=[self.feature_layer],
            stop_early=True,  # blocks after the feature layer are never run
            intermediates_only=True,
            output_fmt="NCHW",
        )
        x = out["image_intermediates"][0]  # ViT: [M, C, h, w] (prefix tokens dropped); CNN: same
        return x.flatten(2).transpose(1, 2) if x.ndim == 4 else x  # [M, N = h*w, C]


def _check_pretrained(pretrained: str | os.PathLike[str] | None) -> str | None:
    if pretrained is None:
        return None
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ModelLoadError(
            f"pretrained={str(pretrained)!r} is not a local file; judgelm never downloads tower weights "
            "(pass the path of a downloaded open_clip checkpoint, or None for random weights)"
        )
    return str(path.resolve())  # absolute: open_clip would treat a bare word as a hub tag


def create_tower(
    name: str,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    feature_layer: int = -2,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> VisionTower:
    """The image tower of open_clip model ``name`` (on CPU, fp32).

    ``config``: an open_clip model config to register under ``name`` first (saved judges carry
    theirs). ``seed``: seeds the random init (``pretrained=None``)."""
    open_clip = _open_clip()
    if name.startswith("hf-hub:"):
        raise ModelLoadError("hf-hub: towers would download; pass a local-dir: or a model name with a local file")
    if config is not None:
        register_tower_config(name, config)
    cfg = tower_config(name) if not name.startswith("local-dir:") else {}
    path = _check_pretrained(pretrained)
    if seed is not None:
        torch.manual_seed(seed)
    quiet = logging.getLogger().level
    try:
        if path is None:  # open_clip logs a warning for every random init: expected here
            logging.getLogger().setLevel(max(quiet, logging.ERROR))
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=path, pretrained_text=False, pretrained_image=False, weights_only=True
            )
    except pickle.UnpicklingError:
        raise ModelLoadError(
            f"{path}: refused: this tower file holds pickled objects besides tensors, and judgelm never runs "
            "pickled code; convert it to safetensors (or a weights-only torch file) from a source you trust"
        ) from None
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"could not create the open_clip tower {name!r}: {e}") from e
    finally:
        logging.getLogger().setLevel(quiet)
    visual = model.visual
    del model  # the text tower is not needed
    return VisionTower(visual, preprocess, name=name, pretrained=path, feature_layer=feature_layer, config=cfg).eval()
