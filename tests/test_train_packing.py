"""Packed batches and varlen attention: the same loss and gradients as padded batches."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from judgelm.data.records import record_from_dict
from judgelm.data.synthetic import SyntheticConfig, generate
from judgelm.engine.attention import HF_ATTENTION_NAME, packed_attention, register_transformers_attention
from judgelm.testing import tiny_llama
from judgelm.train.collate import PackedCollator, PaddedCollator
from judgelm.train.dataset import JudgeDataset
from judgelm.train.encode import IGNORE_INDEX
from judgelm.train.trainer import judge_loss


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads (and lose a lot on busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def features(llama_tokenizer):
    recs = [record_from_dict(r) for r in generate(5, seed=4, config=SyntheticConfig(brief=True))]
    ds = JudgeDataset(recs, llama_tokenizer, max_length=1024, p_swap=0.5, p_reference=0.5)
    return [ds[i] for i in range(len(ds))]


def test_packed_collator_layout(features):
    batch = PackedCollator()(features)
    lengths = [len(f["input_ids"]) for f in features]
    bounds = [0, *itertools.accumulate(lengths)]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert batch["cu_seq_lens_q"].tolist() == bounds and batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_q"] == batch["max_length_k"] == max(lengths)
    pos = batch["position_ids"][0].tolist()
    assert [pos[b] for b in bounds[:-1]] == [0] * len(features)  # positions restart per sample
    assert batch["labels"][0, bounds[:-1]].tolist() == [IGNORE_INDEX] * len(features)  # BOS never a target
    padded = PaddedCollator(pad_id=0)(features)
    assert padded["input_ids"].shape == (len(features), max(lengths))
    assert int(padded["attention_mask"].sum()) == sum(lengths)


def test_packed_loss_and_gradients_equal_padded(llama_tokenizer, features):
    torch.manual_seed(0)
    padded_model = tiny_llama(llama_tokenizer, seed=1).train()
    packed_model = tiny_llama(llama_tokenizer, seed=1).train()
    packed_model.set_attn_implementation(register_transformers_attention())
    assert packed_model.config._attn_implementation == HF_ATTENTION_NAME
    loss_a, n_a, _ = judge_loss(padded_model, PaddedCollator(pad_id=0)(features))
    loss_b, n_b, _ = judge_loss(packed_model, PackedCollator()(features))
    assert int(n_a) == int(n_b) == sum(sum(x != IGNORE_INDEX for x in f["labels"][1:]) for f in features)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-4)
    (loss_a / n_a).backward()
    (loss_b / n_b).backward()
    for (name, pa), (_, pb) in zip(padded_model.named_parameters(), packed_model.named_parameters(), strict=True):
        torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_judge_loss_equals_the_models_own_loss(llama_tokenizer, features):
    model = tiny_llama(llama_tokenizer, seed=2)
    batch = PaddedCollator(pad_id=0)(features)
    loss_sum, n, out = judge_loss(model, batch)
    assert out.logits.shape[1] < batch["input_ids"].shape[1] // 3  # the LM head ran on targets only
    reference = model(**batch).loss  # HF's causal LM loss over the full logits
    torch.testing.assert_close(loss_sum / n, reference, rtol=1e-5, atol=1e-5)


def block_diagonal_causal_mask(cu_seq_lens: torch.Tensor, total: int) -> torch.Tensor:
    """Bool [total, total]: token i may attend to token j iff both are in one sample and j <= i."""
    positions = torch.arange(total)
    segment = torch.bucketize(positions, cu_seq_lens.long()[1:], right=True)  # sample of every token
    return (segment[:, None] == segment[None, :]) & (positions[None, :] <= positions[:, None])


def test_packed_attention_equals_a_block_diagonal_mask():
    torch.manual_seed(0)
    cu = torch.tensor([0, 3, 9, 10, 16], dtype=torch.int32)
    q, k, v = torch.randn(1, 4, 16, 8), torch.randn(1, 2, 16, 8), torch.randn(1, 2, 16, 8)
    module = torch.nn.Module().eval()
    out, _ = packed_attention(
        module, q, k, v, None, scaling=0.3, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=6, max_length_k=6
    )
    mask = block_diagonal_causal_mask(cu, 16)
    assert mask[4].tolist() == [False] * 3 + [True, True] + [False] * 11  # row 4: sample 2, keys 3..4
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None], scale=0.3, enable_gqa=True)
    torch.testing.assert_close(out, ref.transpose(1, 2))


def test_attention_dropout_applies_in_training_mode_only():
    torch.manual_seed(1)
    cu = torch.tensor([0, 5, 12], dtype=torch.int32)
    q, k, v = torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 8)
    kw = {"scaling": 0.35, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": 7, "max_length_k": 7}
    module = torch.nn.Module()
    plain, _ = packed_attention(module.eval(), q, k, v, None, **kw)
    assert torch.equal(packed_attention(module, q, k, v, None, dropout=0.5, **kw)[0], plain)  # eval: no dropout
    module.train()
    torch.manual_seed(7)
    a, _ = packed_attention(module, q, k, v, None, dropout=0.5, **kw)
    torch.manual_seed(7)
    b, _ = packed_attention(module, q, k, v, None, dropout=0.5, **kw)
    assert torch.equal(a, b) and not torch.allclose(a, plain)
    # each sample still sees only itself: sample 1's output ignores sample 2's values
    v2 = v.clone()
    v2[:, :, 5:] += 100.0
    torch.manual_seed(7)
    c, _ = packed_attention(module, q, k, v2, None, dropout=0.5, **kw)
    torch.testing.assert_close(c[:, :5], a[:, :5])
