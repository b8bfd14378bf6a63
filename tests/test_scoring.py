"""The scoring head end to end: exact verdict distributions from logits."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch

from judgelm import Judge, Sample, ScoringError, Turn
from judgelm.formats import get_format
from judgelm.modalities.text import encode
from judgelm.scoring.combine import rank1_independent
from judgelm.scoring.grammar import build_tree, line_text
from judgelm.testing import BigramLM, byte_tokenizer

COLON, SPACE, NEWLINE = 29901, 29871, 13  # ":" "▁" "<0x0A>" in the LLaMA vocabulary


@pytest.fixture(scope="module")
def digits(llama_tokenizer):
    return {str(i): llama_tokenizer.convert_tokens_to_ids(str(i)) for i in range(10)}


def bigram_rules(d):
    return {
        COLON: {d["8"]: 0.6, d["9"]: 0.3, d["1"]: 0.1},
        d["8"]: {SPACE: 0.5, NEWLINE: 0.5},
        d["9"]: {SPACE: 0.5, NEWLINE: 0.5},
        d["1"]: {d["0"]: 0.5, SPACE: 0.25, NEWLINE: 0.25},
        d["0"]: {SPACE: 0.5, NEWLINE: 0.5},
        SPACE: {d["7"]: 0.5, d["9"]: 0.5},
        d["7"]: {NEWLINE: 1.0},
    }


@pytest.fixture(scope="module")
def bigram_judge(llama_tokenizer, digits):
    return Judge(BigramLM(len(llama_tokenizer), bigram_rules(digits)), llama_tokenizer, abstain_threshold=0.9)


def probs(dist):
    return dict(zip(dist.values, dist.probs, strict=True))


def test_hand_set_pairwise_distribution(bigram_judge):
    v = bigram_judge.compare("q", "a", "b", scoring="logits")
    # slot 1: P(8)=.6*.5, P(9)=.3*.5, P(1)=.1*.25, P(10)=.1*.5*.5; slot 2 after "▁": P(7)=.5, P(9)=.5*.5
    assert v.distributions[0].outside_mass == pytest.approx(1 - 0.5 * 0.75, abs=1e-6)
    p1, p2 = probs(v.distributions[0]), probs(v.distributions[1])
    assert p1[8.0] == pytest.approx(0.6, abs=1e-6) and p1[9.0] == pytest.approx(0.3, abs=1e-6)
    assert p1[1.0] == pytest.approx(0.05, abs=1e-6) and p1[10.0] == pytest.approx(0.05, abs=1e-6)
    assert p2[7.0] == pytest.approx(2 / 3, abs=1e-6) and p2[9.0] == pytest.approx(1 / 3, abs=1e-6)
    assert v.scores[0] == pytest.approx(0.05 * 1 + 0.6 * 8 + 0.3 * 9 + 0.05 * 10, abs=1e-5)
    assert (v.preference.first, v.preference.tie, v.preference.second) == pytest.approx((0.65, 0.1, 0.25), abs=1e-6)
    assert v.winner == 0 and v.label == 1 and v.rank1_probs == pytest.approx((0.7, 0.3), abs=1e-6)
    d = (0.65, 0.1, 0.25)
    assert v.confidence == pytest.approx(1 + sum(p * math.log(p) for p in d) / math.log(3), abs=1e-6)
    assert not v.abstained and v.provenance.scoring == "logits"


def test_hand_set_single_after_forced_ten(llama_tokenizer, digits):
    d = digits
    # the prompt ends in "### Response:10": the judge continues with " 7\n" or " 9\n"
    rules = {d["0"]: {SPACE: 0.8}, SPACE: {d["7"]: 0.25, d["9"]: 0.75}, d["7"]: {NEWLINE: 1.0}, d["9"]: {NEWLINE: 0.5}}
    # the outside mass is exactly 0.5: keep the abstain threshold off that boundary (float rounding
    # puts it on either side depending on the CPU's exp/log kernels)
    judge = Judge(BigramLM(len(llama_tokenizer), rules), llama_tokenizer, abstain_threshold=0.9)
    v = judge.grade("q", "answer", gold="gold", scoring="logits")
    assert not v.abstained
    p = probs(v.distributions[0])
    # P(7) = .8*.25*1 = .2, P(9) = .8*.75*.5 = .3 -> normalised .4 / .6
    assert p[7.0] == pytest.approx(0.4, abs=1e-6) and p[9.0] == pytest.approx(0.6, abs=1e-6)
    assert v.distributions[0].outside_mass == pytest.approx(0.5, abs=1e-6)
    assert v.scores == pytest.approx((0.4 * 7 + 0.6 * 9,), abs=1e-5)


def test_outside_grammar_abstains_with_reason(bigram_judge):
    strict = Judge(bigram_judge.model, bigram_judge.tokenizer, abstain_threshold=0.5)
    v = strict.compare("q", "a", "b", scoring="logits")
    assert v.abstained and v.reason_code == "outside_grammar"
    # the reason states the outside mass (1 - .5 * .75 = 62.5%, which rounds to 62% or 63% as the
    # last bit falls) and the threshold
    said = re.fullmatch(
        r"(\d+)% of the judge's probability lies outside the verdict grammar \(threshold 50%\)", v.reason
    )
    assert said is not None, v.reason
    assert abs(int(said[1]) - 100 * v.distributions[0].outside_mass) <= 0.5 + 1e-6
    assert v.distributions[0].outside_mass == pytest.approx(0.625, abs=1e-6)
    assert v.scores is None and v.winner is None and not v.tie and v.label is None
    assert v.distributions is not None  # what the judge thought is still reported


def test_greedy_slots_condition_on_the_best_earlier_value(bigram_judge):
    v = bigram_judge.rank("q", ["a", "b", "c"], scoring="logits")
    # multi (10^3 lines) is scored greedily: slot 1 as above; slots 2 and 3 follow "▁"
    assert probs(v.distributions[0])[8.0] == pytest.approx(0.6, abs=1e-6)
    assert probs(v.distributions[1])[9.0] == pytest.approx(1.0, abs=1e-6)  # "7" then "▁" is impossible
    assert probs(v.distributions[2])[7.0] == pytest.approx(2 / 3, abs=1e-6)  # the last slot ends in "\n"
    assert v.rank1_probs == pytest.approx(
        rank1_independent([d.probs for d in v.distributions], v.distributions[0].values)
    )
    # the exact joint (1,000 lines) agrees here because the bigram judge's slots are independent
    joint = bigram_judge.rank("q", ["a", "b", "c"], scoring="logits", slots="joint")
    for a, b in zip(joint.distributions, v.distributions, strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-6)


def _brute_force(model, tokenizer, prompt):
    """Teacher-forced probability of every grammar line, each string encoded on its own (the
    forward is batched, right-padded: causal attention never looks right)."""
    spec, n = prompt.spec, len(encode(tokenizer, prompt.text))
    combos = list(itertools.product(spec.score_values, repeat=spec.n_graded))
    seqs = [encode(tokenizer, prompt.text + line_text(spec, c)) for c in combos]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    keep = width - n + 1  # logits from the prompt's last position on
    with torch.no_grad():
        logp = model(ids, logits_to_keep=keep).logits.double().log_softmax(-1)  # [lines, keep, V]
    first = width - keep  # sequence position of logp[:, 0]
    return {
        c: sum(float(logp[r, k - 1 - first, s[k]]) for k in range(n, len(s)))
        for r, (c, s) in enumerate(zip(combos, seqs, strict=True))
    }


CHAT = (
    (Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "2+2?"), Turn("assistant", "4")),
    (Turn("user", "hi"), Turn("assistant", "hey there"), Turn("user", "2+2?"), Turn("assistant", "five")),
)
SAMPLES = {
    "pairwise": Sample("What is 2+2?", ("4", "five"), reference="4"),
    "single": Sample("What is 2+2?", ("4",), gold="four"),
    "mmvet": Sample("What is in the image?", ("a cat",), reference="cat<OR>kitten", id="v1_0"),
    "chat": Sample(conversations=CHAT),
    "multi": Sample("Pick a prime.", ("4", "7", "9")),
}


@pytest.mark.parametrize("mode", ["pairwise", "single", "mmvet", "chat"])
def test_joint_distribution_equals_brute_force(tiny_judge, mode):
    sample = SAMPLES[mode]
    prompt = tiny_judge.encode(sample)[0].prompt
    raw, _ = tiny_judge.raw_scores([sample])[0]
    brute = _brute_force(tiny_judge.model, tiny_judge.tokenizer, prompt)
    log_mass = torch.logsumexp(torch.tensor(list(brute.values()), dtype=torch.float64), 0)
    index = {v: i for i, v in enumerate(prompt.spec.score_values)}
    got = dict(zip(raw[0].line_values, raw[0].line_probs, strict=True))
    for combo, lp in brute.items():
        assert got[tuple(index[v] for v in combo)] == pytest.approx(math.exp(lp - log_mass), abs=1e-5)
    assert raw[0].grammar_mass == pytest.approx(math.exp(log_mass), rel=1e-4)


@pytest.mark.parametrize("mode", list(SAMPLES))
def test_batch_invariance(tiny_judge, mode):
    others = [
        Sample("x " * 300, ("long " * 200, "y")),
        Sample("q", ("a",), gold="b"),
        Sample("Pick.", ("1", "2", "3", "4")),
    ]
    alone = tiny_judge.raw_scores([SAMPLES[mode]], swap=True)[0][0]
    batched = tiny_judge.raw_scores([others[0], SAMPLES[mode], *others[1:]], swap=True)[1][0]
    for a, b in zip(alone, batched, strict=True):
        for pa, pb in zip(a.slot_probs, b.slot_probs, strict=True):
            assert pa == pytest.approx(pb, abs=1e-5)
        assert b.grammar_mass == pytest.approx(a.grammar_mass, rel=1e-4)


def test_swap_averages_orders_and_reports_inconsistency(bigram_judge):
    v = bigram_judge.compare("q", "a", "b", scoring="logits", swap=True)
    # the bigram judge only looks at slots, not answers: perfectly position-biased
    assert v.order_scores[0] == pytest.approx(tuple(reversed(v.order_scores[1])))
    assert v.scores[0] == pytest.approx(v.scores[1]) and v.consistent is False
    assert v.inconsistency == pytest.approx(0.65 - 0.25, abs=1e-6)
    assert v.preference.first == pytest.approx(v.preference.second)


def test_text_and_logit_scoring_share_the_api(llama_tokenizer, digits):
    # after "8", "\n" (.6) beats "▁" (.4): greedy decoding writes "8\n" (no tie for kernels to break)
    rules = {**bigram_rules(digits), digits["8"]: {NEWLINE: 0.6, SPACE: 0.4}}
    judge = Judge(BigramLM(len(llama_tokenizer), rules), llama_tokenizer, abstain_threshold=0.9)
    text = judge.compare("q", "a", "b", scoring="text")
    logit = judge.compare("q", "a", "b")
    assert logit.provenance.scoring == "logits" and text.provenance.scoring == "text"
    # the parse of "8\n" fails, while the distribution over the grammar still gives a verdict
    assert text.abstained and text.reason_code == "unparseable" and text.text == "8\n"
    assert not logit.abstained and logit.winner == 0


def test_grammar_from_another_tokenizer():
    tok = byte_tokenizer()
    prompt = get_format("pairwise").render(Sample("q", ("a", "b")))
    tree = build_tree(tok, prompt.spec, prompt.text, strategy="joint")
    space = tok.convert_tokens_to_ids("Ġ")
    one, zero = tok.convert_tokens_to_ids("1"), tok.convert_tokens_to_ids("0")
    ten = next(p for p, v in zip(tree.line_paths, tree.line_values, strict=True) if v == ("10", "1"))
    tokens = [tree.cand_ids[n][c] for n, c in ten]
    assert tokens[:4] == [one, zero, space, one]


def test_grammar_rejects_tokenizers_that_merge_the_verdict():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    base = byte_tokenizer()
    vocab = dict(base.get_vocab())
    vocab[":8"] = len(vocab)
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[(":", "8")]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    merging = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="</s>")
    prompt = get_format("pairwise").render(Sample("q", ("a", "b")))
    with pytest.raises(ScoringError, match="token boundary"):
        build_tree(merging, prompt.spec, prompt.text, strategy="joint")


def test_rank1_independent_matches_enumeration():
    values = (1.0, 2.0, 3.0)
    dists = [(0.2, 0.3, 0.5), (0.5, 0.5, 0.0), (0.1, 0.1, 0.8)]
    exact = [0.0] * 3
    for combo in itertools.product(range(3), repeat=3):
        p = math.prod(dists[i][combo[i]] for i in range(3))
        best = max(values[c] for c in combo)
        top = [i for i in range(3) if values[combo[i]] == best]
        for i in top:
            exact[i] += p / len(top)
    assert rank1_independent(dists, values) == pytest.approx(exact)
    assert sum(exact) == pytest.approx(1.0)
