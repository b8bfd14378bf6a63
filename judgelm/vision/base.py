"""`ImageJudgeBase`: what every image-seeing judge model shares — it faces the engine as the causal
LM it wraps (``config``, ``forward`` with KV cache and ``logits_to_keep``, embeddings, decoder all
delegate) and writes image features over the prompt's placeholder runs (`embed_inputs`).

Subclasses set ``image_token_id``, ``n_image_tokens`` and ``image_shape`` and implement
`preprocess` and `encode_images`; ``lm`` is the wrapped causal LM.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ImageJudgeBase"]


class ImageJudgeBase(nn.Module):
    image_token_id: int
    n_image_tokens: int
    image_shape: tuple[int, ...]  # what `preprocess` returns for one image, e.g. (3, S, S)

    @property
    def lm(self) -> nn.Module:
        """The wrapped causal LM, whose ``forward`` runs the prompt."""
        raise NotImplementedError

    def preprocess(self, image: Any) -> Tensor:
        """PIL image -> the pixel tensor `encode_images` takes (``image_shape``)."""
        raise NotImplementedError

    def encode_images(self, pixels: Tensor) -> Tensor:
        """``[M, *image_shape]`` pixels -> ``[M, N, H]`` embeddings in the LLM's space and dtype."""
        raise NotImplementedError

    # ---- the LLM's face -------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        return self.lm.config

    @property
    def generation_config(self) -> Any:
        return self.lm.generation_config

    @property
    def model(self) -> nn.Module:
        return self.get_decoder()

    def get_decoder(self) -> nn.Module:
        return self.lm.get_decoder()

    def get_input_embeddings(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm.get_output_embeddings()

    @functools.cached_property
    def _cache_kwarg(self) -> str:
        """The LM's name for the KV cache argument (``cache`` or ``past_key_values``)."""
        return "cache" if "cache" in inspect.signature(self.lm.forward).parameters else "past_key_values"

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cache: Any = None,
        inputs_embeds: Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | Tensor = 0,
        past_key_values: Any = None,
        images: Sequence[Sequence[Tensor]] | None = None,
        **kwargs: Any,
    ) -> Any:
        """The LM's forward (``labels`` and other keywords pass through). With ``images``
        (training), the placeholders of ``input_ids`` are replaced first (`embed_inputs`); the
        engine passes ``inputs_embeds`` itself instead."""
        if images is not None:
            if input_ids is None:
                raise ValueError("images need input_ids (their placeholder positions)")
            inputs_embeds, input_ids = self.embed_inputs(input_ids, images), None
        kwargs[self._cache_kwarg] = cache if cache is not None else past_key_values
        return self.lm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    # ---- images ---------------------------------------------------------------------------------
    def embed_inputs(self, input_ids: Tensor, images: Sequence[Sequence[Tensor]]) -> Tensor:
        """Token embeddings ``[B, L, H]`` with row b's images, in order, written over row b's
        placeholder runs. Raises `ValueError` if a row's placeholder count is not its image
        count times ``n_image_tokens``, or an image is not ``image_shape``."""
        if len(images) != input_ids.shape[0]:
            raise ValueError(f"{len(images)} image lists for a batch of {input_ids.shape[0]} rows")
        embeds = self.get_input_embeddings()(input_ids)  # [B, L, H]
        is_image = input_ids == self.image_token_id  # [B, L]
        counts = is_image.sum(dim=1).tolist()
        for b, (row_images, count) in enumerate(zip(images, counts, strict=True)):
            expected = len(row_images) * self.n_image_tokens
            if count != expected:
                raise ValueError(
                    f"row {b} has {count} image placeholder tokens (id {self.image_token_id}) but "
                    f"{len(row_images)} image(s) x {self.n_image_tokens} tokens = {expected}"
                )
        flat = [img for row in images for img in row]
        if not flat:
            return embeds
        for img in flat:
            if tuple(img.shape) != tuple(self.image_shape):
                raise ValueError(f"an image tensor has shape {tuple(img.shape)}; `preprocess` gives {self.image_shape}")
        feats = self.encode_images(torch.stack(flat).to(embeds.device))  # [M, N, H]
        # masked_scatter fills the True positions in row-major order: row 0's placeholders
        # first, left to right, i.e. row 0's images in order, then row 1's, ...
        return embeds.masked_scatter(is_image[..., None], feats.reshape(-1, feats.shape[-1]))
