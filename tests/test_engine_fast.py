"""`PackedEngine` (packed prefill, slot KV cache, tree step, continuous batching) against the HF
model and `HFEngine`, in fp32 on CPU: the same numbers to 1e-5, the same greedy tokens (up to a
near-tie of the two best logits, see greedy.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from greedy import assert_same_greedy, engine_logits_at, hf_logits_at

from judgelm import Judge, Sample, Turn
from judgelm.engine import GenerationOptions, HFEngine, PackedEngine, make_engine
from judgelm.engine.attention import AttentionBackend
from judgelm.engine.continuous import DecodeStep
from judgelm.engine.kv_cache import KVCache
from judgelm.engine.llama_family import unsupported_reason
from judgelm.modalities.text import encode
from judgelm.scoring.grammar import line_text
from judgelm.testing import BigramLM, ScriptedEngine

SAMPLES = [
    Sample("What is 2+2?", ("4", "five"), reference="4"),
    Sample("A much longer question about the capital of France " * 4, ("Paris " * 30, "Lyon")),
    Sample("q", ("one",), gold="g"),
    Sample("Pick a prime.", ("4", "7", "9")),
    Sample(
        conversations=(
            (Turn("user", "hi"), Turn("assistant", "hello")),
            (Turn("user", "hi"), Turn("assistant", "hey there")),
        )
    ),
]


@pytest.fixture(autouse=True)
def poisoned_caches(monkeypatch):
    """Fresh (not zeroed) caches start as NaN: any read of a position nobody wrote shows up."""
    empty = KVCache.empty.__func__

    def poisoned(cls, *args, zeroed=False, **kwargs):
        cache = empty(cls, *args, zeroed=zeroed, **kwargs)
        if not zeroed:
            cache.k.fill_(float("nan"))
            cache.v.fill_(float("nan"))
        return cache

    monkeypatch.setattr(KVCache, "empty", classmethod(poisoned))


@pytest.fixture(scope="module")
def fast(tiny_model, llama_tokenizer) -> PackedEngine:
    return PackedEngine(tiny_model, llama_tokenizer)


@pytest.fixture(scope="module")
def hf(tiny_model, llama_tokenizer) -> HFEngine:
    return HFEngine(tiny_model, llama_tokenizer)


def _prompts(n_shared: int = 3) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    rand = [torch.randint(3, 32000, (n,), generator=g).tolist() for n in (5, 70, 17, 120, 1)]
    stem = rand[3][:100]
    return rand + [[*stem, 11 * i + 3, 7] for i in range(n_shared)]  # a shared-prefix group of 1 + n


@pytest.mark.parametrize("prune", [False, True])
def test_prefill_packed_equals_padded(fast, hf, prune):
    """``prune``: the last layer only at each prompt's last token (the CUDA default)."""
    prompts = _prompts()
    fast.lm.prune_last_layer = prune
    try:
        a, b = fast.prefill(prompts, want="hidden"), hf.prefill(prompts, want="hidden")
        torch.testing.assert_close(a.last_hidden, b.last_hidden, atol=1e-5, rtol=1e-5)
        a, b = fast.prefill(prompts, want="logits"), hf.prefill(prompts, want="logits")
        torch.testing.assert_close(a.last_logits, b.last_logits, atol=1e-4, rtol=1e-5)
        tokens, parents, depths = _trees()
        got = fast.tree_forward(fast.prefill(prompts, want="hidden"), tokens, parents, depths)
        ref = hf.tree_forward(hf.prefill(prompts, want="hidden"), tokens, parents, depths)
        for r, t in enumerate(tokens):
            torch.testing.assert_close(got[r, : 1 + len(t)], ref[r, : 1 + len(t)], atol=1e-5, rtol=1e-5)
    finally:
        fast.lm.prune_last_layer = False


def _trees():
    tokens = [[5, 6, 7], [8], [9, 10, 11, 12], [], [1, 2], [3], [4, 4], [13, 14, 15]]
    parents = [[0, 1, 1], [0], [0, 1, 2, 2], [], [0, 0], [0], [0, 1], [0, 0, 2]]
    depths = [[1, 2, 2], [1], [1, 2, 3, 3], [], [1, 1], [1], [1, 2], [1, 1, 2]]
    return tokens, parents, depths


def test_tree_step_equals_hf_and_leaves_the_cache_as_it_was(fast, hf):
    prompts, (tokens, parents, depths) = _prompts(), _trees()
    a, b = fast.prefill(prompts, want="hidden"), hf.prefill(prompts, want="hidden")
    got, ref = fast.tree_forward(a, tokens, parents, depths), hf.tree_forward(b, tokens, parents, depths)
    for r, t in enumerate(tokens):
        torch.testing.assert_close(got[r, : 1 + len(t)], ref[r, : 1 + len(t)], atol=1e-5, rtol=1e-5)
    again = fast.tree_forward(a, tokens, parents, depths)
    torch.testing.assert_close(again, got, atol=0, rtol=0)
    # a different (greedy-round-like) tree after the first one sees only the prompt
    small = fast.tree_forward(
        a, [[t[0]] if t else [] for t in tokens], [[0] if t else [] for t in tokens], [[1] if t else [] for t in tokens]
    )
    for r, t in enumerate(tokens):
        if t and parents[r][0] == 0:
            torch.testing.assert_close(small[r, 1], got[r, 1], atol=1e-5, rtol=1e-5)


def _brute_force(model, tokenizer, prompt):
    """Teacher-forced log-probability of every line of the joint grammar, one sequence each."""
    spec, n = prompt.spec, len(encode(tokenizer, prompt.text))
    combos = list(itertools.product(spec.score_values, repeat=spec.n_graded))
    out = {}
    with torch.no_grad():
        for c in combos:
            s = encode(tokenizer, prompt.text + line_text(spec, c))
            logp = model(torch.tensor([s])).logits[0].double().log_softmax(-1)
            out[c] = sum(float(logp[k - 1, s[k]]) for k in range(n, len(s)))
    return out


def test_joint_distribution_equals_brute_force(tiny_model, llama_tokenizer, fast):
    judge = Judge(tiny_model, llama_tokenizer, engine=fast)
    sample = SAMPLES[2]  # single answer: 10 lines, cheap to enumerate
    prompt = judge.encode(sample)[0].prompt
    raw = judge.raw_scores([sample])[0][0][0]
    brute = _brute_force(tiny_model, llama_tokenizer, prompt)
    log_mass = torch.logsumexp(torch.tensor(list(brute.values()), dtype=torch.float64), 0)
    index = {v: i for i, v in enumerate(prompt.spec.score_values)}
    got = dict(zip(raw.line_values, raw.line_probs, strict=True))
    for combo, lp in brute.items():
        assert got[tuple(index[v] for v in combo)] == pytest.approx(math.exp(lp - log_mass), abs=1e-5)


def test_verdict_distributions_equal_the_hf_engine(tiny_model, llama_tokenizer, fast, hf):
    """Packed (fast) and padded (HF) give the same verdict distributions to 1e-5, joint and greedy."""
    fj, hj = Judge(tiny_model, llama_tokenizer, engine=fast), Judge(tiny_model, llama_tokenizer, engine=hf)
    for slots in ("auto", "greedy"):
        a, b = fj.raw_scores(SAMPLES, swap=True, slots=slots), hj.raw_scores(SAMPLES, swap=True, slots=slots)
        for (sa, _), (sb, _) in zip(a, b, strict=True):
            for x, y in zip(sa, sb, strict=True):
                assert x.strategy == y.strategy
                for px, py in zip(x.slot_probs, y.slot_probs, strict=True):
                    assert px == pytest.approx(py, abs=1e-5)
                assert x.grammar_mass == pytest.approx(y.grammar_mass, rel=1e-4)


def _hf_greedy(model, ids, n, eos):
    ref = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=0)
    new = ref[0, len(ids) :].tolist()
    return new[: new.index(eos) + 1] if eos in new else new


def test_generation_equals_hf_generate_with_continuous_batching(tiny_model, llama_tokenizer):
    """Two slots for five prompts: rows finish and are replaced; tokens equal HF greedy generate."""
    engine = PackedEngine(tiny_model, llama_tokenizer, max_batch_size=2)
    prompts = [list(e.input_ids) for s in SAMPLES for e in Judge(tiny_model, llama_tokenizer, engine=engine).encode(s)]
    seen = []
    got = engine.generate(prompts, GenerationOptions(12), on_batch=seen.append)
    assert sum(seen) == len(prompts)
    want = [_hf_greedy(tiny_model, ids, 12, llama_tokenizer.eos_token_id) for ids in prompts]
    assert_same_greedy(got, want, hf_logits_at(tiny_model, prompts))


def test_rows_stop_at_eos_and_newline(tiny_model, llama_tokenizer, fast, hf):
    prompts = _prompts()
    assert_same_greedy(
        fast.generate(prompts, GenerationOptions(30, stop_at_newline=True)),
        hf.generate(prompts, GenerationOptions(30, stop_at_newline=True)),
        engine_logits_at(hf, prompts),
    )
    assert fast.generate(prompts[:2], GenerationOptions(0)) == [[], []]
    # a row whose first token is EOS stops at once, keeping it
    eos = llama_tokenizer.eos_token_id
    with torch.no_grad():
        tiny_model.lm_head.bias = torch.nn.Parameter(torch.zeros(tiny_model.config.vocab_size))
        tiny_model.lm_head.bias[eos] = 1e4
    try:
        out = PackedEngine(tiny_model, llama_tokenizer).generate(prompts[:3], GenerationOptions(5))
    finally:
        tiny_model.lm_head.bias = None
    assert out == [[eos]] * 3


def _streamed(n: int) -> tuple[dict[int, list[int]], GenerationOptions]:
    seen: dict[int, list[int]] = {}
    return seen, GenerationOptions(n, on_token=lambda i, t: seen.setdefault(i, []).append(t))


def test_stop_tokens_and_streaming_are_the_same_on_both_engines(fast, hf):
    """``stop_token_ids`` end a row after the token (kept); ``on_token`` sees every new token of
    every row once, numbered in input order."""
    prompts = _prompts()[:4]
    free = fast.generate(prompts, GenerationOptions(12))
    stop = frozenset({free[0][3], free[2][1]})  # tokens two rows are about to write
    cut = [next((row[: k + 1] for k, t in enumerate(row) if t in stop), row) for row in free]
    assert cut != free
    for engine in (fast, hf):
        seen, streaming = _streamed(12)
        options = GenerationOptions(12, stop_token_ids=stop, on_token=streaming.on_token)
        got = engine.generate(prompts, options)
        assert got == cut and [seen.get(i, []) for i in range(len(prompts))] == got


def test_stop_strings_end_rows_on_every_engine(fast, hf, tiny_model, llama_tokenizer):
    """A row ends with the token that completes a stop string in its generated text (kept), on
    the packed engine (continuous batching), the HF engine and two workers alike."""
    tok, prompts = llama_tokenizer, _prompts()[:5]
    free = fast.generate(prompts, GenerationOptions(12))
    stop = next(t for k in range(3, 9) if (t := tok.decode(free[0][k : k + 2]).strip()))  # row 0 writes it

    def cut(row: list[int]) -> list[int]:
        k = next((k for k in range(1, len(row) + 1) if stop in tok.decode(row[:k], skip_special_tokens=True)), None)
        return row if k is None else row[:k]

    assert cut(free[0]) != free[0]
    pair = make_engine(tiny_model, tok, devices=["cpu", "cpu"])
    for engine in (fast, hf, pair):
        want = [cut(row) for row in engine.generate(prompts, GenerationOptions(12))]
        assert engine.generate(prompts, GenerationOptions(12, stop_strings=(stop,))) == want


def test_streamed_tokens_are_not_repeated_when_rows_restart(tiny_model, llama_tokenizer, fast):
    """An out-of-memory error in the middle of decoding re-queues the rows in flight (they
    restart from their prompts); what they had already streamed is not streamed again."""
    prompts = _prompts()[:4]
    engine = PackedEngine(tiny_model, llama_tokenizer)
    decodes = []

    def third_decode(kind, n):
        decodes.append(kind)
        if kind == "decode" and decodes.count("decode") == 3:
            raise torch.OutOfMemoryError("injected")

    engine.fault_injector = third_decode
    seen, streaming = _streamed(6)
    got = engine.generate(prompts, streaming)
    assert got == fast.generate(prompts, GenerationOptions(6)) and decodes.count("decode") > 3
    assert [seen[i] for i in range(len(prompts))] == got


def test_decoding_through_gap_segments(tiny_model, llama_tokenizer):
    """The CUDA decode route (varlen over the flattened cache with query-less gaps) computes the
    same step as the masked route: run it on CPU with the per-segment kernel."""
    engine = PackedEngine(tiny_model, llama_tokenizer, max_batch_size=3)
    prompts = _prompts()
    masked = engine.generate(prompts, GenerationOptions(8))
    sdpa = engine.lm.backend
    engine.lm.backend = AttentionBackend("sdpa-as-varlen", "test", True)
    try:
        assert_same_greedy(engine.generate(prompts, GenerationOptions(8)), masked, engine_logits_at(engine, prompts))
        cache = engine.new_cache(3, 64, zeroed=True)
        engine.fill(cache, [(0, prompts[0]), (1, prompts[2]), (2, prompts[4])])
        varlen = DecodeStep(engine.lm, cache, graphs=False)([9, 8, 7], [5, 17, 1])
        engine.lm.backend = sdpa
        ref = DecodeStep(engine.lm, cache, graphs=False)([9, 8, 7], [5, 17, 1])
    finally:
        engine.lm.backend = sdpa
    torch.testing.assert_close(varlen, ref, atol=1e-5, rtol=1e-5)


def test_shared_prefix_is_computed_once(tiny_model, llama_tokenizer):
    engine = PackedEngine(tiny_model, llama_tokenizer)
    alone = PackedEngine(tiny_model, llama_tokenizer, min_shared_prefix=10**9)
    fed = []
    forward = engine.lm.forward
    engine.lm.forward = lambda step, k, v: fed.append(step.ids.numel()) or forward(step, k, v)
    prompts = _prompts(n_shared=7)  # 8 candidates share a 100-token prefix
    try:
        shared = engine.prefill(prompts, want="hidden")
    finally:
        engine.lm.forward = forward
    assert sum(fed) == sum(map(len, prompts)) - 7 * 100
    torch.testing.assert_close(
        shared.last_hidden, alone.prefill(prompts, want="hidden").last_hidden, atol=1e-5, rtol=1e-5
    )
    tokens, parents, depths = ([[5, 6]] * len(prompts), [[0, 1]] * len(prompts), [[1, 2]] * len(prompts))
    torch.testing.assert_close(
        engine.tree_forward(shared, tokens, parents, depths),
        alone.tree_forward(alone.prefill(prompts, want="hidden"), tokens, parents, depths),
        atol=1e-5,
        rtol=1e-5,
    )
    got, want = engine.generate(prompts, GenerationOptions(6)), alone.generate(prompts, GenerationOptions(6))
    assert_same_greedy(got, want, engine_logits_at(alone, prompts))


def test_out_of_memory_splits_and_retries_without_losing_rows(tiny_model, llama_tokenizer, fast):
    engine = PackedEngine(tiny_model, llama_tokenizer, max_batch_size=4)
    calls = []

    def oom_over_two(kind, n):
        calls.append((kind, n))
        if n > 2:
            raise torch.OutOfMemoryError(f"injected: {kind} of {n} rows")

    prompts, (tokens, parents, depths) = _prompts(), _trees()
    ref_state = fast.prefill(prompts, want="hidden")
    ref_tree = fast.tree_forward(ref_state, tokens, parents, depths)
    ref_gen = fast.generate(prompts, GenerationOptions(7))
    engine.fault_injector = oom_over_two
    state = engine.prefill(prompts, want="hidden")
    assert len(state.parts) == 4 and sorted(r for p in state.parts for r in p.rows) == list(range(len(prompts)))
    torch.testing.assert_close(state.last_hidden, ref_state.last_hidden, atol=1e-5, rtol=1e-5)
    tree = engine.tree_forward(state, tokens, parents, depths)
    for r, t in enumerate(tokens):  # (padding nodes differ: each piece pads to its own widest tree)
        torch.testing.assert_close(tree[r, : 1 + len(t)], ref_tree[r, : 1 + len(t)], atol=1e-5, rtol=1e-5)
    assert_same_greedy(engine.generate(prompts, GenerationOptions(7)), ref_gen, engine_logits_at(fast, prompts))
    assert {k for k, _ in calls} == {"prefill", "tree", "decode", "fill"}
    assert engine.max_batch_tokens < fast.max_batch_tokens  # the budget learnt from the OOM

    def always(kind, n):
        raise torch.OutOfMemoryError("injected")

    engine.fault_injector = always
    with pytest.raises(torch.OutOfMemoryError):
        engine.prefill(prompts[:1])


def test_batches_are_costed_packed(fast):
    prompts = [[i] * n for i, n in enumerate([100, 10, 10, 10, 10])]  # no shared prefixes
    fast.token_cap = 150
    try:
        assert fast.batches(prompts, 5) == [[0, 1, 2, 3], [4]]  # padded: [[0], [1, 2, 3, 4]]
        stem = list(range(120))
        prompts = [[*stem, 1], [7] * 40, [*stem, 2], [*stem, 3]]
        assert fast.batches(prompts, 0) == [[0, 2, 3], [1]]  # the shared 120 tokens costed once
    finally:
        fast.token_cap = 8192


def test_engine_registry_chooses_and_says_why(tiny_model, llama_tokenizer, monkeypatch, caplog):
    monkeypatch.delenv("JUDGELM_ENGINE", raising=False)
    assert unsupported_reason(tiny_model) is None
    with caplog.at_level("INFO", logger="judgelm.engine.registry"):
        engine = make_engine(tiny_model, llama_tokenizer)
    assert isinstance(engine, PackedEngine) and "PackedEngine" in caplog.text and "attention sdpa" in caplog.text
    assert "runs on the packed Llama-family forward" in engine.reason
    bigram = BigramLM(len(llama_tokenizer), {})
    fallback = make_engine(bigram, llama_tokenizer)
    assert isinstance(fallback, HFEngine) and "module layout" in fallback.reason  # a Llama config, not a Llama
    with pytest.raises(ValueError, match="packed engine cannot run"):
        make_engine(bigram, llama_tokenizer, engine="packed")
    with pytest.raises(ValueError, match="one of 'packed', 'hf'"):
        make_engine(tiny_model, llama_tokenizer, engine="fast")
    monkeypatch.setenv("JUDGELM_ENGINE", "hf")
    chosen = make_engine(tiny_model, llama_tokenizer)
    assert isinstance(chosen, HFEngine) and chosen.reason == "requested"


def test_a_new_engine_is_one_registry_line(tiny_model, llama_tokenizer, monkeypatch):
    """A backend registered by name (never picked by "auto") is built with the choice's reason
    and the caller's options, and runs `Judge` through the protocol alone."""
    from judgelm.engine import registry

    monkeypatch.setattr(registry, "_ENGINES", dict(registry._ENGINES))
    registry.register_engine("scripted", lambda model, tok, **kw: ScriptedEngine(tok, **kw))
    assert "scripted" in registry.engine_names()
    assert isinstance(make_engine(tiny_model, llama_tokenizer), PackedEngine)  # "auto" passes it by
    engine = make_engine(None, llama_tokenizer, engine="scripted", respond="7\n")
    assert engine.reason == "requested" and not engine.capabilities.logits
    verdict = Judge(None, llama_tokenizer, engine=engine).grade("Q?", "an answer")
    assert verdict.scores == (7.0,) and verdict.provenance.scoring == "text"


def test_unsupported_models_say_why(tiny_model):
    from transformers import LlamaConfig, LlamaForCausalLM

    class Vision(LlamaForCausalLM):
        def embed_inputs(self, ids, images):  # a vision judge's hook
            raise NotImplementedError

    small = {
        "vocab_size": 64,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    }
    assert "vision" in unsupported_reason(Vision(LlamaConfig(**small)))
    dyn = LlamaConfig(**small, rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    assert "rope type 'dynamic'" in unsupported_reason(LlamaForCausalLM(dyn))
    assert "activation" in unsupported_reason(LlamaForCausalLM(LlamaConfig(**small, hidden_act="gelu")))


@pytest.mark.parametrize("family", ["qwen2", "mistral", "llama3-rope"])
def test_other_llama_family_checkpoints(llama_tokenizer, family):
    """Qwen2 (q/k/v biases), Mistral (sliding window caps the context), Llama 3 rope scaling."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    small = {
        "vocab_size": 32000,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
    }
    torch.manual_seed(0)
    if family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**small))
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.q_proj.bias.normal_()
                layer.self_attn.k_proj.bias.normal_()
    elif family == "mistral":
        model = MistralForCausalLM(MistralConfig(**small, sliding_window=128))
    else:
        rope = {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
            "rope_theta": 10000.0,
        }
        model = LlamaForCausalLM(LlamaConfig(**small, rope_scaling=rope))
    model.eval()
    fast, hf = PackedEngine(model, llama_tokenizer), HFEngine(model, llama_tokenizer)
    if family == "mistral":
        assert fast.facts.context_length == 128 and hf.facts.context_length == 512
    prompts = _prompts()
    torch.testing.assert_close(
        fast.prefill(prompts, want="hidden").last_hidden,
        hf.prefill(prompts, want="hidden").last_hidden,
        atol=1e-5,
        rtol=1e-5,
    )
    got, want = fast.generate(prompts, GenerationOptions(5)), hf.generate(prompts, GenerationOptions(5))
    assert_same_greedy(got, want, engine_logits_at(hf, prompts))


def test_greedy_comparison_accepts_only_near_ties():
    """The helper the greedy-token tests use (greedy.py) fails on a real difference."""
    logits = torch.zeros(10)
    logits[3], logits[4], logits[5] = 5.0, 5.0 + 5e-5, 4.0

    def at(row, prefix):
        return logits

    assert_same_greedy([[1, 3, 9]], [[1, 4, 2]], at)  # 3 vs 4: 5e-5 apart, both at the top
    with pytest.raises(AssertionError, match="not a tie"):
        assert_same_greedy([[1, 5]], [[1, 4]], at)
    with pytest.raises(AssertionError, match="stops"):
        assert_same_greedy([[1]], [[1, 4]], at)
