"""Packed batches and varlen attention: the same loss and gradients as padded batches."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from judgelm.data.records import record_from_dict
from judgelm.data.synthetic import SyntheticConfig, generate
from judgelm.testing import tiny_llama
from judgelm.train.attention import (
    VARLEN_ATTENTION,
    block_diagonal_causal_mask,
    register_varlen_attention,
    varlen_attention,
)
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
    packed_model.set_attn_implementation(register_varlen_attention())
    assert packed_model.config._attn_implementation == VARLEN_ATTENTION
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


def test_varlen_fallback_equals_a_block_diagonal_mask():
    torch.manual_seed(0)
    cu = torch.tensor([0, 3, 9, 10, 16], dtype=torch.int32)
    q, k, v = torch.randn(1, 4, 16, 8), torch.randn(1, 2, 16, 8), torch.randn(1, 2, 16, 8)
    module = torch.nn.Module().eval()
    out, _ = varlen_attention(
        module, q, k, v, None, scaling=0.3, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=6, max_length_k=6
    )
    mask = block_diagonal_causal_mask(cu, 16, q.device)
    assert mask[4].tolist() == [False] * 3 + [True, True] + [False] * 11  # row 4: sample 2, keys 3..4
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None], scale=0.3, enable_gqa=True)
    torch.testing.assert_close(out, ref.transpose(1, 2))


def test_training_and_engine_packed_attention_agree(llama_tokenizer, features):
    """The training attention and the inference engine's packed attention (its
    ``register_transformers_attention``) compute the same packed forward."""
    from judgelm.engine.attention import register_transformers_attention

    train_model = tiny_llama(llama_tokenizer, seed=3)
    engine_model = tiny_llama(llama_tokenizer, seed=3)
    train_model.set_attn_implementation(register_varlen_attention())
    engine_model.set_attn_implementation(register_transformers_attention())
    batch = {k: v for k, v in PackedCollator()(features).items() if k != "labels"}
    with torch.no_grad():  # the decoder stack only: the attention is what differs
        a = train_model.model(**batch).last_hidden_state
        b = engine_model.model(**batch).last_hidden_state
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
