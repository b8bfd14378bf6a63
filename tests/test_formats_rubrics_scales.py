"""judgelm's side of the Prometheus 2 / PandaLM formats: rubrics, scales (custom for any format),
the grammars they make, judgelm's tolerant parsers (tie vs failure), and the new sample fields."""

from __future__ import annotations

import json

import pytest

from judgelm import FormatError, InvalidSampleError, Sample, get_format
from judgelm.formats import SCORE_RUBRIC_TEMPLATE, parse_official, render_rubric, resolve_scale
from judgelm.io import sample_from_record

RUBRIC = {
    "criteria": "Is it correct?",
    **{f"score{k}_description": f"level {k}" for k in range(1, 11)},
}


def render(mode: str, sample: Sample, order=None):
    return get_format(mode).render(sample, order)


# ---- scales ------------------------------------------------------------------------------------
def test_scales_by_name_range_list_and_mapping():
    assert resolve_scale("1-5").labels == tuple("12345")
    assert resolve_scale("0-3").numbers == (0.0, 1.0, 2.0, 3.0) and resolve_scale("0-3").integer_range() == (0, 3)
    assert resolve_scale(["bad", "ok", "good"]).numbers == (1.0, 2.0, 3.0)  # words: 1..k in order
    assert resolve_scale([0.5, 1, 1.5]).numbers == (0.5, 1.0, 1.5)
    yes_no = resolve_scale("yes/no")
    assert yes_no.kind == "score" and yes_no.top == "yes"
    tie = resolve_scale({"labels": ["X", "Y", "same"], "picks": [0, 1, None]})
    assert tie.kind == "choice" and tie.tie_label == "same" and tie.score_of("same", 2) == (0.5, 0.5)
    for bad in ("1-1", "fast", {"labels": ["a"]}, {"labels": ["a", "b"], "picks": [0, 0]}, ["a", "a"]):
        with pytest.raises(FormatError):
            resolve_scale(bad)


def test_a_wrong_scale_is_the_samples_error_naming_the_field():
    with pytest.raises(InvalidSampleError, match="needs a choice scale") as e:
        render("prometheus_relative", Sample("q", ("a", "b"), scale="1-5"))
    assert e.value.field == "scale"
    with pytest.raises(InvalidSampleError, match="writes numeric scores") as e:
        render("pairwise", Sample("q", ("a", "b"), scale="yes/no"))
    assert e.value.field == "scale"
    with pytest.raises(InvalidSampleError, match="unknown scale") as e:
        render("pandalm", Sample("q", ("a", "b"), scale="fast"))
    assert e.value.field == "scale"
    with pytest.raises(InvalidSampleError) as e:
        Sample("q", ("a",), scale=3.5)
    assert e.value.field == "scale"


# ---- rubrics -----------------------------------------------------------------------------------
def test_rubric_mapping_follows_the_scale():
    five = {k: v for k, v in RUBRIC.items() if k in ("criteria",) or int(k[5:].split("_")[0]) <= 5}
    assert render_rubric(five) == SCORE_RUBRIC_TEMPLATE.format(**five)
    ten = render_rubric(RUBRIC, resolve_scale("1-10"))
    assert ten.splitlines()[0] == "[Is it correct?]" and ten.splitlines()[-1] == "Score 10: level 10"
    with pytest.raises(InvalidSampleError, match="score6_description") as e:
        render_rubric(five, resolve_scale("1-10"))
    assert e.value.field == "rubric.score6_description"
    assert render_rubric({"criteria": "Only this?"}, criteria_only=True) == "[Only this?]"


def test_rubric_names_and_texts():
    assert render_rubric("Does it {cite} sources?") == "Does it {cite} sources?"  # verbatim
    with pytest.raises(InvalidSampleError, match="unknown rubric name 'helpfullness'"):
        render_rubric("helpfullness")
    with pytest.raises(InvalidSampleError) as e:
        Sample("q", ("a",), rubric={"criteria": 3})
    assert e.value.field == "rubric"


# ---- Prometheus: default byte-exact, other scales rewrite the scale phrases --------------------
def test_prometheus_absolute_scales():
    default = render("prometheus_absolute", Sample("q", ("a",), reference="r"))
    assert "an integer between 1 and 5" in default.text and "(Score 5)" in default.text
    assert default.spec.score_values == tuple("12345") and default.spec.marker == "[RESULT]"
    assert default.spec.terminator is None and default.spec.lead == " "
    ten = render("prometheus_absolute", Sample("q", ("a",), reference="r", scale="1-10", rubric=RUBRIC))
    assert "an integer between 1 and 10" in ten.text and "[RESULT] (an integer number between 1 and 10)" in ten.text
    assert "###Reference Answer (Score 10):" in ten.text and "Score 10: level 10" in ten.text
    assert ten.spec.score_values == tuple(str(i) for i in range(1, 11))
    yes_no = render("prometheus_absolute", Sample("q", ("a",), scale="yes/no", rubric="Is it right?"))
    assert "a score that is one of yes or no" in yes_no.text and yes_no.spec.numbers == (1.0, 0.0)
    assert default.template_hash != ten.template_hash
    braces = render("prometheus_absolute", Sample("q", ("a",), scale=["{bad}", "{good}"], rubric="Is it good?"))
    assert "a score that is one of {bad} or {good}" in braces.text


@pytest.mark.parametrize("mode", ["prometheus_relative", "prometheus_relative_repo"])
def test_prometheus_relative_tie_scale(mode):
    plain = render(mode, Sample("q", ("a", "b")))
    tie = render(mode, Sample("q", ("a", "b"), scale="A/B/tie"))
    assert plain.spec.picks == (0, 1) and tie.spec.picks == (0, 1, None)
    assert tie.spec.values == (0.0, 0.5, 1.0) and plain.spec.values == (0.0, 1.0)
    expected = '[RESULT] (Either "A", "B" or "tie")' if mode.endswith("repo") else "[RESULT] (A, B or tie)"
    assert expected in tie.text and expected not in plain.text
    assert plain.messages[0][0] == "system" and plain.text.startswith("[INST] ") and plain.text.endswith(" [/INST]")


def test_prometheus_uses_gold_as_the_reference_and_defaults_to_helpfulness():
    p = render("prometheus_absolute", Sample("q", ("a",), gold="g"))
    assert "###Reference Answer (Score 5):\ng\n" in p.text
    assert render_rubric("helpfulness") in p.text


def test_swapped_relative_prompt_shows_b_first():
    p = render("prometheus_relative", Sample("q", ("first", "second")), (1, 0))
    assert p.text.index("###Response A:\nsecond") < p.text.index("###Response B:\nfirst")


# ---- JudgeLM formats take custom scales and rubrics too ----------------------------------------
@pytest.mark.parametrize(
    ("mode", "sample"),
    [
        ("pairwise", Sample("q", ("a", "b"))),
        ("multi", Sample("q", ("a", "b", "c"))),
        ("single", Sample("q", ("a",), gold="g")),
        ("chat", Sample(conversations=([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],))),
    ],
)
def test_judgelm_formats_follow_the_scale(mode, sample):
    default = render(mode, sample)
    five = render(mode, sample.replace(scale="1-5", rubric="honesty"))
    assert "on a scale of 1 to 10" in default.text and "on a scale of 1 to 5" in five.text
    assert "[Score Rubric]\n" + render_rubric("honesty") in five.text and "[Score Rubric]" not in default.text
    assert five.spec.score_values == tuple("12345") and five.spec.score_range == (1.0, 5.0)
    if mode == "single":
        assert five.text.endswith("### Response:5") and five.spec.forced == ("5",)


def test_mmvet_takes_a_scale_but_no_rubric():
    s = Sample("q", ("pred",), reference="truth", mode="mmvet")
    assert render("mmvet", s.replace(scale="0-4")).text.endswith("### Response:4")
    with pytest.raises(InvalidSampleError, match="no rubric"):
        render("mmvet", s.replace(rubric="honesty"))


def test_input_is_folded_into_the_question_where_the_format_has_no_slot():
    s = Sample("Translate:", ("a", "b"), input="bonjour")
    assert "[Question]\nTranslate:\nbonjour\n\n" in render("pairwise", s).text
    assert "###Instruction:\nTranslate:\nbonjour\n\n" in render("prometheus_relative", s).text
    assert "### Input:\nbonjour\n\n" in render("pandalm", s).text
    assert "### Input:" not in render("pandalm", s.replace(input="")).text


def test_judgelm_messages_are_the_exact_prompt():
    p = render("pairwise", Sample("q", ("a", "b")))
    assert p.chat() == [{"role": "user", "content": p.text}]


# ---- judgelm's tolerant parsers: tie and failure apart -----------------------------------------
@pytest.mark.parametrize(
    ("text", "scores", "code"),
    [
        ("Good. [RESULT] 3", (3.0,), None),
        ("Good. [RESULT] (4)\n", (4.0,), None),
        ("[RESULT]: 5 out of 5", (5.0,), None),
        ("Quotes [RESULT] x first. [RESULT] 2", (2.0,), None),
        ("Good. [RESULT] 7", None, "out_of_range"),
        ("Good. [RESULT] banana", None, "unparseable"),
        ("Good, no verdict", None, "no_verdict"),
        ("", None, "no_verdict"),
    ],
)
def test_prometheus_absolute_tolerant_parse(text, scores, code):
    fmt = get_format("prometheus_absolute")
    parsed = fmt.parse(text, fmt.render(Sample("q", ("a",))))
    assert parsed.scores == scores and parsed.reason_code == code
    if text.startswith("Good."):
        assert parsed.explanation == "Good."


def test_prometheus_relative_parse_maps_labels_through_the_order():
    fmt = get_format("prometheus_relative")
    s = Sample("q", ("a", "b"), scale="A/B/tie")
    assert fmt.parse("x [RESULT] A", fmt.render(s)).scores == (1.0, 0.0)
    assert fmt.parse("x [RESULT] A", fmt.render(s, (1, 0))).scores == (0.0, 1.0)  # A is answer 2 here
    assert fmt.parse("x [RESULT] Tie", fmt.render(s)).scores == (0.5, 0.5)
    assert fmt.parse("x [RESULT] Response b", fmt.render(s)).scores == (0.0, 1.0)
    no_tie = fmt.parse("x [RESULT] tie", fmt.render(s.replace(scale=None)))
    assert no_tie.scores is None and no_tie.reason_code == "unparseable"
    official = fmt.parse("x [RESULT] tie", fmt.render(s), official=True)  # upstream reads A or B only
    assert official.scores is None and official.reason_code == "unparseable"
    assert fmt.parse("Feedback\nResult: B", fmt.render(s), official=True).scores == (0.0, 1.0)


@pytest.mark.parametrize(
    ("text", "official", "scores", "code"),
    [
        ("1\n\n### Reason: ok", False, (1.0, 0.0), None),
        ("Tie\n\n### Reason: same", False, (0.5, 0.5), None),
        ("Response 2.\nreason", False, (0.0, 1.0), None),
        ("3\nhuh", False, None, "unparseable"),
        ("", False, None, "unparseable"),
        ("tie", True, (0.5, 0.5), None),  # upstream: 0, a tie
        ("banana", True, None, "unparseable"),  # upstream: 0 as well; judgelm: a failure
        (" 2 \nfoo", True, None, "unparseable"),  # upstream reads "2 " (stripped text, first line): 0
    ],
)
def test_pandalm_parse_tells_tie_from_failure(text, official, scores, code):
    fmt = get_format("pandalm")
    parsed = fmt.parse(text, fmt.render(Sample("q", ("a", "b"))), official=official)
    assert parsed.scores == scores and parsed.reason_code == code
    if official:
        assert parse_official(text, "pandalm") in (0, 1, 2)


def test_pandalm_without_tie_scale_refuses_a_tie():
    fmt = get_format("pandalm")
    prompt = fmt.render(Sample("q", ("a", "b"), scale="1/2"))
    assert prompt.spec.score_values == ("1", "2")
    assert fmt.parse("Tie\n", prompt).reason_code == "out_of_range"
    assert fmt.parse("Tie\n", prompt, official=True).reason_code == "out_of_range"


# ---- records -----------------------------------------------------------------------------------
def test_upstream_records_keep_their_idx_as_the_key(tmp_path):
    from judgelm.io import read_samples

    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"idx": 3, "instruction": "i", "response1": "x", "response2": "y"}) + "\n")
    (rec,) = read_samples(path, mode="pandalm")
    assert rec.key == "3" and rec.sample.id == "3" and rec.sample.mode == "pandalm"


def test_records_carry_rubric_input_scale_and_upstream_names():
    s = sample_from_record(
        {
            "question": "q",
            "answers": ["a"],
            "rubric": RUBRIC,
            "input": "in",
            "scale": "1-10",
            "mode": "prometheus_absolute",
        }
    )
    assert s.rubric["criteria"] == "Is it correct?" and s.input == "in" and s.scale == "1-10"
    assert json.loads(json.dumps(s.to_dict()))["rubric"] == RUBRIC
    assert sample_from_record(s.to_dict()) == s
    prom = sample_from_record(
        {"instruction": "i", "response_A": "x", "response_B": "y", "reference_answer": "r", "rubric": "honesty"}
    )
    assert (prom.question, prom.answers, prom.reference, prom.rubric) == ("i", ("x", "y"), "r", "honesty")
    panda = sample_from_record({"idx": 3, "instruction": "i", "input": "", "response1": "x", "response2": "y"})
    assert (panda.id, panda.input, panda.answers) == ("3", None, ("x", "y"))
    absolute = sample_from_record({"instruction": "i", "response": "x", "mode": "prometheus_absolute"})
    assert absolute.answers == ("x",) and absolute.mode == "prometheus_absolute"
    with pytest.raises(InvalidSampleError, match="response"):
        sample_from_record({"instruction": "i", "answer": "x"})
