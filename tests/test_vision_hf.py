"""Hugging Face vision-language models (LLaVA) as judges through the same contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from judgelm import Judge, Sample
from judgelm.vision import is_hf_vision_model, load_hf_vision_judge


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory) -> Path:
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from judgelm.testing import byte_tokenizer
    from judgelm.vision.tokens import add_image_token

    tok = add_image_token(byte_tokenizer())
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llava")
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(
        image_processor=processor, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default"
    ).save_pretrained(folder)
    return folder


def test_placement_matches_the_models_own_forward(llava_dir: Path):
    assert is_hf_vision_model(llava_dir) and not is_hf_vision_model(llava_dir / "missing")
    model, tok = load_hf_vision_judge(llava_dir)
    assert model.n_image_tokens == 16 and tok.n_image_tokens == 16  # 4x4 patches, CLS dropped
    ids = torch.tensor([tok("before <image> after", add_special_tokens=True)["input_ids"]])
    pixels = model.preprocess(Image.new("RGB", (50, 40), (200, 30, 30)))
    with torch.no_grad():
        ours = model(input_ids=ids, images=[[pixels]]).logits
        theirs = model.vlm(input_ids=ids, pixel_values=pixels[None]).logits
    torch.testing.assert_close(ours, theirs)
    with pytest.raises(ValueError, match="row 0 has 16"):
        model.embed_inputs(ids, [[]])


def test_a_llava_judge_gives_the_same_verdict_alone_or_batched(llava_dir: Path):
    model, tok = load_hf_vision_judge(llava_dir)
    judge = Judge(model, tok, name="tiny-llava")
    red, blue = Image.new("RGB", (40, 40), (220, 20, 20)), Image.new("RGB", (30, 50), (20, 20, 220))
    samples = [
        Sample("What color?", ("Red.", "Blue."), images=(red,), id="a", mode="image_pairwise"),
        Sample("Same color?", ("No.",), images=(red, blue), id="b", mode="image_single"),
        Sample("2+2?", ("4", "5"), id="c", mode="pairwise"),
    ]
    for scoring, kw in (("text", {"explain": True, "max_new_tokens": 6}), ("logits", {})):
        batched = judge.judge(samples, scoring=scoring, **kw)
        for s, v in zip(samples, batched, strict=True):
            alone = judge.judge([s], scoring=scoring, **kw)[0]
            assert (v.text, v.scores, v.reason_code) == (alone.text, alone.scores, alone.reason_code)
            if v.distributions:
                assert v.distributions[0].probs == pytest.approx(alone.distributions[0].probs, abs=1e-5)


def test_from_pretrained_and_save_pretrained_round_trip(llava_dir: Path, tmp_path: Path):
    from judgelm.engine.hf import HFEngine
    from judgelm.vision import HFVisionJudge

    judge = Judge.from_pretrained(str(llava_dir), device="cpu")
    assert isinstance(judge.model, HFVisionJudge) and isinstance(judge.engine, HFEngine)
    judge.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").is_file()
    again = Judge.from_pretrained(str(tmp_path / "again"), device="cpu")
    assert isinstance(again.model, HFVisionJudge)
    sample = Sample("What color?", ("Red.", "Blue."), images=(Image.new("RGB", (40, 40), (220, 20, 20)),), id="a")
    a, b = (j.judge([sample.replace(mode="image_pairwise")], scoring="logits")[0] for j in (judge, again))
    assert a.distributions[0].probs == pytest.approx(b.distributions[0].probs, abs=1e-6)
