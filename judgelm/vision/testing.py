"""Tiny multimodal judges for tests (random weights, CPU, nothing downloaded)."""

from __future__ import annotations

from typing import Any

from judgelm.vision.model import VisionJudgeModel, build_vision_judge
from judgelm.vision.tokens import ImageTokenizer
from judgelm.vision.tower import TEST_TOWER

__all__ = ["tiny_vision_judge"]


def tiny_vision_judge(
    tokenizer: Any | None = None, *, projector: str = "mlp2x_gelu", seed: int = 0, **llama_kwargs: Any
) -> tuple[VisionJudgeModel, ImageTokenizer]:
    """`judgelm.testing.tiny_llama` + the `TEST_TOWER` (32 px, 16 image tokens) + a projector,
    in eval mode. ``tokenizer`` defaults to the in-memory byte tokenizer (it is copied)."""
    from judgelm.testing import byte_tokenizer, tiny_llama

    tok = tokenizer if tokenizer is not None else byte_tokenizer()
    llm = tiny_llama(tok, seed=seed, **llama_kwargs)
    model, wrapped = build_vision_judge(llm, tok, tower=TEST_TOWER, projector=projector, seed=seed)
    return model.eval(), wrapped
