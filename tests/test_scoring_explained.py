"""Verdicts read from logits for the Prometheus 2 and PandaLM grammars.

Hand-set bigram models (`judgelm.testing.BigramLM`) pin exact distributions: the judge writes
"Fine [RESULT]" greedily (a token chain), and the result slot's probabilities are set by hand, so
the verdict must equal them whatever the engine, batch or machine.
"""

from __future__ import annotations

import itertools

import pytest

from judgelm import Judge, Sample, ScoringError
from judgelm.calibration import Calibration
from judgelm.formats import get_format
from judgelm.modalities.text import encode
from judgelm.scoring.explained import _continued, cut_at_marker
from judgelm.scoring.grammar import build_tree, line_text
from judgelm.testing import BigramLM, byte_tokenizer

FEEDBACK = "Fine [RESULT]"


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _chain(tok, prompt_text: str, text: str) -> tuple[dict[int, dict[int, float]], list[int]]:
    """Rules that make greedy decoding after ``prompt_text`` write ``text`` (each token's
    successor at p=0.6), and the generated ids; every token of the chain must be distinct."""
    base = encode(tok, prompt_text)
    full = encode(tok, prompt_text + text)
    assert full[: len(base)] == base
    chain = [base[-1], *full[len(base) :]]
    rules: dict[int, dict[int, float]] = {}
    for a, b in itertools.pairwise(chain):
        assert a not in rules, "the chain repeats a token: choose another feedback text"
        rules[a] = {b: 0.6}
    return rules, chain[1:]


def _result_rules(tok, labels: dict[str, float], context: str) -> tuple[dict[int, float], dict[int, dict[int, float]]]:
    """After the marker: P(`` <label>``) = 0.3 * labels[label], then EOS. Returns the marker
    token's successors and the rules after them (labels are "▁" + a digit, or one token)."""
    first: dict[int, float] = {}
    rules: dict[int, dict[int, float]] = {}
    for label, p in labels.items():
        ids = _ids(tok, context + " " + label)[len(_ids(tok, context)) :]
        if len(ids) == 2:  # "▁", "3"
            first[ids[0]] = 0.3
            rules.setdefault(ids[0], {})[ids[1]] = p / sum(labels.values())
        else:
            assert len(ids) == 1, ids
            first[ids[0]] = 0.3 * p / sum(labels.values())
        rules[ids[-1]] = {tok.eos_token_id: 1.0}
    return first, rules


def explained_judge(tok, mode: str, labels: dict[str, float], sample: Sample, *, ends: bool = False, **kw) -> Judge:
    """A bigram judge that writes "Fine [RESULT]" after the prompt, and at the result slot
    `` <label>`` + EOS with P = 0.3 * labels[label]. The prompt's last token is the marker's "]":
    greedy decoding after it loops back to "Fine" (aligned marker; give max_new_tokens), or with
    ``ends`` writes "Fine [RESULT]:" and EOS ("]:" is one token: the re-encoding path)."""
    prompt = get_format(mode).render(sample)
    rules, generated = _chain(tok, prompt.text, FEEDBACK + (":" if ends else ""))
    first, result = _result_rules(tok, labels, prompt.text + FEEDBACK)
    last = encode(tok, prompt.text)[-1]  # "]" of "[/INST]"
    assert encode(tok, prompt.text + FEEDBACK)[-1] == last  # ... and of "[RESULT]"
    if ends:
        rules[generated[-1]] = {tok.eos_token_id: 1.0}  # after "]:"
    rules[last] = {generated[0]: 0.6, **first}  # greedy: "Fine" again; else the verdict
    rules.update(result)
    return Judge(BigramLM(len(tok), rules), tok, **kw)


@pytest.fixture(scope="module")
def absolute(llama_tokenizer):
    sample = Sample("What is 2+2?", ("4",), id="s", mode="prometheus_absolute")
    labels = {"1": 0.1, "2": 0.2, "3": 0.4, "4": 0.2, "5": 0.1}
    return explained_judge(llama_tokenizer, "prometheus_absolute", labels, sample, abstain_threshold=1.0), sample


def test_explain_first_distribution_is_exact(absolute):
    judge, sample = absolute
    v = judge.judge([sample], scoring="logits", max_new_tokens=24)[0]
    assert not v.abstained and v.provenance.scoring == "logits"
    d = v.distributions[0]
    assert d.values == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert d.probs == pytest.approx((0.1, 0.2, 0.4, 0.2, 0.1), abs=1e-6)
    assert d.outside_mass == pytest.approx(1 - 0.3, abs=1e-6)  # P(" ") * P(label | " ") * P(EOS) = .3
    assert v.scores == pytest.approx((3.0,), abs=1e-6)
    assert v.explanation == "Fine" and v.text == FEEDBACK  # generation stops at the marker (greedy would loop on)
    # the same verdict in a batch of different-length prompts
    other = sample.replace(id="t", question="A much longer question about arithmetic, 2+2?")
    batch = judge.judge([other, sample, other], scoring="logits", max_new_tokens=24)
    assert batch[1].distributions[0].probs == pytest.approx(d.probs, abs=1e-6)


def test_missing_marker_abstains_with_its_reason(absolute, llama_tokenizer):
    judge, sample = absolute
    v = judge.judge([sample], scoring="logits", max_new_tokens=3)[0]
    assert v.abstained and v.reason_code == "no_verdict" and v.scores is None
    assert "without '[RESULT]'" in v.reason and "max_new_tokens=3" in v.reason
    assert v.text and v.explanation == v.text.strip()
    text = judge.judge([sample], scoring="text", max_new_tokens=3)[0]
    assert text.abstained and text.reason_code == "no_verdict"


def test_a_judge_that_ends_before_the_marker(llama_tokenizer):
    tok = llama_tokenizer
    sample = Sample("q", ("a",), mode="prometheus_absolute")
    prompt = get_format("prometheus_absolute").render(sample)
    rules, generated = _chain(tok, prompt.text, "Fine")
    rules[generated[-1]] = {tok.eos_token_id: 1.0}
    v = Judge(BigramLM(len(tok), rules), tok).judge([sample], scoring="logits", max_new_tokens=20)[0]
    assert v.reason_code == "no_verdict" and "(ended its text)" in v.reason


def test_text_scoring_reads_the_written_result(absolute):
    judge, sample = absolute
    # greedy after "[RESULT]" is "Fine" again (p .6 > .3): the text holds no label
    v = judge.judge([sample], scoring="text", max_new_tokens=24)[0]
    assert v.abstained and v.reason_code == "unparseable"


def test_relative_swap_and_tie(llama_tokenizer):
    sample = Sample("q", ("first", "second"), id="r", mode="prometheus_relative", scale="A/B/tie")
    labels = {"A": 0.6, "B": 0.2, "tie": 0.2}
    judge = explained_judge(llama_tokenizer, "prometheus_relative", labels, sample, ends=True, abstain_threshold=1.0)
    one = judge.judge([sample], scoring="logits")[0]  # "Fine [RESULT]:" then EOS: re-encoded up to "]"
    assert one.text == "Fine [RESULT]:" and one.explanation == "Fine"
    p = one.preference
    assert (p.first, p.tie, p.second) == pytest.approx((0.6, 0.2, 0.2), abs=1e-6)
    assert one.winner == 0 and one.label == 1
    assert one.scores == pytest.approx((0.7, 0.3), abs=1e-6)  # win 1, tie 0.5, loss 0
    assert one.distributions[0].values == (0.0, 0.5, 1.0)
    both = judge.judge([sample], scoring="logits", swap=True)[0]
    p = both.preference  # the bigram ignores the answers: "A" is always slot 1 -> pure position bias
    assert (p.first, p.tie, p.second) == pytest.approx((0.4, 0.2, 0.4), abs=1e-6)
    assert both.inconsistency == pytest.approx(0.4, abs=1e-6) and both.consistent is False
    assert both.order_scores[0] == pytest.approx((0.7, 0.3), abs=1e-6)
    assert both.order_scores[1] == pytest.approx((0.3, 0.7), abs=1e-6)
    raw = judge.raw_scores([sample], swap=True)[0]
    assert len(raw[0]) == 2 and raw[1] == ((0, 1), (1, 0))


def test_pandalm_verdict_first_is_read_directly(llama_tokenizer):
    tok = llama_tokenizer
    newline, tie = 13, _ids(tok, "x\nTie")[2:]  # "▁x", "<0x0A>", then "T", "ie"
    one, two = (tok.convert_tokens_to_ids(c) for c in "12")
    rules = {
        newline: {one: 0.5, two: 0.3, tie[0]: 0.2},
        one: {newline: 1.0},
        two: {newline: 1.0},
        tie[0]: {tie[1]: 1.0},
        tie[1]: {newline: 1.0},
    }
    judge = Judge(BigramLM(len(tok), rules), tok)
    s = Sample("Add:", ("4", "5"), input="2+2", mode="pandalm")
    v = judge.judge([s], scoring="logits")[0]
    assert (v.preference.first, v.preference.tie, v.preference.second) == pytest.approx((0.5, 0.2, 0.3), abs=1e-6)
    assert v.distributions[0].outside_mass == pytest.approx(0.0, abs=1e-6) and v.winner == 0
    swapped = judge.judge([s], scoring="logits", swap=True)[0]
    assert swapped.preference.first == pytest.approx(0.4, abs=1e-6) and swapped.preference.tie == pytest.approx(0.2)
    text = judge.judge([s], scoring="text")[0]
    assert text.scores == (1.0, 0.0) and text.winner == 0
    calibrated = judge.judge([s], scoring="logits", calibrated=False)[0]
    judge.calibration = Calibration(temperature=2.0)
    hot = judge.judge([s], scoring="logits")[0]
    assert hot.preference.first < calibrated.preference.first  # T > 1 flattens the 3 labels


def test_grammar_lines_for_the_new_specs(llama_tokenizer):
    tok = llama_tokenizer
    absolute = get_format("prometheus_absolute").render(Sample("q", ("a",), scale="1-10"))
    assert line_text(absolute.spec, ("10",)) == " 10"  # lead, no text terminator
    tree = build_tree(tok, absolute.spec, absolute.text + FEEDBACK, strategy="joint")
    eos = tok.eos_token_id
    assert len(tree.line_paths) == 10 and tree.line_values[9] == ("10",)
    leaves = {tree.cand_ids[n][c] for path in tree.line_paths for n, c in path[-1:]}
    assert leaves == {eos}  # "1" is no prefix of "10": every line ends with EOS
    pandalm = get_format("pandalm").render(Sample("q", ("a", "b")))
    assert [line_text(pandalm.spec, (v,)) for v in pandalm.spec.score_values] == ["1\n", "2\n", "Tie\n"]
    assert pandalm.spec.slot_values(("Tie",)) == (1, 1) and pandalm.spec.slot_values(("2",)) == (0, 2)
    no_eos = byte_tokenizer()
    no_eos.eos_token = None
    with pytest.raises(ScoringError, match="no EOS token"):
        build_tree(no_eos, absolute.spec, absolute.text + FEEDBACK, strategy="joint")


def test_cut_at_marker_and_the_re_encoding_fallback(llama_tokenizer):
    tok = llama_tokenizer
    prompt = get_format("prometheus_absolute").render(Sample("q", ("a",)))
    from judgelm.modalities.text import EncodedPrompt

    encoded = EncodedPrompt(prompt, tuple(encode(tok, prompt.text)))
    aligned = _ids(tok, prompt.text + "Fine [RESULT] 3")[len(encoded.input_ids) - 1 :]
    k, text = cut_at_marker(tok, aligned, "[RESULT]")
    assert text == "Fine [RESULT]" and tok.decode(aligned[:k], skip_special_tokens=True) == text
    cont = _continued(tok, encoded, aligned, k, text)
    assert cont.input_ids == (*encoded.input_ids, *aligned[:k])  # the generated ids themselves
    merged = _ids(tok, prompt.text + "Fine [RESULT]: 3")[len(encoded.input_ids) - 1 :]  # "]:" is one token
    k, text = cut_at_marker(tok, merged, "[RESULT]")
    assert text == "Fine [RESULT]" and tok.decode(merged[:k], skip_special_tokens=True) == "Fine [RESULT]:"
    cont = _continued(tok, encoded, merged, k, text)
    assert cont.input_ids == tuple(encode(tok, prompt.text + "Fine [RESULT]"))  # re-encoded text
    assert cut_at_marker(tok, _ids(tok, "no marker"), "[RESULT]") is None
