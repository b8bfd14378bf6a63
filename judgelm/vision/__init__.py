"""Vision-aware judging (LLaVA-style, on open_clip): the judge sees the sample's images.

>>> from judgelm.testing import byte_tokenizer, tiny_llama                     # doctest: +SKIP
>>> from judgelm.vision import build_vision_judge, save_vision_judge           # doctest: +SKIP
>>> tok = byte_tokenizer()                                                     # doctest: +SKIP
>>> model, tok = build_vision_judge(tiny_llama(tok), tok, tower="judgelm-test-vit")  # doctest: +SKIP
>>> save_vision_judge(model, tok, "my-vision-judge")                           # doctest: +SKIP

- `build_vision_judge`: an LLM + an open_clip tower (by name; ``pretrained=PATH`` or random) +
  a ``linear`` / ``mlp2x_gelu`` projector; the tokenizer gains the ``<image>`` token.
- `VisionJudgeModel`: what the engine runs; `embed_inputs` writes projected patch features
  over the image placeholders.
- `ImageTokenizer`: expands each ``<image>`` marker of a prompt into ``n_image_tokens`` ids.
- `save_vision_judge` / `load_vision_judge`: the judge folder (see `judgelm.vision.saving`).
- `load_hf_vision_judge`: a Hugging Face ``AutoModelForImageTextToText`` (LLaVA-style) folder
  behind the same contract (`HFVisionJudge`).
- `judgelm.vision.train`: training with `judgelm.train`'s recipe on image+text records.

Importing this package registers the ``image_single`` and ``image_pairwise`` formats.
"""

import judgelm.formats.image  # noqa: F401  (registers the image formats)
from judgelm.vision.hf_vlm import HFVisionJudge, is_hf_vision_model, load_hf_vision_judge
from judgelm.vision.model import VisionJudgeModel, VisionSpec, build_vision_judge
from judgelm.vision.projector import PROJECTORS, build_projector
from judgelm.vision.saving import VISION_WEIGHTS, is_vision_judge, load_vision_judge, save_vision_judge
from judgelm.vision.tokens import DEFAULT_IMAGE_TOKEN, ImageTokenizer, add_image_token, check_image_placeholders
from judgelm.vision.tower import (
    SHAPES_TOWER,
    SHAPES_TOWER_16,
    TEST_TOWER,
    VisionTower,
    create_tower,
    register_tower_config,
)

__all__ = [
    "DEFAULT_IMAGE_TOKEN",
    "PROJECTORS",
    "SHAPES_TOWER",
    "SHAPES_TOWER_16",
    "TEST_TOWER",
    "VISION_WEIGHTS",
    "HFVisionJudge",
    "ImageTokenizer",
    "VisionJudgeModel",
    "VisionSpec",
    "VisionTower",
    "add_image_token",
    "build_projector",
    "build_vision_judge",
    "check_image_placeholders",
    "create_tower",
    "is_hf_vision_model",
    "is_vision_judge",
    "load_hf_vision_judge",
    "load_vision_judge",
    "register_tower_config",
    "save_vision_judge",
]
