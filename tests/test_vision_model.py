"""The vision judge model: tower features, placeholder expansion, exact embedding placement,
batching with different image counts, and the judge folder round trip."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from judgelm import Sample, get_format
from judgelm.config import JudgeConfig
from judgelm.engine import GenerationOptions, HFEngine
from judgelm.errors import ModelLoadError
from judgelm.modalities.text import encode, fit_prompt
from judgelm.vision import (
    TEST_TOWER,
    ImageTokenizer,
    build_projector,
    create_tower,
    load_vision_judge,
    save_vision_judge,
)
from judgelm.vision.testing import tiny_vision_judge

N = 16  # TEST_TOWER: 32x32 pixels, 8x8 patches


@pytest.fixture(scope="module")
def vj():
    return tiny_vision_judge()


def _pixels(model, seed: int, n: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        model.preprocess(Image.fromarray((torch.rand(40, 48, 3, generator=g) * 255).byte().numpy())) for _ in range(n)
    ]


def test_tower_reads_the_penultimate_block_without_the_class_token(vj):
    model, _ = vj
    tower = model.tower
    assert (tower.n_tokens, tower.width, tower.image_size) == (N, 32, (32, 32))
    x = torch.randn(3, 3, 32, 32)
    visual = tower.visual
    with torch.no_grad():
        h = visual._embeds(x)  # [3, 1 + 16, 32]
        h = visual.transformer.resblocks[0](h)  # block 0 of 2 = the penultimate block
        expected = h[:, 1:]
        got = tower(x)
    assert got.shape == (3, N, 32)
    torch.testing.assert_close(got, expected)


def test_preprocess_is_open_clips_eval_transform(vj):
    model, _ = vj
    out = model.preprocess(Image.new("RGB", (100, 60), (255, 255, 255)))
    assert out.shape == (3, 32, 32)
    # white through CLIP normalisation: (1 - mean) / std per channel
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.9303, 2.0749, 2.1459]), atol=1e-3, rtol=0)


def test_projectors():
    feats = torch.randn(2, 5, 7)
    assert build_projector("linear", 7, 11)(feats).shape == (2, 5, 11)
    mlp = build_projector("mlp2x_gelu", 7, 11)
    assert mlp(feats).shape == (2, 5, 11) and len(list(mlp.children())) == 3
    with pytest.raises(ValueError, match="unknown projector"):
        build_projector("qformer", 7, 11)


def test_image_tokenizer_expands_each_marker_into_a_run(vj):
    _, tok = vj
    iid = tok.image_token_id
    a, b = (tok.inner(c, add_special_tokens=False)["input_ids"][0] for c in "ab")
    ids = tok("a<image>b<image>", add_special_tokens=True)["input_ids"]
    assert ids == [tok.bos_token_id, a, *[iid] * N, b, *[iid] * N]
    enc = tok("a<image>b", add_special_tokens=False, return_offsets_mapping=True)
    assert len(enc["offset_mapping"]) == len(enc["input_ids"]) == N + 2
    assert enc["offset_mapping"][1 : N + 1] == [(1, 8)] * N
    batch = tok(["<image>", "xy"], add_special_tokens=False, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == (2, N) and batch["attention_mask"][1].sum() == 2
    assert tok.encode("<image>", add_special_tokens=False) == [iid] * N
    assert tok.decode([a, *[iid] * N], skip_special_tokens=True) == "a"
    assert len(tok) == len(tok.inner) == 260
    clone = pickle.loads(pickle.dumps(tok))
    assert clone("<image>")["input_ids"] == copy.deepcopy(tok)("<image>")["input_ids"] == tok("<image>")["input_ids"]
    with pytest.raises(AttributeError):
        tok.n_image_tokens = 3
    with pytest.raises(ValueError, match="truncate"):
        tok("x", truncation=True, max_length=4)


def test_image_prompt_ids_hold_exactly_n_placeholders_per_image(vj):
    _, tok = vj
    sample = Sample("Q?", ("a", "b"), images=("x", "y", "z"))
    enc = fit_prompt(get_format("image_pairwise"), sample, None, tok, 10_000)
    ids = list(enc.input_ids)
    runs = [i for i, t in enumerate(ids) if t == tok.image_token_id]
    assert len(runs) == 3 * N
    text = enc.prompt.text
    for k in range(3):  # each run directly follows its "[Image k]\n" header
        start = runs[k * N]
        assert runs[k * N : (k + 1) * N] == list(range(start, start + N))
        assert tok.decode(ids[:start], skip_special_tokens=False).endswith(f"[Image {k + 1}]\n")
    assert text.count("<image>") == 3


def test_embeddings_land_exactly_at_the_placeholder_positions(vj):
    model, _ = vj
    iid, pad = model.image_token_id, 2
    imgs = _pixels(model, 0, 3)
    # Row 0: two images; row 1: none; row 2: one image (left-padded, like the engine does).
    rows = [
        [0, 10, *[iid] * N, 11, 12, *[iid] * N, 13],
        [0, 20, 21, 22],
        [0, 30, *[iid] * N, 31],
    ]
    L = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (L - len(r)) + r for r in rows])
    with torch.no_grad():
        out = model.embed_inputs(ids, [imgs[:2], [], imgs[2:]])
        plain = model.get_input_embeddings()(ids)
        per_image = [model.encode_images(im[None])[0] for im in imgs]  # each [N, H], alone
    assert out.shape == plain.shape == (3, L, 64)
    mask = ids == iid
    torch.testing.assert_close(out[~mask], plain[~mask], rtol=0, atol=0)  # text untouched
    starts = {(0, 0): L - len(rows[0]) + 2, (0, 1): L - len(rows[0]) + 4 + N, (2, 2): L - len(rows[2]) + 2}
    for (row, image), start in starts.items():
        torch.testing.assert_close(out[row, start : start + N], per_image[image], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(per_image[0], per_image[1])  # different images, different embeddings


def test_placeholder_and_image_count_mismatch_is_a_clear_error(vj):
    model, _ = vj
    ids = torch.tensor([[0, *[model.image_token_id] * N, 5]])
    img = _pixels(model, 1)
    with pytest.raises(ValueError, match=r"row 0 has 16 image placeholder tokens .* 2 image\(s\) x 16"):
        model.embed_inputs(ids, [img * 2])
    with pytest.raises(ValueError, match="row 0 has 16"):
        model.embed_inputs(ids, [[]])
    with pytest.raises(ValueError, match="image lists for a batch"):
        model.embed_inputs(ids, [img, img])
    with pytest.raises(ValueError, match="preprocess"):
        model.embed_inputs(ids, [[torch.zeros(3, 8, 8)]])


def test_forward_with_images_equals_forward_with_embeds(vj):
    model, _ = vj
    ids = torch.tensor([[0, 7, *[model.image_token_id] * N, 9, 10]])
    img = _pixels(model, 2)
    with torch.no_grad():
        a = model(input_ids=ids, images=[img]).logits
        b = model(inputs_embeds=model.embed_inputs(ids, [img])).logits
        c = model(input_ids=ids).logits  # placeholders as plain tokens: different
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0, -1], c[0, -1])


def _prompts(model, tok):
    fmt = get_format("image_pairwise")
    samples = [
        Sample("How many?", ("two", "three"), images=("a",)),
        Sample("Compare both pictures, please.", ("left", "right one"), images=("a", "b")),
    ]
    ids = [list(fit_prompt(fmt, s, None, tok, 10_000).input_ids) for s in samples]
    ids.append(encode(tok, "A text-only prompt without images."))
    imgs = [_pixels(model, 10), _pixels(model, 11, 2), []]
    return ids, imgs


def test_engine_gives_the_same_continuation_alone_or_batched(vj):
    model, tok = vj
    engine = HFEngine(model, tok)
    ids, imgs = _prompts(model, tok)
    six = GenerationOptions(6)
    together = engine.generate(ids, six, images=imgs)
    alone = [engine.generate([i], six, images=[im])[0] for i, im in zip(ids, imgs, strict=True)]
    assert together == alone
    with torch.no_grad():
        batched = engine.prefill(ids, images=imgs, want="logits").last_logits
        single = torch.cat(
            [engine.prefill([i], images=[im], want="logits").last_logits for i, im in zip(ids, imgs, strict=True)]
        )
        other = engine.prefill([ids[0]], images=[_pixels(model, 99)], want="logits").last_logits
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(other[0], single[0], atol=1e-3)  # the image matters


def test_save_and_load_round_trip(vj, tmp_path: Path):
    model, tok = vj
    folder = save_vision_judge(model, tok, tmp_path / "judge", config=JudgeConfig(training={"k": 1}))
    assert folder.vision is not None and folder.training == {"k": 1}
    loaded, ltok = load_vision_judge(tmp_path / "judge")
    assert isinstance(ltok, ImageTokenizer) and ltok.image_token_id == tok.image_token_id and len(ltok) == len(tok)
    cfg = JudgeConfig.load(tmp_path / "judge")
    assert cfg.vision["tower"] == TEST_TOWER and cfg.vision["pretrained"] is None
    assert cfg.vision["projector"] == "mlp2x_gelu" and cfg.vision["n_image_tokens"] == N
    assert cfg.vision["image_token"] == "<image>" and cfg.vision["feature_layer"] == -2
    ids, imgs = _prompts(model, tok)
    e1, e2 = HFEngine(model, tok), HFEngine(loaded, ltok)
    with torch.no_grad():
        torch.testing.assert_close(
            e1.prefill(ids, images=imgs, want="logits").last_logits,
            e2.prefill(ids, images=imgs, want="logits").last_logits,
        )
    assert not loaded.training


def test_round_trip_with_the_llama_tokenizer(llama_tokenizer, tmp_path: Path):
    model, tok = tiny_vision_judge(llama_tokenizer, projector="linear", layers=1)
    assert "<image>" not in llama_tokenizer.get_vocab()  # the session fixture was not modified
    sample = Sample("Q?\n", ("x", "y"), images=("a",))
    ids = list(fit_prompt(get_format("image_pairwise"), sample, None, tok, 4096).input_ids)
    assert ids.count(32000) == N and ids[0] == 1
    save_vision_judge(model, tok, tmp_path / "j")
    loaded, ltok = load_vision_judge(tmp_path / "j")
    assert list(fit_prompt(get_format("image_pairwise"), sample, None, ltok, 4096).input_ids) == ids
    img = _pixels(model, 5)
    with torch.no_grad():
        a = model(input_ids=torch.tensor([ids]), images=[img]).logits[0, -1]
        b = loaded(input_ids=torch.tensor([ids]), images=[img]).logits[0, -1]
    torch.testing.assert_close(a, b)


def test_pretrained_tower_from_a_local_file_is_referenced_not_copied(vj, tmp_path: Path):
    import open_clip

    from judgelm.vision.model import VisionJudgeModel

    torch.manual_seed(123)
    clip = open_clip.create_model(TEST_TOWER, pretrained=None)  # stands in for downloaded CLIP weights
    path = tmp_path / "clip.pt"
    torch.save(clip.state_dict(), path)
    tower = create_tower(TEST_TOWER, pretrained=str(path))
    for k, v in clip.visual.state_dict().items():
        torch.testing.assert_close(tower.visual.state_dict()[k], v)
    model, tok = vj
    tower.requires_grad_(False)
    spec = model.spec.__class__(**{**model.spec.to_dict(), "pretrained": tower.pretrained})
    judge = VisionJudgeModel(model.llm, tower, model.projector, spec=spec, image_token_id=model.image_token_id)
    save_vision_judge(judge, tok, tmp_path / "j")
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "j" / "vision.safetensors")).keys()
    assert keys and all(k.startswith("projector.") for k in keys)
    loaded, _ = load_vision_judge(tmp_path / "j")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.tower(x), tower(x))
    with pytest.raises(ModelLoadError, match="not a local file"):
        create_tower(TEST_TOWER, pretrained=str(tmp_path / "nope.pt"))
    with pytest.raises(ModelLoadError, match="download"):
        create_tower("hf-hub:timm/something")
    with pytest.raises(ModelLoadError, match="unknown open_clip model"):
        create_tower("no-such-tower")


def test_loading_a_broken_judge_folder_fails_clearly(vj, tmp_path: Path):
    model, tok = vj
    save_vision_judge(model, tok, tmp_path / "j")
    (tmp_path / "j" / "vision.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"vision\.safetensors"):
        load_vision_judge(tmp_path / "j")
    save_vision_judge(model, tok, tmp_path / "k")
    cfg = JudgeConfig.load(tmp_path / "k")
    cfg.replace(vision={**cfg.vision, "projector": "linear"}).save(tmp_path / "k")
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_vision_judge(tmp_path / "k")
    with pytest.raises(ModelLoadError, match=r"no judge\.json"):
        load_vision_judge(tmp_path)


def test_placeholder_check_refuses_one_sample_instead_of_failing_its_batch(vj):
    from judgelm.errors import InvalidSampleError
    from judgelm.testing import byte_tokenizer
    from judgelm.vision import check_image_placeholders

    _, tok = vj
    image_ids = list(
        fit_prompt(get_format("image_pairwise"), Sample("Q", ("a", "b"), images=("x",)), None, tok, 9999).input_ids
    )
    check_image_placeholders(tok, image_ids, 1)
    text_ids = list(fit_prompt(get_format("pairwise"), Sample("Q", ("a", "b")), None, tok, 9999).input_ids)
    check_image_placeholders(tok, text_ids, 0)
    with pytest.raises(InvalidSampleError, match=r"no image slot .* use an image format") as info:
        check_image_placeholders(tok, text_ids, 1, sample_id="s1")
    assert info.value.field == "images" and info.value.record == "s1"
    typed = encode(tok, "a question with <image> typed in")
    with pytest.raises(InvalidSampleError, match=r"1 image slot.* for 0 image"):
        check_image_placeholders(tok, typed, 0)
    with pytest.raises(InvalidSampleError, match="no vision tower"):
        check_image_placeholders(byte_tokenizer(), text_ids, 1)
    check_image_placeholders(byte_tokenizer(), text_ids, 0)


def test_projector_starts_at_the_llms_embedding_scale(vj):
    model, _ = vj
    token_rms = model.get_input_embeddings().weight.detach().pow(2).mean().sqrt()
    with torch.no_grad():
        image_rms = model.encode_images(torch.stack(_pixels(model, 7, 4))).pow(2).mean().sqrt()
    assert 0.3 < float(image_rms / token_rms) < 3.0


def test_image_tokens_keep_the_token_embedding_rms_however_the_projector_grows(tmp_path: Path):
    from judgelm.testing import byte_tokenizer, tiny_llama
    from judgelm.vision import build_vision_judge

    model, tok = tiny_vision_judge(seed=4)
    token_rms = float(model.get_input_embeddings().weight.detach().pow(2).mean().sqrt())
    assert model.spec.image_rms == pytest.approx(token_rms, rel=1e-5)
    pixels = torch.stack(_pixels(model, 8, 3))
    with torch.no_grad():
        before = model.encode_images(pixels)
        for p in model.projector.parameters():
            p.mul_(50.0)  # what unchecked training does to it
        after = model.encode_images(pixels)
    for out in (before, after):  # every image token, not just on average
        torch.testing.assert_close(out.pow(2).mean(-1).sqrt(), torch.full(out.shape[:2], token_rms), rtol=1e-4, atol=0)
    save_vision_judge(model, tok, tmp_path / "j")
    loaded, _ = load_vision_judge(tmp_path / "j")
    assert loaded.spec.image_rms == model.spec.image_rms
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_images(pixels), after)
    raw, _ = build_vision_judge(tiny_llama(byte_tokenizer()), byte_tokenizer(), normalize_images=False)
    assert raw.spec.image_rms is None
