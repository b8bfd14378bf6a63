"""The packed engine on CUDA (skipped without a GPU): bf16 packed (every attention backend the
machine has) vs bf16 padded (HF) vs an fp32 reference, the decode step through a CUDA graph vs
eagerly, the fused (compiled) elementwise ops vs eager.

Tolerances come from the fp32 reference, never from one bf16 path against another (in bf16 the
packed and padded paths legitimately differ; see shared/spec/perf-notes.md). Run with
``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import pytest
import torch

from judgelm.engine import GenerationOptions, HFEngine, PackedEngine
from judgelm.engine.attention import available_backends

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _model(kv_heads: int, dtype: torch.dtype, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.05)
    return model.to("cuda", dtype)


def _prompts(seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = [257, 1031, 64, 700, 1280, 3, 512]
    prompts = [torch.randint(3, 32000, (n,), generator=g).tolist() for n in lengths]
    stem = prompts[4][:960]  # a shared-prefix group: three quarters of each prompt
    return prompts + [stem + torch.randint(3, 32000, (320,), generator=g).tolist() for _ in range(3)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def tokenizer():
    from conftest import LLAMA_TOKENIZER

    from judgelm.modalities.text import load_tokenizer

    return load_tokenizer(str(LLAMA_TOKENIZER))


@pytest.fixture(scope="module")
def models():
    return {kv: (_model(kv, torch.bfloat16), _model(kv, torch.float32)) for kv in (8, 2)}


def _tree():
    t = 12
    return [list(range(100, 100 + t))], [[0, *list(range(1, t))]], [list(range(1, t + 1))]


@pytest.mark.parametrize("kv_heads", [8, 2])
@pytest.mark.parametrize("backend", available_backends(torch.device("cuda"), torch.bfloat16))
def test_bf16_packed_and_padded_are_within_bf16_of_fp32(models, tokenizer, kv_heads, backend):
    bf16, fp32 = models[kv_heads]
    if backend not in available_backends(torch.device("cuda"), torch.bfloat16, gqa=kv_heads != 8):
        pytest.skip(f"{backend} cannot run grouped KV heads on this torch")
    prompts = _prompts()
    ref = HFEngine(fp32, tokenizer)
    fast = PackedEngine(bf16, tokenizer, attention=backend, compile=False)  # compiled ops: tested below
    padded = HFEngine(bf16, tokenizer, max_batch_tokens=1 << 20)
    want = ref.prefill(prompts, want="logits").last_logits.log_softmax(-1)
    got = fast.prefill(prompts, want="logits").last_logits.log_softmax(-1)
    pad = padded.prefill(prompts, want="logits").last_logits.log_softmax(-1)
    err_fast, err_pad = _rel(got, want), _rel(pad, want)
    print(f"{backend} kv={kv_heads}: packed rel err {err_fast:.2e}, padded rel err {err_pad:.2e}")
    assert err_fast < 2e-2 and err_pad < 2e-2
    assert err_fast < 2 * err_pad + 5e-3  # the packed path is no worse than HF's own bf16 path
    # the tree step on top of the packed cache
    tokens, parents, depths = (x * len(prompts) for x in _tree())
    s_ref, s_fast = ref.prefill(prompts, want="hidden"), fast.prefill(prompts, want="hidden")
    t_ref = ref.tree_forward(s_ref, tokens, parents, depths).float()
    t_fast = fast.tree_forward(s_fast, tokens, parents, depths).float()
    err_tree = _rel(t_fast, t_ref)
    print(f"{backend} kv={kv_heads}: tree hidden rel err {err_tree:.2e}")
    assert err_tree < 3e-2


def test_fp32_on_cuda_matches_hf_tightly(models, tokenizer):
    _, fp32 = models[2]
    prompts = _prompts()
    fast, hf = PackedEngine(fp32, tokenizer, compile=False), HFEngine(fp32, tokenizer)
    a, b = fast.prefill(prompts, want="hidden").last_hidden, hf.prefill(prompts, want="hidden").last_hidden
    assert _rel(a, b) < 1e-3  # tf32 may be on for matmuls; fp32 attention


def test_cuda_graph_decoding_equals_eager(models, tokenizer):
    bf16, _ = models[8]
    prompts = [p[:300] for p in _prompts()]
    graphs = PackedEngine(bf16, tokenizer, cuda_graphs=True, compile=False)
    eager = PackedEngine(bf16, tokenizer, cuda_graphs=False, compile=False)
    a = graphs.generate(prompts, GenerationOptions(24))
    b = eager.generate(prompts, GenerationOptions(24))
    same = sum(x == y for x, y in zip(a, b, strict=True))
    assert same >= len(prompts) - 1, (a, b)  # bf16: a near-tie may flip one row at most
    assert all(len(x) == 24 or x[-1] in graphs.facts.eos_ids for x in a)


def test_compiled_elementwise_ops_match_eager(models, tokenizer):
    bf16, fp32 = models[2]
    prompts = _prompts()
    compiled = PackedEngine(bf16, tokenizer, compile=True)
    plain = PackedEngine(bf16, tokenizer, compile=False)
    ref = HFEngine(fp32, tokenizer).prefill(prompts, want="hidden").last_hidden
    a = compiled.prefill(prompts, want="hidden").last_hidden
    b = plain.prefill(prompts, want="hidden").last_hidden
    print(f"compiled rel err {_rel(a, ref):.2e}, eager rel err {_rel(b, ref):.2e}")
    assert set(compiled.lm.fused_ops().values()) == {"compiled"} and _rel(a, ref) < 3e-2 and _rel(b, ref) < 3e-2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_merge_in_order(models, tokenizer):
    from judgelm.engine import make_engine

    bf16, _ = models[8]
    pair = make_engine(bf16, tokenizer, devices=["cuda:0", "cuda:1"], compile=False)
    prompts = _prompts()
    a = pair.prefill(prompts, want="hidden").last_hidden
    b = PackedEngine(bf16, tokenizer, compile=False).prefill(prompts, want="hidden").last_hidden
    assert _rel(a, b) < 1e-2
