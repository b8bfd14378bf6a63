"""Prometheus 2 and PandaLM formats and parsers against what the upstream code itself produced.

The fixture ``golden/upstream_judges.json`` was made by ``golden/make_upstream_fixtures.py``,
which runs (never copies):

- ``prometheus-eval==0.1.20`` (PyPI; = prometheus-eval/prometheus-eval 1a88c06):
  ``prometheus_eval/judge.py`` ``PrometheusEval.absolute_grade`` / ``relative_grade`` (the chat
  messages), ``_get_conversation_prompt`` + ``vllm.py``'s ``strip()`` (the offline prompt, fastchat
  0.1.0 ``conversation.py`` "mistral"), ``prompts.py`` (``load_rubric``, ``SCORE_RUBRIC_TEMPLATE``),
  ``parser.py`` ``parse_output``;
- prometheus-eval/prometheus-eval dcfb442 ``prompts.py`` (the repository's relative templates)
  and ``tests/test_parser.py`` (the parser's own test table, with upstream's expected values);
- WeOpenML/PandaLM 3871806 ``pandalm/utils/pandalm_inference.py``: ``build_pandalm_prompt``,
  ``parse_pandalm_response``, and ``inference``'s ``postprocess_output`` + ``filter_special_token``.

Inputs cover braces, ``[RESULT]`` inside answers, unicode, CRLF, tabs, leading/trailing spaces,
empty and whitespace-only texts, and special-token strings in PandaLM responses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgelm import Sample, get_format
from judgelm.formats import SCORE_RUBRIC_TEMPLATE, parse_official, render_rubric

UPSTREAM = json.loads((Path(__file__).parent / "golden" / "upstream_judges.json").read_text(encoding="utf-8"))
PROMETHEUS = UPSTREAM["prometheus"]["cases"]
PANDALM = UPSTREAM["pandalm"]


def _prometheus_sample(case: dict) -> Sample:
    answers = (case["response"],) if case["format"] == "prometheus_absolute" else tuple(case["responses"])
    return Sample(case["instruction"], answers, reference=case["reference"], rubric=case["rubric"], mode=case["format"])


@pytest.mark.parametrize(
    "case", PROMETHEUS, ids=lambda c: f"{c['format']}-{c['instruction'][:12]!r}-{c['reference'] is not None}"
)
def test_prometheus_prompt_and_messages_are_upstreams(case):
    prompt = get_format(case["format"]).render(_prometheus_sample(case))
    assert prompt.text == case["offline_prompt"]  # what vLLM receives
    assert prompt.chat() == case["messages"]  # what an API-served judge receives


def test_fixture_covers_the_edge_cases():
    texts = {c["instruction"] for c in PROMETHEUS}
    for needle in ("{instruction}", "[RESULT]", "漢字", "\r\n", "\t", "  padded"):
        assert any(needle in t for t in texts), needle
    assert "" in texts and " \n\t " in texts
    assert {c["format"] for c in PROMETHEUS} == {
        "prometheus_absolute",
        "prometheus_relative",
        "prometheus_relative_repo",
    }
    assert {c["reference"] is None for c in PROMETHEUS} == {True, False}


def test_rubrics_are_upstreams():
    for name, texts in UPSTREAM["prometheus"]["builtin_rubrics"].items():
        assert render_rubric(name) == texts["absolute"]  # load_rubric(name, "absolute")
        assert render_rubric(name, criteria_only=True) == texts["relative"]  # load_rubric(name, "relative")
    assert UPSTREAM["prometheus"]["score_rubric_template"] == SCORE_RUBRIC_TEMPLATE


def test_the_two_relative_template_sets_differ_only_in_the_task_description():
    case = next(c for c in PROMETHEUS if c["format"] == "prometheus_relative" and c["instruction"] == "What is 2+2?")
    repo = next(
        c
        for c in PROMETHEUS
        if c["format"] == "prometheus_relative_repo"
        and c["instruction"] == case["instruction"]
        and c["reference"] == case["reference"]
        and c["rubric"] == case["rubric"]
    )
    assert case["offline_prompt"] != repo["offline_prompt"]
    assert case["offline_prompt"].split("###Instruction:")[1] == repo["offline_prompt"].split("###Instruction:")[1]


@pytest.mark.parametrize(
    "row", UPSTREAM["prometheus_parser"]["outputs"], ids=lambda r: f"{r['mode']}-{r['output'][:20]!r}"
)
def test_prometheus_parse_official_is_upstreams(row):
    assert parse_official(row["output"], row["mode"]) == row["result"]
    assert parse_official(row["output"], f"prometheus_{row['mode']}") == row["result"]


@pytest.mark.parametrize("row", UPSTREAM["prometheus_parser"]["upstream_tests"], ids=lambda r: r["output"][:30])
def test_prometheus_parser_passes_upstreams_own_tests(row):
    assert row["result"] == row["expected"]  # upstream passed its own test when the fixture was made
    assert parse_official(row["output"], row["mode"]) == row["expected"]


def test_prometheus_parse_official_none_and_empty():
    # upstream test_empty_input / test_none_input: parse_output returns (None, None)
    for mode in ("absolute", "relative"):
        assert parse_official("", mode) is None
        assert parse_official(None, mode) is None
    with pytest.raises(ValueError, match="no official parser"):
        parse_official("x", "invalid_mode")


@pytest.mark.parametrize("case", PANDALM["prompts"], ids=lambda c: f"{c['instruction'][:10]!r}-{c['input'][:6]!r}")
def test_pandalm_prompt_is_upstreams(case):
    sample = Sample(case["instruction"], tuple(case["responses"]), input=case["input"], mode="pandalm")
    assert get_format("pandalm").render(sample).text == case["prompt"]


@pytest.mark.parametrize("row", PANDALM["parses"], ids=lambda r: repr(r["output"][:12]))
def test_pandalm_parse_official_is_upstreams(row):
    assert parse_official(row["output"], "pandalm") == row["result"]


@pytest.mark.parametrize("row", PANDALM["pipeline"], ids=lambda r: repr(r["output"][:8]))
def test_pandalm_official_reading_keeps_the_evaluation_split_quirk(row):
    """Upstream splits the decoded prompt+output at the first "### Evaluation:"; an instruction
    that contains it makes upstream read the instruction's tail (1) although the judge wrote 2.
    judgelm's official mode reads what upstream reads; its default reads the judge's text."""
    fmt = get_format("pandalm")
    prompt = fmt.render(Sample(row["instruction"], tuple(row["responses"]), mode="pandalm"))
    assert prompt.text == row["prompt"]
    official = fmt.parse(row["output"], prompt, official=True)
    expected = {1: (1.0, 0.0), 2: (0.0, 1.0), 0: (0.5, 0.5)}[row["result"]]
    assert official.scores == expected
    default = fmt.parse(row["output"], prompt)
    assert default.scores == {"2": (0.0, 1.0), "T": (0.5, 0.5)}[row["output"][0]]
