"""The synthetic judge-data generator: deterministic, verifiable, and its biases do what they say."""

from __future__ import annotations

import json
import re

import pytest

from judgelm.data.records import record_from_dict
from judgelm.data.synthetic import SyntheticConfig, generate
from judgelm.data.synthetic.__main__ import main as synth_main
from judgelm.data.synthetic.answers import QUALITY
from judgelm.formats import get_format, parse_scores

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FACTORS = {
    ("meters", "centimeters"): 100,
    ("kilometers", "meters"): 1000,
    ("kilograms", "grams"): 1000,
    ("hours", "minutes"): 60,
    ("minutes", "seconds"): 60,
    ("feet", "inches"): 12,
    ("days", "hours"): 24,
    ("liters", "milliliters"): 1000,
}


def recompute(question: str) -> str:
    """The true answer, computed again from the question text alone."""
    if m := re.fullmatch(r"What is (\d+) ([-+×]) (\d+)\?", question):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str(a + b if op == "+" else a - b if op == "-" else a * b)
    if m := re.fullmatch(r"How many (\w+) are there in (\d+) (\w+)\?", question):
        return f"{int(m[2]) * _FACTORS[(m[3], m[1])]} {m[1]}"
    if m := re.fullmatch(r"Sort these numbers from smallest to largest: ([\d, ]+)\.", question):
        return ", ".join(map(str, sorted(int(x) for x in m[1].split(", "))))
    if m := re.fullmatch(r'How many times does the letter "(\w)" appear in the word "(\w+)"\?', question):
        return str(m[2].count(m[1]))
    if m := re.fullmatch(r"If today is (\w+), what day of the week will it be in (\d+) days\?", question):
        return _DAYS[(_DAYS.index(m[1]) + int(m[2])) % 7]
    if question.startswith("Here is a price list"):
        rows = dict(re.findall(r"\| (\w+) \| (\d+) \|", question))
        item = re.search(r"What is the price of (\w+)\?", question)[1]
        return rows[item]
    raise AssertionError(f"unknown question: {question!r}")


RECORDS = generate(300, seed=3)


def test_deterministic_and_extensible():
    assert generate(20, seed=3) == RECORDS[:20]
    assert generate(5, seed=3, start=10) == RECORDS[10:15]
    assert generate(20, seed=4) != RECORDS[:20]


def test_every_truth_is_computable_and_every_answer_kind_holds():
    families = set()
    for r in RECORDS:
        truth = recompute(r["question_body"])
        families.add(r["family"])
        assert truth in r["reference"]["text"]
        for k, kind in enumerate(r["kinds"], start=1):
            answer = r[f"answer{k}_body"]
            assert r[f"answer{k}_model_id"] == f"synthetic-{kind}"
            if kind in ("correct", "rambling"):
                assert truth in answer
            elif kind == "wrong":
                assert truth not in re.split(r"[.:]? ", answer) and not answer.rstrip(".").endswith(" " + truth)
            elif kind == "refusal":
                assert re.search(r"sorry|unable|not able|cannot", answer, re.I)
        assert r["true_score"] == [QUALITY[k] for k in r["kinds"]]
    assert families == {"arithmetic", "unit_conversion", "sorting", "letter_count", "table_lookup", "weekday"}


def test_unbiased_teacher_gives_the_true_scores_in_judgelm_format():
    fmt = get_format("pairwise")
    for r in RECORDS:
        for text, score in ((r["text"], r["score"]), (r["text_w_reference"], r["score_w_reference"])):
            assert score == r["true_score"]
            head, _, explanation = text.partition("\n")
            assert head == f"{score[0]} {score[1]}"  # exactly what the reference parser reads
            assert parse_scores(text, 2, official=True) == tuple(map(float, score))
            assert "Assistant 1" in explanation and "Assistant 2" in explanation
        assert "reference" in r["text_w_reference"].partition("\n")[2]
        assert "reference" not in r["text"].partition("\n")[2]
        fmt.render(record_from_dict(r).sample)  # a valid pairwise sample


def test_position_bias_knob_favours_assistant_1_on_close_calls_only():
    biased = generate(300, seed=3, config=SyntheticConfig(position_bias=1.0))
    close = 0
    for plain, r in zip(RECORDS, biased, strict=True):
        t1, t2 = r["true_score"]
        s1, s2 = r["score"]
        if t2 - 1 <= t1 <= t2:  # a close call that Assistant 1 does not already win
            close += 1
            assert s1 > s2 and r["position_biased"] == [True, True]
            assert "Assistant 1 is slightly better" in r["text"]
        else:
            assert (s1, s2) == (t1, t2) and r["position_biased"] == [False, False]
        assert r["question_body"] == plain["question_body"]  # the knob changes judgments only
    assert close > 30


def test_knowledge_gap_knob_fools_only_the_plain_teacher():
    recs = generate(200, seed=3, config=SyntheticConfig(plain_teacher_error=1.0))
    seen = 0
    for r in recs:
        for k, kind in enumerate(r["kinds"]):
            if kind == "wrong":
                seen += 1
                assert r["score"][k] == QUALITY["correct"]
                assert r["score_w_reference"][k] == QUALITY["wrong"]
    assert seen > 20


def test_n_answers_and_brief_explanations():
    recs = generate(30, seed=1, config=SyntheticConfig(n_answers=3, brief=True))
    for r in recs:
        assert "answer3_body" in r and len(r["score"]) == 3
        head, _, expl = r["text"].partition("\n")
        assert len(head.split(" ")) == 3
        assert [f"Assistant {k}" in expl for k in (1, 2, 3)] == [True] * 3
        get_format("multi").render(record_from_dict(r).sample)


def test_cli_writes_jsonl(tmp_path):
    out = tmp_path / "syn.jsonl"
    assert synth_main(["-n", "7", "-o", str(out), "--seed", "3", "--position-bias", "0"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == RECORDS[:7]


def test_config_validation():
    with pytest.raises(ValueError):
        SyntheticConfig(position_bias=1.5)
    with pytest.raises(ValueError):
        SyntheticConfig(n_answers=1)
    with pytest.raises(ValueError):
        SyntheticConfig(families=("poetry",))
