"""Sampling and per-token log-probabilities in `GenerationOptions`, on both local engines:
greedy stays the default and unchanged, a seeded row's samples depend only on its seed and prompt,
the sampler draws from the tempered nucleus it promises, and the reported log-probabilities are
the model's own (checked against a plain HF forward)."""

from __future__ import annotations

import math

import pytest
import torch

from judgelm.engine import GenerationOptions, HFEngine, PackedEngine
from judgelm.engine.sampling import TokenChooser


@pytest.fixture(scope="module")
def engines(tiny_model, llama_tokenizer):
    return {"packed": PackedEngine(tiny_model, llama_tokenizer), "hf": HFEngine(tiny_model, llama_tokenizer)}


PROMPTS = [[1, 450, 4996, 17354, 1701], [1, 3681, 338], [1, 29871, 29906, 29974, 29906, 29922, 13, 450, 1234]]


def _sampled(**kw):
    return GenerationOptions(10, temperature=kw.pop("temperature", 1.5), **kw)


@pytest.mark.parametrize("name", ["packed", "hf"])
def test_seeded_samples_depend_only_on_seed_and_prompt(engines, name):
    engine = engines[name]
    together = engine.generate(PROMPTS, _sampled(seed=7))
    assert together == engine.generate(PROMPTS, _sampled(seed=7))  # reproducible
    assert engine.generate([PROMPTS[1]], _sampled(seed=7)) == [together[1]]  # batching does not matter
    assert engine.generate(PROMPTS[::-1], _sampled(seed=7)) == together[::-1]
    other = engine.generate(PROMPTS, _sampled(seed=8))
    assert other != together  # another seed, other samples
    greedy = engine.generate(PROMPTS, GenerationOptions(10))
    assert together != greedy


def test_both_engines_draw_the_same_seeded_samples(engines):
    """Same logits (to ~1e-6), same per-row generator: the same tokens (a flip would need a
    uniform draw within ~1e-6 of a boundary of the cumulative distribution)."""
    assert engines["packed"].generate(PROMPTS, _sampled(seed=3)) == engines["hf"].generate(PROMPTS, _sampled(seed=3))


def test_a_restarted_row_repeats_its_samples(tiny_model, llama_tokenizer, engines):
    """An out-of-memory error mid-decoding re-queues rows; seeded rows restart with a fresh
    generator, so the output and the streamed tokens equal an uninterrupted run."""
    engine = PackedEngine(tiny_model, llama_tokenizer)
    decodes = []

    def third_decode(kind, n):
        decodes.append(kind)
        if kind == "decode" and decodes.count("decode") == 3:
            raise torch.OutOfMemoryError("injected")

    engine.fault_injector = third_decode
    seen: dict[int, list[int]] = {}
    got = engine.generate(PROMPTS, _sampled(seed=11, on_token=lambda i, t: seen.setdefault(i, []).append(t)))
    assert decodes.count("decode") > 3
    assert got == engines["packed"].generate(PROMPTS, _sampled(seed=11))
    assert [seen[i] for i in range(len(PROMPTS))] == got


def test_the_sampler_draws_from_the_tempered_nucleus():
    """Logits with known probabilities: temperature and top-p give the promised distribution
    (empirical frequencies within 5 standard errors over 4000 draws); nothing outside the nucleus."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()[None].repeat(4000, 1)
    rows = list(range(4000))

    def frequencies(**kw):
        chooser = TokenChooser(GenerationOptions(1, seed=5, **kw))
        for r in rows:
            chooser.start(r, [r])  # one generator per row, seeded from (seed, prompt)
        tokens, _ = chooser.choose(logits, rows)
        return torch.bincount(torch.tensor(tokens), minlength=4).double() / len(rows)

    def expected(temperature, top_p):
        p = torch.softmax(probs.log().double() / temperature, -1)
        keep = (p.cumsum(-1) - p) < top_p  # sorted already
        p = torch.where(keep, p, 0.0)
        return p / p.sum()

    for temperature, top_p in ((1.0, 1.0), (0.5, 1.0), (2.0, 1.0), (1.0, 0.7), (1.0, 0.85)):
        got, want = frequencies(temperature=temperature, top_p=top_p), expected(temperature, top_p)
        assert torch.all(got[want == 0] == 0), (temperature, top_p, got)
        se = (want * (1 - want) / len(rows)).sqrt()
        assert torch.all((got - want).abs() <= 5 * se + 1e-12), (temperature, top_p, got, want)


@pytest.mark.parametrize("name", ["packed", "hf"])
@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_reported_logprobs_are_the_models_own(tiny_model, engines, name, temperature):
    """``logprobs`` = k: each new token's log-probability and the k most likely tokens, under the
    model's own distribution (a plain HF forward over prompt + continuation), in token order."""
    got: dict[int, list] = {}
    options = GenerationOptions(
        6, temperature=temperature, seed=1, logprobs=3, on_logprobs=lambda i, x: got.setdefault(i, []).append(x)
    )
    outs = engines[name].generate(PROMPTS, options)
    for i, (prompt, out) in enumerate(zip(PROMPTS, outs, strict=True)):
        infos = got[i]
        assert [x.token for x in infos] == out
        logp = _logp(tiny_model, prompt + out)
        for k, x in enumerate(infos):
            row = logp[len(prompt) - 1 + k]
            assert math.isclose(x.logprob, float(row[x.token]), abs_tol=1e-4)
            top_v, top_i = row.topk(3)
            assert [t for t, _ in x.top] == top_i.tolist()
            assert all(math.isclose(v, float(w), abs_tol=1e-4) for (_, v), w in zip(x.top, top_v, strict=True))
            if temperature == 0:
                assert x.token == x.top[0][0]


def test_generation_options_refuse_bad_values():
    for bad in ({"temperature": -1.0}, {"temperature": math.nan}, {"top_p": 0.0}, {"top_p": 1.5}, {"logprobs": -1}):
        with pytest.raises(ValueError):
            GenerationOptions(4, **bad)


@pytest.mark.parametrize("name", ["packed", "hf"])
@pytest.mark.parametrize("top_k", [0, 3])  # 0: through the verdict head; k: the full distribution
def test_prompt_logprobs_equal_a_plain_forward(tiny_model, engines, name, top_k):
    """`prompt_logprobs` (the server's ``echo``): sequences merged into tries (shared prefixes,
    duplicates, a sequence that is a prefix of another, another first token, a single token)
    give every position's log-probability and top-k as a plain HF forward does."""
    from judgelm.engine.prompt_logprobs import prompt_logprobs

    g = torch.Generator().manual_seed(0)
    base = torch.randint(3, 32000, (40,), generator=g).tolist()
    seqs = [[1, *base], [1, *base[:20], 5, 6, 7], [1, *base[:20]], [1, *base], [1], [2, 5, 9, 11], [1, *base[:10], 99]]
    got = prompt_logprobs(engines[name], seqs, top_k=top_k)
    for seq, infos in zip(seqs, got, strict=True):
        assert [x.token for x in infos] == seq[1:]
        if len(seq) < 2:
            continue
        ref = _logp(tiny_model, seq)
        for i, x in enumerate(infos):
            assert x.logprob == pytest.approx(float(ref[i, seq[i + 1]]), abs=1e-4)
            assert [t for t, _ in x.top] == ref[i].topk(top_k).indices.tolist()


def _logp(model, ids):
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
