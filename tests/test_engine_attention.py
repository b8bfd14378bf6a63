"""The attention backends: segment bounds, the varlen contract, the choice, transformers' hook."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from greedy import assert_same_greedy, engine_logits_at

from judgelm.engine import GenerationOptions
from judgelm.engine.attention import available_backends, choose_backend, segment_bounds
from judgelm.testing import packed_hf_hidden


def test_segment_bounds_skip_unused_cache_rows():
    cu_q, cu_k, max_q, max_k = segment_bounds([(1, 3, 5), (2, 1, 7)], row_stride=10)
    # gap [0, 10) without queries, row 1 keys [10, 15), gap [15, 20), row 2 keys [20, 27)
    assert cu_q == [0, 0, 3, 3, 4] and cu_k == [0, 10, 15, 20, 27]
    assert (max_q, max_k) == (3, 10)
    with pytest.raises(ValueError, match="increasing slot order"):
        segment_bounds([(2, 1, 1), (1, 1, 1)], row_stride=10)
    with pytest.raises(ValueError):
        segment_bounds([(0, 4, 3)], row_stride=10)  # more queries than keys


def _reference(q, k, v, rows, stride, scale):
    """Each row's queries against its keys with an explicit bottom-right causal mask, in fp64."""
    out, start = [], 0
    for slot, n_q, n_k in rows:
        qs = q[start : start + n_q].double().transpose(0, 1)  # [H, n_q, D]
        ks = k[slot * stride : slot * stride + n_k].double().transpose(0, 1)
        vs = v[slot * stride : slot * stride + n_k].double().transpose(0, 1)
        rep = qs.shape[0] // ks.shape[0]
        ks, vs = ks.repeat_interleave(rep, 0), vs.repeat_interleave(rep, 0)
        allowed = torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q)
        out.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=allowed, scale=scale).transpose(0, 1))
        start += n_q
    return torch.cat(out)


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_sdpa_varlen_matches_the_masked_reference(kv_heads):
    torch.manual_seed(0)
    stride, rows = 16, [(0, 5, 5), (2, 1, 9), (3, 4, 16), (5, 3, 7)]  # prefill, decode, extend
    n_q = sum(r[1] for r in rows)
    q = torch.randn(n_q, 4, 8)
    k, v = torch.randn(6 * stride, kv_heads, 8), torch.randn(6 * stride, kv_heads, 8)
    cu_q, cu_k, max_q, max_k = segment_bounds(rows, stride)
    backend = choose_backend("cpu", torch.float32)
    got = backend.varlen(q, k, v, torch.tensor(cu_q), torch.tensor(cu_k), max_q, max_k, scale=0.3)
    torch.testing.assert_close(got.double(), _reference(q, k, v, rows, stride, 0.3), atol=1e-6, rtol=1e-5)


def test_masked_attention_handles_grouped_heads():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 6, 2, 8), torch.randn(2, 6, 2, 8)
    allowed = torch.rand(2, 3, 6) > 0.4
    allowed[..., 0] = True
    got = choose_backend("cpu", torch.float32).masked(q, k, v, allowed, scale=0.5)
    ref = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.repeat_interleave(2, 2).transpose(1, 2),
        v.repeat_interleave(2, 2).transpose(1, 2),
        attn_mask=allowed[:, None],
        scale=0.5,
    ).transpose(1, 2)
    torch.testing.assert_close(got, ref)


def test_backend_choice_says_why(monkeypatch):
    monkeypatch.delenv("JUDGELM_ATTENTION", raising=False)
    cpu = choose_backend("cpu", torch.float32)
    assert cpu.name == "sdpa" and not cpu.fast_varlen and "CUDA" in cpu.reason
    assert available_backends(torch.device("cpu"), torch.float32) == ["sdpa"]
    with pytest.raises(ValueError, match="unknown attention backend"):
        choose_backend("cpu", torch.float32, force="xformers")
    with pytest.raises(RuntimeError, match="torch_varlen requested"):
        choose_backend("cpu", torch.float32, force="torch_varlen")
    monkeypatch.setenv("JUDGELM_ATTENTION", "sdpa")
    assert choose_backend("cpu", torch.bfloat16).reason.startswith("requested")


def test_transformers_packed_forward_equals_padded(tiny_model):
    """The registered attention lets the unchanged HF model run packed (no padding)."""
    prompts = [[5, 9, 200, 31, 7], list(range(100, 140)), [17, 18]]
    packed = packed_hf_hidden(tiny_model, prompts)
    before = tiny_model.config._attn_implementation
    assert before == "sdpa"  # restored afterwards
    with torch.no_grad():
        for r, p in enumerate(prompts):
            ref = tiny_model.get_decoder()(input_ids=torch.tensor([p])).last_hidden_state[0, -1]
            torch.testing.assert_close(packed[r], ref, atol=1e-5, rtol=1e-5)


def _fake_varlen(signature: str):
    """A stand-in for torch's varlen_attn with the given signature, computing on the CPU."""
    from judgelm.engine.attention import _sdpa_segments

    def modern(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, window_size=(-1, -1), enable_gqa=False):
        assert tuple(window_size) == (-1, 0) and cu_q.dtype == cu_k.dtype == torch.int32
        assert enable_gqa == (k.shape[1] != q.shape[1]) and max_q >= 1 and max_k >= 1
        return _sdpa_segments(q, k, v, cu_q.tolist(), cu_k.tolist(), scale)

    def old(q, k, v, cu_q, cu_k, max_q, max_k, *, is_causal=False):
        assert is_causal
        return _sdpa_segments(q, k, v, cu_q.tolist(), cu_k.tolist(), q.shape[-1] ** -0.5)

    return {"modern": modern, "old": old}[signature]


@pytest.mark.parametrize("signature", ["modern", "old"])
def test_torch_varlen_adapter_drives_the_engine(monkeypatch, tiny_model, llama_tokenizer, signature):
    """The torch_varlen route (kwargs by signature, gap segments, int32 bounds) end to end, with a
    CPU stand-in for the CUDA kernel: same hidden states and tokens as the sdpa route."""
    import torch.nn.attention.varlen as varlen_module

    from judgelm.engine import PackedEngine
    from judgelm.engine.attention import AttentionBackend, _torch_varlen_kernel

    monkeypatch.setattr(varlen_module, "varlen_attn", _fake_varlen(signature))
    gqa = tiny_model.config.num_key_value_heads != tiny_model.config.num_attention_heads
    kernel, why = _torch_varlen_kernel(gqa)
    if signature == "old":
        assert kernel is None and "enable_gqa" in why  # grouped heads need enable_gqa
        kernel, _ = _torch_varlen_kernel(False)
        q, k = torch.randn(5, 4, 8), torch.randn(5, 4, 8)
        cu = torch.tensor([0, 2, 5], dtype=torch.int32)
        torch.testing.assert_close(
            kernel(q, k, k, cu, cu, 3, 3, 8**-0.5, 0.0), _fake_varlen("old")(q, k, k, cu, cu, 3, 3, is_causal=True)
        )
        return
    ref = PackedEngine(tiny_model, llama_tokenizer, max_batch_size=3)
    fast = PackedEngine(tiny_model, llama_tokenizer, max_batch_size=3)
    fast.lm.backend = AttentionBackend("torch_varlen", "test stand-in", True, kernel)
    fast.lm.prune_last_layer = True  # the CUDA configuration
    prompts = [[5, 9, 200, 31, 7], list(range(100, 160)), [17, 18], [*range(100, 150), 3, 4]]
    torch.testing.assert_close(
        fast.prefill(prompts, want="hidden").last_hidden,
        ref.prefill(prompts, want="hidden").last_hidden,
        atol=1e-5,
        rtol=1e-5,
    )
    got, want = fast.generate(prompts, GenerationOptions(6)), ref.generate(prompts, GenerationOptions(6))
    assert_same_greedy(got, want, engine_logits_at(ref, prompts))


def test_fused_ops_check_themselves_and_fall_back(caplog):
    """The compiled elementwise wrapper: compared with eager on its first call, dropped (eager
    from then on, with a warning) when compiling fails."""
    from judgelm.engine.llama_family import _Fused

    def breaks(x):
        torch._dynamo.graph_break()  # fullgraph compilation refuses this
        return x * 2

    fused = _Fused(breaks)
    x = torch.randn(3)
    with caplog.at_level("WARNING", logger="judgelm.engine.llama_family"):
        torch.testing.assert_close(fused(x), x * 2)
    assert fused.checked and fused.compiled is None and "using eager" in caplog.text
    torch.testing.assert_close(fused(x), x * 2)
