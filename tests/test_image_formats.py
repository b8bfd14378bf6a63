"""``image_single`` / ``image_pairwise``: JudgeLM's prompts with image blocks after the question,
the verdict grammar unchanged, and the native JSONL ``images`` field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import judgelm.formats.image as image_formats
from judgelm import Sample, get_format, list_formats
from judgelm.errors import InvalidSampleError
from judgelm.formats.image import IMAGE_MARKER, image_blocks
from judgelm.io import read_samples

IMG = ("cat.png",)


def test_both_formats_are_registered():
    formats = list_formats()
    assert "image_single" in formats and "image_pairwise" in formats
    image_formats.register_image_formats()  # idempotent


@pytest.mark.parametrize(
    ("image_mode", "text_mode", "sample"),
    [
        ("image_pairwise", "pairwise", Sample("How many cats?\n", ("Two.", "Three."), images=IMG)),
        ("image_pairwise", "pairwise", Sample("Q", ("a", "b"), reference="ref", images=IMG * 3)),
        ("image_single", "single", Sample("Q", ("a",), gold="g", images=IMG)),
        ("image_single", "single", Sample("Q", ("a",), reference="r", images=IMG * 2)),
        ("image_single", "single", Sample("Q", ("a",), images=IMG)),
    ],
)
def test_prompt_is_the_text_format_plus_image_blocks_after_the_question(image_mode, text_mode, sample):
    prompt = get_format(image_mode).render(sample)
    text = get_format(text_mode).render(sample).text
    blocks = image_blocks(len(sample.images))
    head = f"[Question]\n{sample.question}\n\n"
    assert prompt.text == text.replace(head, head + blocks, 1)
    assert prompt.text.count(IMAGE_MARKER) == len(sample.images)
    assert prompt.images == sample.images
    assert prompt.spec == get_format(text_mode).render(sample).spec  # verdict grammar unchanged


def test_exact_layout_of_a_two_image_pairwise_prompt():
    text = get_format("image_pairwise").render(Sample("Q?", ("A", "B"), images=("x", "y"))).text
    assert (
        "[Question]\nQ?\n\n[Image 1]\n<image>\n\n[Image 2]\n<image>\n\n[The Start of Assistant 1's Answer]\nA\n\n"
        in text
    )
    assert text.endswith("### Response:")
    single = get_format("image_single").render(Sample("Q?", ("A",), gold="G", images=("x",))).text
    assert single.endswith("### Response:10")


def test_swap_keeps_images_and_moves_answers():
    fmt = get_format("image_pairwise")
    sample = Sample("Q", ("first", "second"), images=("i1", "i2"))
    orders = fmt.orders(sample, swap=True)
    swapped = fmt.render(sample, orders[1])
    assert swapped.images == ("i1", "i2")
    assert swapped.text.index("second") < swapped.text.index("first")
    assert fmt.parse("3 8\n", swapped).scores == (8.0, 3.0)


def test_template_hash_depends_on_the_image_count_not_the_images():
    fmt = get_format("image_pairwise")
    one = fmt.render(Sample("Q", ("a", "b"), images=("x",)))
    other = fmt.render(Sample("Q2", ("c", "d"), images=("y",)))
    two = fmt.render(Sample("Q", ("a", "b"), images=("x", "y")))
    assert one.template_hash == other.template_hash != two.template_hash


@pytest.mark.parametrize(
    ("sample", "field"),
    [
        (Sample("Q", ("a", "b")), "images"),
        (Sample("Q", ("a", "b"), images=("x",) * 17), "images"),
        (Sample("look: <image>", ("a", "b"), images=IMG), "question"),
        (Sample("Q", ("a", "b<image>"), images=IMG), "answers[1]"),
        (Sample("Q", ("a", "b"), reference="<image>", images=IMG), "reference"),
        (Sample("Q", ("a", "b", "c"), images=IMG), "answers"),
    ],
)
def test_invalid_image_samples_name_the_field(sample, field):
    with pytest.raises(InvalidSampleError) as info:
        get_format("image_pairwise").render(sample)
    assert info.value.field == field


def test_single_rejects_marker_in_gold():
    with pytest.raises(InvalidSampleError) as info:
        get_format("image_single").render(Sample("Q", ("a",), gold="<image>", images=IMG))
    assert info.value.field == "gold"


def test_native_jsonl_images_are_resolved_relative_to_the_file(tmp_path: Path):
    sub = tmp_path / "data"
    sub.mkdir()
    rows = [
        {"id": "1", "mode": "image_pairwise", "question": "Q", "answers": ["a", "b"], "images": ["img/1.png"]},
        {"id": "2", "mode": "image_single", "question": "Q", "answers": ["a"], "images": "/abs/2.png"},
    ]
    path = sub / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    recs = list(read_samples(path))
    assert recs[0].sample.images == (str(sub / "img/1.png"),)
    assert recs[1].sample.images == ("/abs/2.png",)
    prompt = get_format(recs[0].sample.mode).render(recs[0].sample)
    assert prompt.images == (str(sub / "img/1.png"),)


_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer.\n"
_PAIR_INSTRUCTION = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above.\nPlease rate the helpfulness, relevance, accuracy, level of details of their "
    "responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\nPlease first output a single line containing only two values indicating the "
    "scores for Assistant 1 and 2, respectively. The two scores are separated by a space. In the subsequent line, "
    "please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that "
    "the order in which the responses were presented does not affect your judgment."
)
_SINGLE_INSTRUCTION = (
    "We would like to request your feedback on the performance of an AI assistant in response to the user "
    "question displayed above.\nPlease rate the helpfulness, relevance, accuracy, level of details of its "
    "response. The assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\nPlease first output a single line containing only one value indicating the "
    "score for Assistant 1. In the subsequent line, please provide a comprehensive explanation of your "
    "evaluation, avoiding any potential bias."
)


def test_golden_image_pairwise_prompt_with_reference():
    prompt = get_format("image_pairwise").render(
        Sample("How many cats?", ("Two.", "Three."), reference="Two cats.", images=("a.png", "b.png"))
    )
    assert prompt.text == (
        f"{_SYSTEM}[Question]\nHow many cats?\n\n[Image 1]\n<image>\n\n[Image 2]\n<image>\n\n"
        "[Reference Answer]\nTwo cats.\n\n"
        "[The Start of Assistant 1's Answer]\nTwo.\n\n[The End of Assistant 1's Answer]\n\n"
        "[The Start of Assistant 2's Answer]\nThree.\n\n[The End of Assistant 2's Answer]\n\n"
        f"[System]\n{_PAIR_INSTRUCTION}\n\n### Response:"
    )
    assert (prompt.spec.n_scores, prompt.spec.forced) == (2, ())
    assert get_format("image_pairwise").parse("8 3\nThe first is right.", prompt).scores == (8.0, 3.0)


def test_golden_image_single_prompts_with_and_without_gold():
    fmt = get_format("image_single")
    plain = fmt.render(Sample("What color?", ("Red.",), images=("a.png",)))
    assert plain.text == (
        f"{_SYSTEM}[Question]\nWhat color?\n\n[Image 1]\n<image>\n\n"
        "[The Start of Assistant 1's Answer]\nRed.\n\n[The End of Assistant 1's Answer]\n\n"
        f"[System]\n{_SINGLE_INSTRUCTION}\n\n### Response:"
    )
    assert plain.spec.n_scores == 1 and fmt.parse("7\nok", plain).scores == (7.0,)
    gold = fmt.render(Sample("What color?", ("Red.",), gold="Blue.", images=("a.png",)))
    assert gold.text.startswith(f"{_SYSTEM}[Question]\nWhat color?\n\n[Image 1]\n<image>\n\n")
    assert "[The Start of Assistant 1's Answer]\nBlue.\n\n" in gold.text
    assert "[The Start of Assistant 2's Answer]\nRed.\n\n" in gold.text
    assert gold.text.endswith("### Response:10") and gold.spec.forced == ("10",)
    text_prompt = get_format("single").render(Sample("What color?", ("Red.",), gold="Blue."))
    head = "[Question]\nWhat color?\n\n"
    assert gold.text == text_prompt.text.replace(head, head + image_blocks(1))
    assert fmt.parse(" 4\nwrong colour", gold).scores == get_format("single").parse(" 4\nwrong", text_prompt).scores


def test_image_formats_are_registered_by_default():
    import subprocess
    import sys

    code = "from judgelm.formats import list_formats; import sys; print(sorted(list_formats()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "'image_pairwise'" in out.stdout and "'image_single'" in out.stdout
