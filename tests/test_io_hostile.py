"""Hostile input lines: each is an error of its own record (file:line, id, field), never of the
job; ids stay unique; the Python API abstains on a bad sample inside a batch and names the field
of a wrong shape."""

from __future__ import annotations

import json

import pytest

from judgelm import Sample
from judgelm.errors import InvalidSampleError
from judgelm.io import read_samples
from judgelm.strict_json import MAX_DEPTH, MAX_INT_DIGITS, dumps, loads
from judgelm.testing import scripted_judge


def valid(i: int) -> bytes:
    return json.dumps({"id": f"v{i}", "question": f"q{i}", "answers": ["a", "b"]}).encode()


# (the hostile line, its expected (id shown, field) in the error; None: the line is fine)
HOSTILE = {
    "invalid-utf8": (b'{"id": "x", "question": "q\xff", "answers": ["a", "b"]}', ("x", None)),
    "5000-digit-int": (
        b'{"id": "b", "n": 1' + b"0" * 5000 + b', "question": "q", "answers": ["a", "b"]}',
        (None, None),
    ),
    "deep-nesting": (b'{"id": "d", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", (None, None)),
    "surrogate-question": (b'{"id": "s1", "question": "q\\ud800", "answers": ["a", "b"]}', ("s1", "question")),
    "surrogate-extra-field": (
        b'{"id": "s2", "question": "q", "answers": ["a", "b"], "note": "\\udc00"}',
        ("s2", "note"),
    ),
    "surrogate-in-bad-record": (b'{"id": "s3", "question": "q\\ud800", "answers": "x"}', ("s3", "question")),
    "surrogate-key": (b'{"id": "s4", "question": "q", "answers": ["a", "b"], "\\ud800": 1}', ("s4", "\\ud800")),
    "role-list": (
        b'{"id": "r1", "mode": "chat", "conversations": [[{"role": ["user"], "content": "hi"}]]}',
        ("r1", "conversations[0][0].role"),
    ),
    "role-object": (
        b'{"id": "r2", "mode": "chat", "conversations": [[{"role": {"a": 1}, "content": "hi"}]]}',
        ("r2", "conversations[0][0].role"),
    ),
    "images-number": (b'{"id": "i", "question": "q", "answers": ["a", "b"], "images": 123}', ("i", "images")),
    "answers-object": (b'{"id": "o", "question": "q", "answers": {"first": "x", "second": "y"}}', ("o", "answers")),
    "no-answers": (b'{"id": "m", "question": "q"}', ("m", "answers")),
    "conversations-string": (b'{"id": "c", "conversations": "hello"}', ("c", "conversations")),
    "id-object": (b'{"id": {"a": 1}, "question": "q", "answers": ["a", "b"]}', (None, "id")),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_line_is_one_error_line_and_the_others_are_read(tmp_path, name):
    line, (shown_id, field) = HOSTILE[name]
    path = tmp_path / "in.jsonl"
    path.write_bytes(valid(0) + b"\n" + line + b"\n" + valid(1) + b"\n")
    recs = list(read_samples(path))
    assert [r.line for r in recs] == [1, 2, 3]
    assert [r.sample is not None for r in recs] == [True, False, True]
    err = recs[1].error
    assert err.field == field and err.record == shown_id
    where = "in.jsonl:2" + (f" (id {shown_id})" if shown_id else "")
    assert str(err).startswith(where + (f", field {field!r}: " if field else ": ")), str(err)
    assert ";" in err.detail  # what is wrong; how to fix it
    dumps(recs[1].raw).encode("utf-8")  # whatever is echoed into the output can be written


def test_a_bare_carriage_return_never_splits_a_record(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        valid(0) + b"\r\n" + b'{"id": "c", "question": "line one\rline two", "answers": ["a", "b"]}\n' + valid(2)
    )
    recs = list(read_samples(path))
    assert [(r.line, r.key) for r in recs] == [(1, "v0"), (2, "c"), (3, "v2")]
    assert recs[1].sample.question == "line one\rline two"


def test_a_byte_order_mark_and_blank_lines_are_fine(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + valid(0) + b"\n\n  \t\r\n" + valid(1) + b"\n")
    assert [(r.line, r.key, r.error) for r in read_samples(path)] == [(1, "v0", None), (4, "v1", None)]


def test_ids_are_unique_even_against_made_up_line_keys(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [
        b"{not json",  # line 1: keyed line-1
        json.dumps({"id": "line-1", "question": "q", "answers": ["a", "b"]}).encode(),  # collides with it
        json.dumps({"id": "line-4", "question": "q", "answers": ["a", "b"]}).encode(),  # takes line 4's key
        json.dumps({"question": "no id", "answers": ["a", "b"]}).encode(),  # line 4: its key is taken
        json.dumps({"id": "line-1#line-2", "question": "q", "answers": ["a", "b"]}).encode(),
        json.dumps({"id": "dup", "question": "q", "answers": ["a", "b"]}).encode(),
        json.dumps({"id": "dup", "question": "q", "answers": ["a", "b"]}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    recs = list(read_samples(path))
    keys = [r.key for r in recs]
    assert len(keys) == len(set(keys)) == 7
    assert recs[1].error.field == "id" and "line 1 has it" in recs[1].error.detail
    assert recs[3].sample is not None and recs[3].key == "line-4#2" and recs[3].sample.id == "line-4#2"
    assert recs[6].error.field == "id" and recs[5].sample is not None


def test_limits_are_explicit_and_nan_is_read_but_never_written():
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(InvalidSampleError, match=f"the limit is {MAX_DEPTH}"):
        loads(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert loads(b'"' + b"[" * 1000 + b'"').startswith("[")  # brackets inside strings do not nest
    assert loads(b"9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)
    with pytest.raises(InvalidSampleError, match=f"the limit is {MAX_INT_DIGITS}"):
        loads(b"9" * (MAX_INT_DIGITS + 1))
    assert loads(b'{"\\ud83d\\ude00": "\\ud83d\\ude00"}') == {"\U0001f600": "\U0001f600"}  # a pair is fine
    text = dumps({"score": float("nan"), "x": [float("inf"), -float("inf")], "s": "\ud800"})
    assert json.loads(text, parse_constant=pytest.fail) == {"score": None, "x": [None, None], "s": "\ud800"}
    text.encode("utf-8")


# ---- the Python API ----------------------------------------------------------------------------


def test_a_bad_sample_abstains_inside_a_batch_and_the_others_are_judged():
    judge = scripted_judge("8 9\n")
    ok = Sample("q", ("a", "b"), id="ok")
    verdicts = judge.judge([ok, Sample("q", ("a", "b"), mode="foo", id="mode"), Sample("q\ud800", ("a", "b"), id="s")])
    assert verdicts[0].abstained is False and verdicts[0].winner == 1
    assert verdicts[1].reason_code == "invalid_input" and "field 'mode'" in verdicts[1].reason
    assert verdicts[2].reason_code == "invalid_input" and "field 'question'" in verdicts[2].reason


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Sample(conversations=[[{"role": ["user"], "content": "hi"}]]), "conversations[0][0].role"),
        (lambda: Sample(conversations=[[{"role": {"r": 1}, "content": "hi"}]]), "conversations[0][0].role"),
        (lambda: Sample("q", ("a",), images=123), "images"),
        (lambda: Sample("q", ("a",), images=[b"png", 7]), "images[1]"),
        (lambda: Sample("q", {"first": "x"}), "answers"),
        (lambda: Sample("q", ("a",), meta=3), "meta"),
        (lambda: Sample("q", ("a",), id=["x"]), "id"),
        (lambda: scripted_judge("8\n").judge("a string"), "samples"),
        (lambda: scripted_judge("8\n").judge([{"question": "q"}]), "samples[0]"),
    ],
    ids=["role-list", "role-object", "images-number", "image-item", "answers-object", "meta", "id", "str", "dict"],
)
def test_wrong_shapes_raise_invalid_sample_error_naming_the_field(make, field):
    with pytest.raises(InvalidSampleError) as info:
        make()
    assert info.value.field == field
