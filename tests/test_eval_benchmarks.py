"""Benchmark readers on small files the tests write: JudgeLM val, PandaLM, MT-Bench, MM-Vet and a
user's labelled JSONL. Each test pins the documented conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgelm.errors import InvalidSampleError
from judgelm.eval import (
    load_benchmark,
    load_judgelm_val,
    load_mmvet,
    load_mtbench,
    load_pandalm,
    read_labelled,
)
from judgelm.eval.benchmarks.pandalm import majority_label, pandalm_question
from judgelm.formats import get_format


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def val_dir(tmp_path: Path) -> Path:
    d = tmp_path / "val"
    d.mkdir()
    jsonl(
        d / "judgelm_val_5k.jsonl",
        [
            {
                "question_id": 10,
                "question_body": "Q1\n",
                "answer1_body": "a1",
                "answer2_body": "b1",
                "answer1_model_id": "m1",
            },
            {"question_id": 11, "question_body": "Q2", "answer1_body": "a2", "answer2_body": "b2"},
            {"question_id": 12, "question_body": "Q3", "answer1_body": "a3", "answer2_body": "b3"},
        ],
    )
    jsonl(
        d / "judgelm_val_5k_references.jsonl",
        [{"reference": {"text": f"ref {k}"}} for k in range(3)],
    )
    jsonl(
        d / "judgelm_val_5k_gpt4.jsonl",
        [
            {"question_id": 10, "text": "8 3\n..."},
            {"question_id": 11, "text": "oops"},
            {"question_id": 12, "text": "5 5\n"},
        ],
    )
    jsonl(
        d / "judgelm_val_5k_gpt4_with_reference.jsonl",
        [
            {"question_id": 10, "text": "2 9\n"},
            {"question_id": 11, "text": "7 7"},
            {"question_id": 12, "text": "6, 4"},
        ],
    )
    return d


def test_judgelm_val_from_its_folder(val_dir):
    b = load_judgelm_val(val_dir)
    assert b.name == "judgelm-val" and len(b) == 3 and b.has_reference
    first = b.items[0]
    assert first.sample.question == "Q1\n"  # verbatim, not stripped
    assert first.sample.answers == ("a1", "b1") and first.sample.id == "10"
    assert first.sample.reference == "ref 0"  # by position
    assert [i.label for i in b.items] == [1, None, 0]  # "oops" fails the reference parser
    # "6, 4" -> "6  4" -> three fields -> failure: dropped from with-reference numbers
    assert [i.label_with_reference for i in b.items] == [-1, 0, None]
    assert all(i.has_truth_with_reference for i in b.items)
    assert b.items[2].truth(with_reference=True) is None  # never falls back to the plain truth
    assert any("1 teacher judgments (no reference) unreadable" in n for n in b.notes)


def test_judgelm_val_explicit_files_and_limit(val_dir):
    b = load_judgelm_val(
        val_dir / "judgelm_val_5k.jsonl", truth=val_dir / "judgelm_val_5k_gpt4.jsonl", limit=2
    )
    assert len(b) == 2 and not b.has_reference
    assert [i.truth(True) for i in b.items] == [1, None]  # no with-reference truth: the plain one


def test_judgelm_val_checks_position_alignment(val_dir, tmp_path):
    bad = jsonl(
        tmp_path / "t.jsonl",
        [{"question_id": 10, "text": "1 2"}, {"question_id": 99, "text": "1 2"}, {"text": "1 2"}],
    )
    with pytest.raises(InvalidSampleError, match="question_id 99"):
        load_judgelm_val(val_dir / "judgelm_val_5k.jsonl", truth=bad)
    short = jsonl(tmp_path / "r.jsonl", [{"reference": {"text": "r"}}])
    with pytest.raises(InvalidSampleError, match="1 records for 3 questions"):
        load_judgelm_val(val_dir / "judgelm_val_5k.jsonl", references=short)


def test_pandalm_question_join_and_majority(tmp_path):
    assert pandalm_question("Do it.", float("nan")) == "Do it."
    assert pandalm_question("Do it.", None) == "Do it."
    assert pandalm_question("Do it.", "  ") == "Do it."
    assert pandalm_question("Translate:", "bonjour") == "Translate:\nbonjour"
    assert majority_label([1, 1, 2]) == 1
    assert majority_label([2, 0, 2]) == -1
    assert majority_label([0, 0, 1]) == 0
    assert majority_label([0, 1, 2]) is None
    assert majority_label([1, None, 2]) is None  # two votes that disagree
    assert majority_label(["2", 2, None]) == -1


def test_pandalm_file_with_nan_literals(tmp_path):
    path = tmp_path / "testset-v1.json"
    path.write_text(
        """[
 {"idx": 7, "instruction": "Say hi.", "input": NaN, "response1": "hi", "response2": "hello",
  "annotator1": 1, "annotator2": 1, "annotator3": 2},
 {"instruction": "Add:", "input": "2+2", "response1": "4", "response2": "5",
  "annotator1": 0, "annotator2": 1, "annotator3": 2},
 {"instruction": "X", "input": "", "response1": "a", "response2": "b",
  "annotator1": 2, "annotator2": 2, "annotator3": 0}
]""",
        encoding="utf-8",
    )
    b = load_pandalm(path)
    assert [i.sample.id for i in b.items] == ["7", "1", "2"]
    assert b.items[0].sample.question == "Say hi." and b.items[0].sample.input is None
    assert (b.items[1].sample.question, b.items[1].sample.input) == ("Add:", "2+2")
    # JudgeLM formats read instruction + "\n" + input; the pandalm format its own ### Input block
    assert "[Question]\nAdd:\n2+2\n\n" in get_format("pairwise").render(b.items[1].sample).text
    assert "### Instruction:\nAdd:\n\n### Input:\n2+2\n\n" in get_format("pandalm").render(b.items[1].sample).text
    assert load_pandalm(path, mode="pandalm").items[0].sample.mode == "pandalm"
    assert [i.label for i in b.items] == [1, 0, -1]  # no majority -> tie by default
    assert any("1 items without an annotator majority: counted as ties" in n for n in b.notes)
    assert [i.label for i in load_pandalm(path, no_majority="drop").items] == [1, None, -1]


def test_pandalm_bad_vote_names_the_record(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps([{"instruction": "I", "response1": "a", "response2": "b", "annotator1": 3}])
    )
    with pytest.raises(InvalidSampleError, match=r"p\.json\[0\]"):
        load_pandalm(path)


def _conv(q1: str, a1: str, q2: str, a2: str) -> list[dict]:
    return [
        {"role": "user", "content": q1},
        {"role": "assistant", "content": a1},
        {"role": "user", "content": q2},
        {"role": "assistant", "content": a2},
    ]


def test_mtbench_votes_turns_and_shared_samples(tmp_path):
    conv_a, conv_b = _conv("q1", "A1", "q2", "A2"), _conv("q1", "B1", "q2", "B2")
    base = {
        "question_id": 81,
        "model_a": "gpt-4",
        "model_b": "llama",
        "conversation_a": conv_a,
        "conversation_b": conv_b,
    }
    path = jsonl(
        tmp_path / "human.jsonl",
        [
            {**base, "winner": "model_a", "judge": "expert_1", "turn": 1},
            {**base, "winner": "tie", "judge": "expert_2", "turn": 1},
            {**base, "winner": "model_b", "judge": "author_0", "turn": 2},
        ],
    )
    b = load_mtbench(path)
    assert [i.label for i in b.items] == [1, 0, -1]
    assert b.items[0].sample.id == b.items[1].sample.id == "81/gpt-4/llama/turn1"
    t1, t2 = b.items[0].sample, b.items[2].sample
    assert (
        t1.mode == "chat" and len(t1.conversations[0]) == 2
    )  # turn 1 sees only the first exchange
    assert t1.conversations[1][1].content == "B1"
    assert len(t2.conversations[0]) == 4 and t2.id.endswith("turn2")
    assert t1.meta["judge"] == "expert_1"
    assert any("2 unique pairs judged for 3 votes" in n for n in b.notes)
    assert len(load_mtbench(path, turn=2)) == 1
    assert len(load_mtbench(path, judge_prefix="expert")) == 2
    # a JSON array works too
    arr = tmp_path / "human.json"
    arr.write_text(json.dumps([{**base, "winner": "tie (bothbad)", "turn": 1}]))
    assert load_mtbench(arr).items[0].label == 0
    bad = jsonl(tmp_path / "bad.jsonl", [{**base, "winner": "model_c"}])
    with pytest.raises(InvalidSampleError, match=r"bad\.jsonl:1"):
        load_mtbench(bad)


def test_mmvet(tmp_path):
    gt = tmp_path / "mm-vet.json"
    gt.write_text(
        json.dumps(
            {
                "v1_0": {
                    "imagename": "v1_0.png",
                    "capability": ["rec", "ocr"],
                    "question": "What?",
                    "answer": "cat<OR>kitty",
                },
                "v1_1": {
                    "imagename": "v1_1.png",
                    "capability": ["math"],
                    "question": "2+2?",
                    "answer": "4",
                },
            }
        )
    )
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"v1_0": "a cat", "v1_1": "5"}))
    grades = tmp_path / "grades.json"
    grades.write_text(json.dumps({"v1_0": 1.0, "v1_1": {"score": 0.0}}))
    b = load_mmvet(gt, preds, grades=grades)
    assert b.task == "grading" and len(b) == 2
    s = b.items[0].sample
    assert (s.mode, s.answers, s.reference, s.id) == ("mmvet", ("a cat",), "cat<OR>kitty", "v1_0")
    assert (
        s.meta["capability"] == ("rec", "ocr") and s.images == ()
    )  # text-only, like the reference
    assert [i.grade for i in b.items] == [1.0, 0.0]
    (tmp_path / "partial.json").write_text(json.dumps({"v1_0": "a cat"}))
    with pytest.raises(InvalidSampleError, match="1 ground-truth keys have no prediction"):
        load_mmvet(gt, tmp_path / "partial.json")


def test_labelled_jsonl_and_dispatch(tmp_path):
    path = jsonl(
        tmp_path / "mine.jsonl",
        [
            {"id": "x", "question": "Q", "answers": ["a", "b"], "label": "model_b"},
            {
                "question_id": 5,
                "question_body": "Q",
                "answer1_body": "a",
                "answer2_body": "b",
                "text": "9 2\n",
                "text_w_reference": "2 9\n",
                "reference": {"text": "r"},
            },
            {"question": "Q", "answers": ["a", "b"], "label": 0},
            {"question": "Q", "answers": ["a", "b"], "score": [-1, 4]},
        ],
    )
    b = read_labelled(path)
    assert b.name == "mine"
    assert [i.label for i in b.items] == [-1, 1, 0, None]
    assert b.items[1].label_with_reference == -1 and b.items[1].sample.reference == "r"
    assert b.items[1].scores == (9.0, 2.0)
    assert b.items[2].sample.id == "line-3"
    assert len(load_benchmark("labelled", path, limit=2)) == 2
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("nope", path)
    bad = jsonl(tmp_path / "bad.jsonl", [{"question": "Q", "answers": ["a", "b"], "label": 2}])
    with pytest.raises(InvalidSampleError, match=r"bad\.jsonl:1"):
        read_labelled(bad)
