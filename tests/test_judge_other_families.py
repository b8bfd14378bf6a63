"""Prometheus 2 and PandaLM through everything built on `Judge`: text verdicts, per-judge rubric and
scale, `judgelm prompts`, calibration, benchmarks (PandaLM test set) and the HTTP server."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from judgelm import Sample
from judgelm.calibration import calibrate_judge
from judgelm.cli import main
from judgelm.config import JudgeConfig
from judgelm.eval import load_pandalm
from judgelm.eval.bench import run_benchmark
from judgelm.judge import Judge
from judgelm.serve import BackgroundServer, ServeConfig
from judgelm.testing import ScriptedEngine, byte_tokenizer


def respond(prompt: str) -> str:
    """A judge that prefers answers starting with "good" in every family's own output format."""
    if prompt.startswith("[INST] "):  # Prometheus (the offline mistral prompt)
        if "###Response A:" in prompt:
            a = re.search(r"###Response A:\n(.*)", prompt).group(1)
            b = re.search(r"###Response B:\n(.*)", prompt).group(1)
            verdict = "tie" if a.startswith("good") == b.startswith("good") else "A" if a.startswith("good") else "B"
            return f"Feedback: compared. [RESULT] {verdict}"
        answer = re.search(r"###Response to evaluate:\n(.*)", prompt).group(1)
        return f"Feedback: graded. [RESULT] {5 if answer.startswith('good') else 2}"
    if prompt.startswith("Below are two responses"):  # PandaLM
        r1 = re.search(r"### Response 1:\n(.*)", prompt).group(1)
        r2 = re.search(r"### Response 2:\n(.*)", prompt).group(1)
        verdict = "Tie" if r1.startswith("good") == r2.startswith("good") else "1" if r1.startswith("good") else "2"
        return f"{verdict}\n\n### Reason: good is better.\n\n### Reference: good"
    return "garbage"


def scripted(reply, name: str = "families") -> Judge:
    """A scripted judge with Prometheus-sized context (its prompts are ~2,000 bytes)."""
    tok = byte_tokenizer()
    return Judge(None, tok, name=name, engine=ScriptedEngine(tok, reply, context_length=8192))


@pytest.fixture
def judge():
    return scripted(respond)


def test_text_verdicts_for_every_family(judge):
    samples = [
        Sample("q", ("bad", "good"), mode="prometheus_relative", id="rel"),
        Sample("q", ("good", "good too"), mode="prometheus_relative", scale="A/B/tie", id="tie"),
        Sample("q", ("good",), mode="prometheus_absolute", reference="r", id="abs"),
        Sample("q", ("good", "bad"), mode="pandalm", input="ctx", id="panda"),
        Sample("q", ("good", "good"), mode="pandalm", id="panda-tie"),
    ]
    rel, tie, absolute, panda, panda_tie = judge.judge(samples, scoring="text", swap=True, explain=True)
    assert rel.winner == 1 and rel.label == -1 and rel.consistent and rel.scores == (0.0, 1.0)
    assert rel.explanation == "Feedback: compared." and rel.provenance.orders == ((0, 1), (1, 0))
    assert tie.tie and not tie.abstained and tie.scores == (0.5, 0.5) and tie.label == 0
    assert absolute.scores == (5.0,) and absolute.provenance.orders == ((0,),)
    assert panda.winner == 0 and panda.explanation.startswith("### Reason")
    assert panda_tie.tie and panda_tie.label == 0
    assert "### Input:\nctx" in panda.prompt


def test_failures_are_never_ties_even_with_the_official_parser(judge):
    garbage = scripted("garbage\nmore")
    for official in (False, True):
        v = garbage.judge([Sample("q", ("a", "b"), mode="pandalm")], scoring="text", official_parser=official)[0]
        assert v.abstained and v.label is None and not v.tie and v.reason_code == "unparseable"
        v = garbage.judge([Sample("q", ("a",), mode="prometheus_absolute")], scoring="text", official_parser=official)[
            0
        ]
        assert v.abstained and v.reason_code in ("no_verdict", "unparseable")


def test_a_bad_rubric_or_scale_abstains_naming_the_field(judge):
    bad = judge.judge(
        [
            Sample("q", ("a", "b"), mode="prometheus_relative", scale="1-5", id="s"),
            Sample("q", ("a",), mode="prometheus_absolute", rubric="helpfullness", id="r"),
            Sample("q", ("good",), mode="prometheus_absolute", id="ok"),
        ],
        scoring="text",
    )
    assert bad[0].reason_code == "invalid_input" and "'scale'" in bad[0].reason
    assert bad[1].reason_code == "invalid_input" and "'rubric'" in bad[1].reason
    assert bad[2].scores == (5.0,)  # the others go on


def test_judge_level_rubric_and_scale(judge, tmp_path):
    judge.config = judge.config.replace(scale="1-5", rubric="honesty")
    v = judge.judge([Sample("q", ("good",), mode="prometheus_absolute"), Sample("q", ("a", "b"))], scoring="text")
    assert "Score 5: The model consistently delivers responses that are truthful" in v[0].prompt
    assert "on a scale of 1 to 5" in v[1].prompt and "[Score Rubric]" in v[1].prompt
    own = judge.judge([Sample("q", ("a", "b"), scale="1-10", rubric="Be kind.")], scoring="text")[0]
    assert "on a scale of 1 to 10" in own.prompt and "Be kind." in own.prompt  # the sample's own win
    judge.config.save(tmp_path)
    assert JudgeConfig.load(tmp_path).scale == "1-5" and JudgeConfig.load(tmp_path).rubric == "honesty"


def test_prompts_cli_writes_prompt_and_messages(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "instruction": "i", "response_A": "x", "response_B": "y", "mode": "prometheus_relative"},
        {"id": "b", "question": "q", "answers": ["x", "y"]},
        {"id": "c", "instruction": "i", "input": "in", "response1": "x", "response2": "y", "mode": "pandalm"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["prompts", str(src), "-o", str(out), "--swap"]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [(x["id"], x["format"], x["order"]) for x in lines] == [
        ("a", "prometheus_relative", [0, 1]),
        ("a", "prometheus_relative", [1, 0]),
        ("b", "pairwise", [0, 1]),
        ("b", "pairwise", [1, 0]),
        ("c", "pandalm", [0, 1]),
        ("c", "pandalm", [1, 0]),
    ]
    prom, pair, panda = lines[0], lines[2], lines[4]
    assert [m["role"] for m in prom["messages"]] == ["system", "user"] and prom["prompt"].startswith("[INST] ")
    assert prom["messages"][1]["content"] in prom["prompt"]
    assert pair["messages"] == [{"role": "user", "content": pair["prompt"]}]
    assert panda["messages"] == [{"role": "user", "content": panda["prompt"]}] and "### Input:\nin" in panda["prompt"]


PANDALM_SET = [
    {"idx": 0, "instruction": "Say hi.", "input": "", "response1": "good: hi", "response2": "bad",
     "annotator1": 1, "annotator2": 1, "annotator3": 1},
    {"idx": 1, "instruction": "Add:", "input": "2+2", "response1": "bad", "response2": "good: 4",
     "annotator1": 2, "annotator2": 2, "annotator3": 0},
    {"idx": 2, "instruction": "X", "input": "", "response1": "good", "response2": "good",
     "annotator1": 0, "annotator2": 0, "annotator3": 1},
]  # fmt: skip


def test_pandalm_benchmark_in_the_pandalm_and_prometheus_formats(judge, tmp_path):
    path = tmp_path / "testset-v1.json"
    path.write_text(json.dumps(PANDALM_SET), encoding="utf-8")
    bench = load_pandalm(path)
    (panda,) = run_benchmark(judge, bench, scoring="text", mode="pandalm", resamples=0).rows
    assert panda.result.records == 3 and panda.result.abstained == 0
    assert panda.result.reference["accuracy"] == pytest.approx(1.0)
    assert panda.result.reference["consistency"] == pytest.approx(1.0)
    # Prometheus' default A/B scale cannot say tie: that item abstains (the reference numbers
    # count it a tie, as the reference code would; the answered-only numbers leave it out)
    (prom,) = run_benchmark(judge, bench, scoring="text", mode="prometheus_relative", resamples=0).rows
    assert prom.result.abstained == 1 and prom.result.abstain_reasons == {"unparseable": 1}
    assert prom.result.answered_num == 2 and prom.result.answered["accuracy"] == pytest.approx(1.0)


def test_calibration_fits_on_a_choice_grammar(judge, tmp_path):
    from test_scoring_explained import explained_judge

    from judgelm.modalities.text import load_tokenizer

    tok = load_tokenizer("tests/assets/llama-tokenizer")
    sample = Sample("q", ("x", "y"), mode="prometheus_relative", scale="A/B/tie")
    biased = explained_judge(tok, "prometheus_relative", {"A": 0.6, "B": 0.2, "tie": 0.2}, sample, ends=True)
    path = tmp_path / "testset-v1.json"
    path.write_text(json.dumps(PANDALM_SET * 4), encoding="utf-8")
    items = [
        i.__class__(i.sample.replace(mode="prometheus_relative", scale="A/B/tie", question="q", input=None,
                                     answers=("x", "y"), id=f"{k}"), label=i.label)
        for k, i in enumerate(load_pandalm(path).items)
    ]  # fmt: skip
    report = calibrate_judge(biased, items, heldout=0.25)
    assert report.calibration.temperature > 1.0  # labels spread 1/-1/0 but the judge says A at .6


def test_server_judges_every_family(judge):
    srv = BackgroundServer(judge, ServeConfig(), graceful_timeout_s=10).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            body = {
                "samples": [
                    {
                        "id": "p",
                        "instruction": "q",
                        "response_A": "bad",
                        "response_B": "good",
                        "mode": "prometheus_relative",
                    },
                    {
                        "id": "k",
                        "instruction": "q",
                        "input": "ctx",
                        "response1": "good",
                        "response2": "bad",
                        "mode": "pandalm",
                    },
                ],
                "options": {"scoring": "text", "swap": True},
            }
            r = c.post("/v1/judge", json=body)
            assert r.status_code == 200, r.text
            prom, panda = (x["verdict"] for x in r.json()["results"])
            bad = c.post(
                "/v1/judge",
                json={"samples": [{"question": "q", "answers": ["a", "b"], "mode": "pandalm", "scale": "1-5"}]},
            )
    finally:
        srv.stop()
    assert prom["winner"] == 1 and prom["consistent"] and panda["winner"] == 0
    assert bad.status_code == 400 and "scale" in bad.text
