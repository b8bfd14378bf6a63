"""Several devices: one worker per device, each batch split among them, results in input order
(two "cpu" workers here; the same code runs one worker per GPU)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from greedy import assert_same_greedy, engine_logits_at

from judgelm import Judge, Sample
from judgelm.engine import GenerationOptions, HFEngine, MultiDeviceEngine, PackedEngine, make_engine
from judgelm.engine.batching import restore_order
from judgelm.engine.workers import replicate_model, split_balanced


def test_split_balanced_covers_everything_in_order():
    runs = split_balanced([100, 90, 10, 10, 10, 10, 80], 2)
    assert [i for r in runs for i in r] == list(range(7))
    assert [sum([100, 90, 10, 10, 10, 10, 80][i] for i in r) for r in runs] == [190, 120]
    assert split_balanced([5], 4) == [[0]]
    assert restore_order(split_balanced([3] * 10, 3), split_balanced([3] * 10, 3)) == list(range(10))


@dataclass(frozen=True)
class _Tree:  # a `judgelm.engine.base.VerdictTree`
    tokens: tuple[int, ...]
    parents: tuple[int, ...]
    depths: tuple[int, ...]
    cand_ids: tuple[tuple[int, ...], ...]

    @property
    def n_nodes(self) -> int:
        return len(self.tokens) + 1


def _tree(tokens, parents, depths, g) -> _Tree:
    """A tree whose nodes each read 6 random candidate tokens."""
    cands = tuple(tuple(torch.randint(3, 32000, (6,), generator=g).tolist()) for _ in range(len(tokens) + 1))
    return _Tree(tuple(tokens), tuple(parents), tuple(depths), cands)


@pytest.fixture(scope="module")
def pair(tiny_model, llama_tokenizer) -> MultiDeviceEngine:
    return make_engine(tiny_model, llama_tokenizer, devices=["cpu", "cpu"])


def test_two_workers_equal_one(pair, tiny_model, llama_tokenizer):
    assert isinstance(pair, MultiDeviceEngine) and all(isinstance(e, PackedEngine) for e in pair.engines)
    one = PackedEngine(tiny_model, llama_tokenizer)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 32000, (n,), generator=g).tolist() for n in (9, 50, 4, 33, 21)]
    a, b = pair.prefill(prompts, want="hidden"), one.prefill(prompts, want="hidden")
    assert len(a.shares) == 2
    torch.testing.assert_close(a.last_hidden, b.last_hidden, atol=1e-5, rtol=1e-5)
    g = torch.Generator().manual_seed(4)
    trees = [_tree([5, 6], [0, 1], [1, 2], g)] * 3 + [None, _tree([7], [0], [1], g)]
    for x, y in zip(pair.tree_step(a, trees), one.tree_step(b, trees), strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    seen, streamed = [], {}
    options = GenerationOptions(6, on_token=lambda i, t: streamed.setdefault(i, []).append(t))
    got = pair.generate(prompts, options, on_batch=seen.append)
    assert_same_greedy(got, one.generate(prompts, GenerationOptions(6)), engine_logits_at(one, prompts))
    assert sum(seen) == len(prompts)
    assert [streamed[i] for i in range(len(prompts))] == got  # each worker's rows in input numbering


def test_judge_on_two_workers(pair, tiny_model, llama_tokenizer):
    samples = [Sample("What is 2+2?", ("4", "five")), Sample("q", ("one",), gold="g"), Sample("Pick.", ("1", "2", "3"))]
    multi = Judge(tiny_model, llama_tokenizer, engine=pair).judge(samples, swap=True)
    single = Judge(tiny_model, llama_tokenizer, engine=HFEngine(tiny_model, llama_tokenizer)).judge(samples, swap=True)
    for x, y in zip(multi, single, strict=True):
        assert x.sample_id == y.sample_id
        assert x.scores == pytest.approx(y.scores, abs=1e-5)


def test_replicated_model_computes_the_same(tiny_model, llama_tokenizer):
    copy = replicate_model(tiny_model, "cpu")  # (on one device the weights are shared, read-only)
    assert copy is not tiny_model and not any(p.is_meta for p in [*copy.parameters(), *copy.buffers()])
    ids = torch.tensor([[5, 9, 200, 31]])
    with torch.no_grad():
        torch.testing.assert_close(copy(ids).logits, tiny_model(ids).logits)
