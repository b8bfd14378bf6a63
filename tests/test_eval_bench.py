"""``judgelm bench``: a scripted judge over small benchmarks, numbers computed by hand."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from judgelm.cli import bench_cmd
from judgelm.eval import Benchmark, Labelled, load_mmvet, load_pandalm, run_benchmark
from judgelm.judge import Judge
from judgelm.testing import scripted_judge
from judgelm.types import Sample

SLOT = re.compile(
    r"\[The Start of Assistant (\d+)'s Answer\]\n(.*?)\n\n\[The End of Assistant \1's Answer\]",
    re.S,
)


def slots(prompt: str) -> list[str]:
    return [text for _, text in SLOT.findall(prompt)]


def quality(text: str) -> int | None:
    m = re.search(r"q=(\d+)", text)
    return None if m is None else int(m.group(1))


def slot_one_biased(prompt: str) -> str:
    """Scores each answer by its hidden quality tag, plus 1 for whatever sits in slot 1."""
    q = [quality(t) for t in slots(prompt)]
    if None in q:
        return "I cannot judge this."
    return f"{q[0] + 1} {q[1]}\nreasons"


@pytest.fixture
def pandalm_file(tmp_path: Path) -> Path:
    rows = [
        ("[q=8]", "[q=3]", (1, 1, 1)),  # truth 1
        ("[q=2]", "[q=9]", (2, 2, 1)),  # truth -1
        ("[q=5]", "[q=5]", (0, 0, 2)),  # truth 0
        ("[q=6]", "[q=5]", (0, 0, 0)),  # truth 0
        ("no tag", "none", (1, 1, 2)),  # truth 1; the judge cannot read it
    ]
    data = [
        {
            "instruction": f"I{k}",
            "input": float("nan"),
            "response1": a,
            "response2": b,
            "annotator1": v[0],
            "annotator2": v[1],
            "annotator3": v[2],
        }
        for k, (a, b, v) in enumerate(rows)
    ]
    path = tmp_path / "testset-v1.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # json writes NaN literals
    return path


def test_pairwise_benchmark_by_hand(pandalm_file):
    judge = scripted_judge(slot_one_biased)
    result = run_benchmark(judge, load_pandalm(pandalm_file), resamples=0)
    assert len(judge.engine.prompts) == 10  # 5 items x 2 orders, no reference run (none in the set)
    (row,) = result.rows
    assert not row.with_reference
    m = row.result.reference
    # normal order: (9,3) 1 ok; (3,9) -1 ok; (6,5) 1 vs 0; (7,5) 1 vs 0; unreadable -> tie vs 1
    assert m["accuracy"] == pytest.approx(2 / 5)
    # class 1: P 1/3 R 1/2; class -1: 1 1; class 0: 0 0 (F: 2/5, 1, 0)
    assert m["precision"] == pytest.approx(4 / 9)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(7 / 15)
    # swapped (slot order): (4,8) -1 same; (10,2) 1 same; (6,5) 1 -> before; (6,6) 0 -> before;
    # both unreadable: same
    assert m["consistency"] == pytest.approx(3 / 5)
    assert m["perfer_before_rate"] == pytest.approx(2 / 5)
    assert m["perfer_after_rate"] == 0
    assert row.result.abstained == 1 and row.result.abstain_reasons == {"unparseable": 1}
    # p_o = 2/5, p_e = (2*3 + 2*1 + 1*1) / 25 = 9/25 -> kappa = (1/25) / (16/25)
    assert row.result.kappa == pytest.approx(1 / 16)
    table = result.table()
    assert "| scripted | no | 40.00 | 44.44 | 50.00 | 46.67 | 60.00 | 0.0625 | 1 |" in table


def test_shared_samples_are_judged_once():
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "[q=9]"}]
    conv_b = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "[q=4]"}]
    sample = Sample(conversations=(conv, conv_b), id="81/a/b/turn1", mode="chat")
    items = (Labelled(sample, label=1), Labelled(sample, label=0), Labelled(sample, label=1))

    def respond(prompt: str) -> str:
        q = [int(x) for x in re.findall(r"### Assistant \d+:\n\[q=(\d+)\]", prompt)]
        return f"{q[0]} {q[1]}"

    judge = scripted_judge(respond)
    result = run_benchmark(judge, Benchmark("mtbench", items), resamples=0)
    assert len(judge.engine.prompts) == 2  # one sample, two orders, for three votes
    assert result.rows[0].result.reference["accuracy"] == pytest.approx(2 / 3)
    assert result.rows[0].result.reference["total_num"] == 3


def test_grading_benchmark_mmvet(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "v1_0": {
                    "imagename": "a.png",
                    "capability": ["rec", "ocr"],
                    "question": "What?",
                    "answer": "cat",
                },
                "v1_1": {
                    "imagename": "b.png",
                    "capability": ["math"],
                    "question": "2+2?",
                    "answer": "4",
                },
            }
        )
    )
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps({"v1_0": "a cat", "v1_1": "5"}))
    grades = tmp_path / "g.json"
    grades.write_text(json.dumps({"v1_0": 1.0, "v1_1": 0.0}))

    def respond(prompt: str) -> str:
        assert prompt.endswith("### Response:10")  # the gold answer's 10 is forced
        return " 7\nclose" if "a cat" in slots(prompt)[1] else " 2\nwrong"

    result = run_benchmark(scripted_judge(respond), load_mmvet(gt, preds, grades=grades))
    g = result.grading
    assert g is not None and not result.rows
    assert g.score == pytest.approx(45.0)  # (0.7 + 0.2) / 2 x 100
    assert g.by_capability == pytest.approx({"rec": 70.0, "ocr": 70.0, "math": 20.0})
    assert g.mae == pytest.approx(25.0) and g.pearson == pytest.approx(1.0)
    assert "| model | rec | ocr | math | total |" in result.table()
    assert "| scripted | 70.0 | 70.0 | 20.0 | 45.0 |" in result.table()


def test_no_truth_is_an_error():
    b = Benchmark("x", (Labelled(Sample("q", ("a", "b"))),))
    with pytest.raises(ValueError, match="no ground truth"):
        run_benchmark(scripted_judge("1 2"), b)


def _val_files(tmp_path: Path) -> Path:
    d = tmp_path / "val"
    d.mkdir(exist_ok=True)

    def jsonl(name: str, rows: list[dict]) -> None:
        (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    jsonl(
        "judgelm_val_5k.jsonl",
        [
            {
                "question_id": 0,
                "question_body": "Q0",
                "answer1_body": "[q=8]",
                "answer2_body": "[q=3]",
            },
            {
                "question_id": 1,
                "question_body": "Q1",
                "answer1_body": "[q=2]",
                "answer2_body": "[q=9]",
            },
        ],
    )
    jsonl(
        "judgelm_val_5k_references.jsonl",
        [{"reference": {"text": "invert"}}, {"reference": {"text": "plain"}}],
    )
    jsonl(
        "judgelm_val_5k_gpt4.jsonl",
        [{"question_id": 0, "text": "8 3"}, {"question_id": 1, "text": "2 9"}],
    )
    jsonl(
        "judgelm_val_5k_gpt4_with_reference.jsonl",
        [{"question_id": 0, "text": "3 8"}, {"question_id": 1, "text": "2 9"}],
    )
    return d


def inverting(prompt: str) -> str:
    """Scores by quality, but a reference saying 'invert' turns the scale around."""
    q = [quality(t) for t in slots(prompt)]
    if "[Reference Answer]\ninvert" in prompt:
        q = [10 - x for x in q]
    return f"{q[0]} {q[1]}\n"


def test_judgelm_val_rows_use_their_own_truth(tmp_path):
    from judgelm.eval import load_judgelm_val

    judge = scripted_judge(inverting)
    result = run_benchmark(judge, load_judgelm_val(_val_files(tmp_path)), resamples=0)
    assert [r.with_reference for r in result.rows] == [False, True]
    assert len(judge.engine.prompts) == 8  # 2 items x 2 orders x 2 conditions
    assert sum("[Reference Answer]" in p for p in judge.engine.prompts) == 4
    # with the reference the judge flips q0 to answer 2: right only against the with-reference truth
    assert [r.result.reference["accuracy"] for r in result.rows] == [1.0, 1.0]
    assert result.rows[1].truth_with_reference
    only = run_benchmark(
        scripted_judge(inverting),
        load_judgelm_val(_val_files(tmp_path)),
        with_reference=False,
        resamples=0,
    )
    assert len(only.rows) == 1


def test_bench_cli(tmp_path, monkeypatch, capsys):
    judge = scripted_judge(inverting)
    monkeypatch.setattr(Judge, "from_pretrained", classmethod(lambda cls, *a, **k: judge))
    parser = argparse.ArgumentParser(prog="judgelm")
    bench_cmd.add_parser(parser.add_subparsers(dest="command"), "bench")
    out = tmp_path / "bench.json"
    args = parser.parse_args(
        [
            "bench",
            "--model",
            "m",
            "--benchmark",
            "judgelm-val",
            "--data",
            str(_val_files(tmp_path)),
            "--bootstrap",
            "0",
            "-o",
            str(out),
        ]
    )
    assert bench_cmd.run(args) == 0
    text = capsys.readouterr().out
    assert (
        "| model | ref | agreement | precision | recall | F1 | consistency | kappa | abstained |"
        in text
    )
    assert "| scripted | no | 100.00 |" in text and "| scripted | yes | 100.00 |" in text
    data = json.loads(out.read_text())
    assert data["benchmark"] == "judgelm-val" and data["rows"][1]["with_reference"] is True
    assert data["rows"][0]["reference"]["consistency"] == 1.0


def test_bench_cli_refuses_before_loading_a_model(tmp_path, monkeypatch, capsys):
    def no_model(cls, *a, **k):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(Judge, "from_pretrained", classmethod(no_model))
    d = _val_files(tmp_path)
    parser = argparse.ArgumentParser(prog="judgelm")
    bench_cmd.add_parser(parser.add_subparsers(dest="command"), "bench")
    questions = str(d / "judgelm_val_5k.jsonl")
    assert (
        bench_cmd.run(
            parser.parse_args(["bench", "--benchmark", "judgelm-val", "--data", questions])
        )
        == 2
    )
    assert "no ground truth" in capsys.readouterr().err
    assert (
        bench_cmd.run(parser.parse_args(["bench", "--benchmark", "mmvet", "--data", questions]))
        == 2
    )
    assert "--predictions" in capsys.readouterr().err
