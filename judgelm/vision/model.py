"""`VisionJudgeModel`: a causal-LM judge that sees images (LLaVA-style).

It *is* the LLM for the engine — ``config``, ``generation_config``, ``forward`` (KV cache,
``logits_to_keep``), ``get_decoder`` / ``model``, ``get_output_embeddings`` all delegate — plus
`embed_inputs`, which the engine calls for the prefill of prompts that carry images::

    ids [B, L] --embed--> [B, L, H]
    images (row b: k_b tensors [3, S, S]) --tower--> [M, N, C] --projector--> [M, N, H]
    placeholder runs (N ids per image) <-- the M x N projected patches, row by row, in order

Shapes: B rows, L tokens, M = sum of k_b images, N = ``n_image_tokens`` patches per image,
C tower width, H the LLM's hidden size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from judgelm.vision.base import ImageJudgeBase
from judgelm.vision.projector import build_projector
from judgelm.vision.tokens import DEFAULT_IMAGE_TOKEN, ImageTokenizer, add_image_token
from judgelm.vision.tower import TEST_TOWER, VisionTower, create_tower

__all__ = ["VisionJudgeModel", "VisionSpec", "build_vision_judge"]


@dataclass(frozen=True)
class VisionSpec:
    """The ``vision`` entry of ``judge.json``: everything needed to rebuild the vision side."""

    tower: str
    pretrained: str | None
    projector: str
    n_image_tokens: int
    image_token: str = DEFAULT_IMAGE_TOKEN
    feature_layer: int = -2
    tower_config: Mapping[str, Any] | None = field(default=None, compare=False)
    image_rms: float | None = None  # each projected image token is rescaled to this RMS (None: as projected)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tower_config"] = None if self.tower_config is None else dict(self.tower_config)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VisionSpec:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class VisionJudgeModel(ImageJudgeBase):
    """An LLM + an open_clip vision tower + a projector, behaving like the LLM for the engine."""

    def __init__(
        self, llm: nn.Module, tower: VisionTower, projector: nn.Module, *, spec: VisionSpec, image_token_id: int
    ):
        super().__init__()
        self.llm = llm  # registered first: `next(model.parameters())` is the LLM's (device, dtype)
        self.tower = tower
        self.projector = projector
        self.spec = spec
        self.image_token_id = int(image_token_id)
        self.n_image_tokens = tower.n_tokens
        self.image_shape = (3, *tower.image_size)
        if spec.n_image_tokens != tower.n_tokens:
            raise ValueError(f"spec says {spec.n_image_tokens} image tokens, the tower gives {tower.n_tokens}")

    @property
    def lm(self) -> nn.Module:
        return self.llm

    def preprocess(self, image: Any) -> Tensor:
        """PIL image -> ``[3, S, S]`` with the open_clip model's own eval transforms."""
        return self.tower.preprocess(image)

    def encode_images(self, pixels: Tensor) -> Tensor:
        """``[M, 3, S, S]`` pixels -> ``[M, N, H]`` embeddings in the LLM's space (and dtype)."""
        feats = self.tower(pixels)  # [M, N, C]
        proj_param = next(self.projector.parameters())
        out = self.projector(feats.to(proj_param.dtype))  # [M, N, H]
        if self.spec.image_rms is not None:  # a fixed per-token RMS: image rows cannot outgrow the text
            rms = out.float().pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-12)
            out = (out.float() * (self.spec.image_rms / rms)).to(out.dtype)
        return out.to(self.get_input_embeddings().weight.dtype)


@torch.no_grad()
def _match_scale(projector: nn.Module, tower: VisionTower, embeddings: Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(4, 3, *tower.image_size, generator=generator)  # ~ normalised images
    out = projector(tower(pixels))  # [4, N, H]
    ratio = embeddings.float().pow(2).mean().sqrt() / out.float().pow(2).mean().sqrt().clamp(min=1e-12)
    last = (
        projector
        if isinstance(projector, nn.Linear)
        else [m for m in projector.modules() if isinstance(m, nn.Linear)][-1]
    )
    last.weight.mul_(ratio.to(last.weight.dtype))
    if last.bias is not None:
        last.bias.mul_(ratio.to(last.bias.dtype))


def build_vision_judge(
    llm: nn.Module,
    tokenizer: Any,
    *,
    tower: str = TEST_TOWER,
    pretrained: str | None = None,
    projector: str = "mlp2x_gelu",
    feature_layer: int = -2,
    image_token: str = DEFAULT_IMAGE_TOKEN,
    tower_config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    match_embedding_scale: bool = True,
    normalize_images: bool = True,
) -> tuple[VisionJudgeModel, ImageTokenizer]:
    """A new multimodal judge around ``llm``: a copy of ``tokenizer`` with ``image_token`` added
    (``llm``'s embeddings are resized in place when needed), the open_clip tower ``tower``
    (``pretrained=PATH`` or random), and a fresh ``projector`` into ``llm``'s hidden size.

    ``match_embedding_scale``: rescale the projector's last layer so that, on random pixels, its
    outputs have the RMS of ``llm``'s token embeddings. Tower features are often 10-100x larger
    than token embeddings; at that scale the image rows swamp the residual stream and a judge
    trained from there learns to ignore them (measured: see docs/images.md).

    ``normalize_images``: rescale every projected image token to that RMS in the forward too
    (saved as ``VisionSpec.image_rms``). Without it, training grows the projector's outputs to
    10-2000x the token embeddings' RMS and the LLM turns the image rows into attention sinks it
    reads nothing from (measured on the synthetic benchmark: see benchmarks/RESULTS.md)."""
    inner = tokenizer.inner if isinstance(tokenizer, ImageTokenizer) else tokenizer
    tok = add_image_token(inner, image_token)
    rows = llm.get_input_embeddings().weight.shape[0]
    if len(tok) > rows:
        llm.resize_token_embeddings(len(tok), mean_resizing=False)  # the row is overwritten by images
    vision = create_tower(tower, pretrained=pretrained, feature_layer=feature_layer, config=tower_config, seed=seed)
    embeddings = llm.get_input_embeddings().weight
    proj = build_projector(projector, vision.width, embeddings.shape[1])
    if match_embedding_scale:
        _match_scale(proj, vision, embeddings)
    image_rms = float(embeddings.detach().float().pow(2).mean().sqrt()) if normalize_images else None
    ref = next(llm.parameters())
    vision.to(device=ref.device, dtype=ref.dtype)
    proj.to(device=ref.device, dtype=ref.dtype)
    wrapped = ImageTokenizer(tok, n_image_tokens=vision.n_tokens, image_token=image_token)
    spec = VisionSpec(
        tower=tower,
        pretrained=vision.pretrained,
        projector=projector,
        n_image_tokens=vision.n_tokens,
        image_token=image_token,
        feature_layer=feature_layer,
        tower_config=vision.config,
        image_rms=image_rms,
    )
    model = VisionJudgeModel(llm, vision, proj, spec=spec, image_token_id=wrapped.image_token_id)
    return model.train(llm.training), wrapped
