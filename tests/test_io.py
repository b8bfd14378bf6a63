"""JSONL reading (both dialects, errors with line and field) and resumable output."""

from __future__ import annotations

import json

from judgelm.io import ResultWriter, read_samples


def write_lines(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")


def test_reads_native_and_judgelm_dialects(tmp_path):
    f = tmp_path / "in.jsonl"
    write_lines(
        f,
        [
            {"id": "n1", "question": "q", "answers": ["a", "b"], "reference": "r", "extra": 1},
            {
                "question_id": 7,
                "question_body": "qb\n",
                "answer1_body": "x",
                "answer2_body": "y",
                "answer1_model_id": "m1",
                "reference": {"text": "ref"},
            },
            {"question": "grade me", "answers": ["only"], "gold": "g", "images": ["img.png"]},
            "",
        ],
    )
    recs = list(read_samples(f))
    assert [r.key for r in recs] == ["n1", "7", "line-3"]
    assert recs[0].sample.reference == "r" and recs[0].sample.meta["extra"] == 1
    assert (
        recs[1].sample.question == "qb\n" and recs[1].sample.answers == ("x", "y") and recs[1].sample.reference == "ref"
    )
    assert recs[2].sample.id == "line-3" and recs[2].sample.images == (str(tmp_path / "img.png"),)


def test_bad_records_name_line_and_field(tmp_path):
    f = tmp_path / "in.jsonl"
    write_lines(
        f,
        [
            "{not json",
            {"id": "a", "question": "q", "answers": "oops"},
            {"id": "b", "question_body": "q", "answer1_body": 3},
            {"id": "c", "question": "q", "answers": ["x", "y"]},
            {"id": "c", "question": "q", "answers": ["x", "y"]},
            [1, 2],
        ],
    )
    recs = list(read_samples(f))
    errs = [(r.line, r.error.field) for r in recs if r.error]
    assert errs == [(1, None), (2, "answers"), (3, "answer1_body"), (5, "id"), (6, None)]
    assert "in.jsonl:2" in str(recs[1].error) and "'answers'" in str(recs[1].error)
    assert [r.key for r in recs if r.sample] == ["c"]
    assert recs[4].key == "c#line-5"  # a duplicate never shadows the first record's key


def test_writer_drops_torn_line_and_resumes(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResultWriter(out) as w:
        w.write({"id": "1", "v": 1})
        w.write({"id": "2", "v": 2})
        w.write({"id": "3", "v": 3})
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 10])  # killed mid-line: the third line is torn
    w = ResultWriter(out)
    assert set(w.done) == {"1", "2"}
    w.write({"id": "3", "v": 3})
    w.close()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["1", "2", "3"]
