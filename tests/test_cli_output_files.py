"""`judgelm judge -o`: the output file belongs to its job. A re-run resumes only the same job;
another job's file, the input itself, a folder or a file that is not judgelm output is refused
with one line (and left as it was); ``--restart`` starts over. Exit codes: 0 all judged, 3 some
records bad, 2 the job could not run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from judgelm.cli import EXIT_BAD_RECORDS, EXIT_CANNOT_RUN, EXIT_OK, main
from judgelm.testing import scripted_judge


@pytest.fixture
def judge_calls(monkeypatch):
    """`judgelm judge` on a scripted judge (it answers "8 9"): no model is loaded."""
    calls = []

    def load(args, **kw):
        calls.append(args)
        return scripted_judge(lambda prompt: "8 9\n" if "Assistant 2" in prompt else "7\n", name="grader")

    monkeypatch.setattr("judgelm.cli.judge_cmd.load_judge", load)
    return calls


def record(i, **over):
    return {"id": f"s{i}", "question": f"What is {i}+{i}?", "answers": [str(2 * i), str(2 * i + 1)], **over}


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def judge(src, out, *extra):
    return main(["judge", str(src), "-o", str(out), "--quiet", *extra])


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("judgelm: error: "), err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_exit_codes_resume_and_the_message_shape(tmp_path, judge_calls, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(src, [record(0), record(1)])
    assert judge(src, out) == EXIT_OK
    assert [x["id"] for x in lines(out)] == ["s0", "s1"]
    assert all(x["judgelm_job"]["judge"] == "demo" and x["judgelm_job"]["record"] for x in lines(out))
    write(src, [record(0), record(1), record(2, mode="single"), record(3)])  # the input grows
    capsys.readouterr()
    assert judge(src, out) == EXIT_BAD_RECORDS
    err = capsys.readouterr().err
    assert "judgelm: in.jsonl:3 (id s2), field 'answers': single grades 1 answer, got 2" in err  # one shape
    assert sorted(x["id"] for x in lines(out)) == ["s0", "s1", "s2", "s3"]  # the first two were not redone
    assert judge(src, out) == EXIT_BAD_RECORDS  # nothing left to do; the job still had a bad record
    assert len(lines(out)) == 4 and "already done: 4" in capsys.readouterr().err


def test_without_output_bad_records_still_exit_3(tmp_path, judge_calls, capsys):
    src = tmp_path / "in.jsonl"
    write(src, [record(0), "{oops"])
    assert main(["judge", str(src), "--quiet"]) == EXIT_BAD_RECORDS
    assert "in.jsonl:2: not valid JSON" in capsys.readouterr().err


def test_another_jobs_output_is_refused_and_restart_starts_over(tmp_path, judge_calls, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(src, [record(0), record(1)])
    assert judge(src, out) == EXIT_OK
    before, _ = out.read_bytes(), capsys.readouterr()
    assert judge(src, out, "--swap") == EXIT_CANNOT_RUN  # other options: another job
    one_line_error(capsys, "holds another job's results", '"swap": true', "--restart")
    assert judge(src, out, "--model", "other-model") == EXIT_CANNOT_RUN
    one_line_error(capsys, "another job", "other-model")
    assert out.read_bytes() == before
    assert judge(src, out, "--swap", "--restart") == EXIT_OK
    assert [x["judgelm_job"]["options"].get("swap") for x in lines(out)] == [True, True]


def test_another_or_changed_input_is_refused(tmp_path, judge_calls, capsys):
    src, other, out = tmp_path / "in.jsonl", tmp_path / "other.jsonl", tmp_path / "out.jsonl"
    write(src, [record(0), record(1)])
    write(other, [record(5), record(6)])  # other ids
    assert judge(src, out) == EXIT_OK
    before, _ = out.read_bytes(), capsys.readouterr()
    assert judge(other, out) == EXIT_CANNOT_RUN
    one_line_error(capsys, "out.jsonl:1 (id s0): answers no record of other.jsonl")
    write(other, [record(0, question="changed"), record(1)])  # the same ids, another text
    assert judge(other, out) == EXIT_CANNOT_RUN
    one_line_error(capsys, "(id s0): was judged from another text than other.jsonl:1")
    write(other, [{"question": "no ids"}, {"question": "here", "answers": ["a"]}])  # line-N keys
    out2 = tmp_path / "out2.jsonl"
    assert judge(other, out2) == EXIT_BAD_RECORDS
    capsys.readouterr()
    write(other, [{"question": "no ids either", "answers": ["a"]}, {"question": "here", "answers": ["a"]}])
    assert judge(other, out2) == EXIT_CANNOT_RUN  # line-1 now holds another record
    one_line_error(capsys, "(id line-1): was judged from another text")
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b'{"id": "s0", "note": "mine"}', b"my notes\nno final newline", b'{"id": "s0", "question": "q"}\n'],
    ids=["one-line-no-newline", "text-no-newline", "foreign-json-lines"],
)
def test_a_file_that_is_not_judgelm_output_is_refused_untouched(tmp_path, judge_calls, capsys, content):
    src, out = tmp_path / "in.jsonl", tmp_path / "notes.jsonl"
    write(src, [record(0)])
    out.write_bytes(content)
    assert judge(src, out) == EXIT_CANNOT_RUN
    one_line_error(capsys, "notes.jsonl", "not judgelm output", "--restart")
    assert out.read_bytes() == content and judge_calls == []
    assert judge(src, out, "--restart") == EXIT_OK and [x["id"] for x in lines(out)] == ["s0"]


def test_the_input_a_folder_or_a_missing_file_is_one_line(tmp_path, judge_calls, capsys):
    src = tmp_path / "in.jsonl"
    write(src, [record(0)])
    before = src.read_bytes()
    for argv, needle in [
        ([str(src), "-o", str(src)], "is the input file"),
        ([str(src), "-o", str(src), "--restart"], "is the input file"),
        ([str(src), "-o", str(tmp_path)], "is a folder"),
        ([str(tmp_path / "missing.jsonl")], "missing.jsonl: cannot read it (No such file or directory)"),
        ([str(tmp_path)], "is a folder; give a JSONL file"),
    ]:
        assert main(["judge", *argv, "--quiet"]) == EXIT_CANNOT_RUN, argv
        one_line_error(capsys, needle)
    assert src.read_bytes() == before and judge_calls == []


def test_no_traceback_from_the_console_script(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "judgelm", "judge", str(tmp_path / "missing.jsonl")], capture_output=True, text=True
    )
    assert run.returncode == EXIT_CANNOT_RUN and "Traceback" not in run.stderr
    assert run.stderr.strip().startswith("judgelm: error:") and len(run.stderr.strip().splitlines()) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "judgelm", "judge", "x.jsonl", "--batch-size", "0"], capture_output=True
    )
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr and b"positive integer" in bad.stderr


def test_help_documents_the_exit_codes(capsys):
    for argv in (["--help"], ["judge", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "exit codes:" in out and "  3 " in out and "  2 " in out and "  0 " in out


def test_a_judge_that_breaks_on_one_sample_costs_that_record_only(tmp_path, monkeypatch, capsys):
    """A bug that makes the judge raise on one sample would otherwise stop the job at the same
    record on every re-run."""
    inner = scripted_judge("8 9\n", name="grader")

    class Fragile:
        name = "grader"

        def judge(self, samples, options=None):
            if any("boom" in s.question for s in samples):
                raise TypeError("a judgelm bug")
            return inner.judge(samples, options)

        def stream(self, samples, options=None, max_chunk=32):  # Judge.stream's contract, chunks of 2
            for start in range(0, len(samples), 2):
                for k, verdict in enumerate(self.judge(samples[start : start + 2], options)):
                    yield start + k, verdict

    monkeypatch.setattr("judgelm.cli.judge_cmd.load_judge", lambda args, **kw: Fragile())
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(src, [record(0), record(1, question="boom"), record(2)])
    assert judge(src, out) == EXIT_BAD_RECORDS
    rows = {x["id"]: x for x in lines(out)}
    assert set(rows) == {"s0", "s1", "s2"} and "verdict" in rows["s0"] and "verdict" in rows["s2"]
    assert "TypeError: a judgelm bug" in rows["s1"]["error"]["message"]
    assert "in.jsonl:2 (id s1): judging failed (TypeError" in capsys.readouterr().err


def test_a_failing_output_write_stops_the_job_and_is_not_judged_again(tmp_path):
    """Only judging errors are retried one record at a time: an error writing the output (a full
    disk) stops the job at once, without judging the records again."""
    from judgelm.cli.judge_loop import judge_records
    from judgelm.io import read_samples
    from judgelm.options import JudgeOptions

    inner = scripted_judge("8 9\n", name="grader")
    streamed: list[int] = []

    class Counting:
        name = "grader"

        def judge(self, samples, options=None):
            raise AssertionError("judged again")

        def stream(self, samples, options=None, max_chunk=32):
            streamed.append(len(samples))
            yield from inner.stream(samples, options, max_chunk=max_chunk)

    class FullDisk:
        def write(self, obj, **kw):
            raise OSError("no space left on device")

    src = tmp_path / "in.jsonl"
    write(src, [record(i) for i in range(3)])
    records = [r for r in read_samples(str(src)) if r.sample is not None]
    with pytest.raises(OSError, match="no space left"):
        judge_records(Counting(), records, JudgeOptions(), writer=FullDisk(), progress=False)
    assert streamed == [3]


def test_prompts_refuses_to_overwrite_its_input(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    write(src, [record(0), "{oops"])
    before = src.read_bytes()
    assert main(["prompts", str(src), "-o", str(src)]) == EXIT_CANNOT_RUN
    one_line_error(capsys, "is the input file")
    assert src.read_bytes() == before
    assert main(["prompts", str(src), "-o", str(tmp_path / "p.jsonl")]) == EXIT_BAD_RECORDS
    assert "in.jsonl:2: not valid JSON" in capsys.readouterr().err
