"""``image_single`` and ``image_pairwise``: JudgeLM's layouts with the sample's images shown.

The prompt is JudgeLM's, byte for byte, with one image block per image right after the
question block::

    {SYSTEM}
    [Question]
    {question}

    [Image 1]
    <image>

    [Image 2]
    <image>

    [Reference Answer]            (when a reference is shown)
    ...
    [The Start of Assistant 1's Answer] ... [System] ... ### Response:[10]

Remove the image blocks and the text is exactly that of ``single`` / ``pairwise`` for the same
sample, so the verdict grammar (``s1 s2\\n``, ``### Response:10`` + `` s``), the parser, the
scoring head and calibration work unchanged.

``<image>`` (`IMAGE_MARKER`) stands for one image. A vision judge's tokenizer
(`judgelm.vision.ImageTokenizer`) turns each marker into ``n_image_tokens`` copies of the image
token id, and the model writes the projected patch embeddings of that image there. Texts of the
sample may not contain the marker (that would smuggle in an image slot).
"""

from __future__ import annotations

from judgelm.formats._judgelm import APPENDIX, SYSTEM, answer_block, instruction, question_block, reference_block
from judgelm.formats.base import Formatter, VerdictSpec, list_formats, register_format, require
from judgelm.formats.pairwise import PairwiseFormat
from judgelm.formats.single import FORCED_GOLD_SCORE, SingleFormat
from judgelm.types import Sample

__all__ = [
    "IMAGE_MARKER",
    "MAX_IMAGES",
    "ImagePairwiseFormat",
    "ImageSingleFormat",
    "image_blocks",
    "register_image_formats",
]

IMAGE_MARKER = "<image>"
MAX_IMAGES = 16  # per sample: each image costs n_image_tokens of context


def image_blocks(n_images: int) -> str:
    """``[Image k]\\n<image>\\n\\n`` for k = 1..n."""
    return "".join(f"[Image {k}]\n{IMAGE_MARKER}\n\n" for k in range(1, n_images + 1))


def _image_prompt(sample: Sample, answers: tuple[str, ...], instruction_text: str, forced: tuple[str, ...] = ()) -> str:
    # `_judgelm.judgelm_prompt` with the image blocks between question and reference.
    blocks = "".join(answer_block(k, a) for k, a in enumerate(answers, start=1))
    return (
        f"{SYSTEM}\n{question_block(sample.question)}{image_blocks(len(sample.images))}"
        f"{reference_block(sample.reference)}{blocks}[System]\n{instruction_text}\n\n{APPENDIX}{' '.join(forced)}"
    )


def _validate_images(fmt: Formatter, sample: Sample) -> None:
    n = len(sample.images)
    require(n >= 1, f"{fmt.name} needs at least one image", "images")
    require(n <= MAX_IMAGES, f"{fmt.name} takes at most {MAX_IMAGES} images, got {n}", "images")
    texts = {"question": sample.question, "reference": sample.reference, "gold": sample.gold}
    texts.update({f"answers[{i}]": a for i, a in enumerate(sample.answers)})
    for name, text in texts.items():
        require(
            text is None or IMAGE_MARKER not in text,
            f"contains the reserved image marker {IMAGE_MARKER!r}",
            name,
        )


class ImageSingleFormat(SingleFormat):
    """Grade one answer to a question about image(s); gold / reference / neither as ``single``."""

    name = "image_single"
    summary = "one answer to a question about image(s), graded like 'single' ('### Response:10' with a gold answer)"

    def validate(self, sample: Sample) -> None:
        super().validate(sample)
        _validate_images(self, sample)

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        if sample.gold is None:
            return _image_prompt(sample, sample.answers, instruction(1)), VerdictSpec(n_scores=1)
        text = _image_prompt(sample, (sample.gold, sample.answers[0]), instruction(2), (FORCED_GOLD_SCORE,))
        return text, VerdictSpec(n_scores=2, forced=(FORCED_GOLD_SCORE,))


class ImagePairwiseFormat(PairwiseFormat):
    """Compare two answers to a question about image(s) (``s1 s2``; with reference when set)."""

    name = "image_pairwise"
    summary = "two answers to a question about image(s), scores 's1 s2' (JudgeLM pairwise + image blocks)"

    def validate(self, sample: Sample) -> None:
        super().validate(sample)
        _validate_images(self, sample)

    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        return _image_prompt(sample, sample.answers, instruction(2)), VerdictSpec(n_scores=2)


def register_image_formats() -> None:
    """Register both formats (idempotent; `judgelm.formats` calls it on import)."""
    registered = list_formats()
    for cls in (ImageSingleFormat, ImagePairwiseFormat):
        if cls.name not in registered:
            register_format(cls)


register_image_formats()
