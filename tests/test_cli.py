"""The `judgelm` command end to end on a tiny model saved like a real checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from judgelm.cli import main


def write_samples(path, n, bad=()):
    with path.open("w") as f:
        for i in range(n):
            if i in bad:
                f.write(json.dumps({"id": f"s{i}", "question": "q", "answers": "not a list"}) + "\n")
            else:
                f.write(
                    json.dumps(
                        {"id": f"s{i}", "question": f"What is {i}+{i}?", "answers": [str(2 * i), str(2 * i + 1)]}
                    )
                    + "\n"
                )


def read_out(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_formats_lists_every_mode(capsys):
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for name in ("pairwise", "single", "multi", "mmvet", "chat"):
        assert name in out


def test_prompts_writes_exact_prompts(tmp_path, capsys):
    from judgelm import Sample, get_format

    src = tmp_path / "in.jsonl"
    write_samples(src, 2)
    out = tmp_path / "prompts.jsonl"
    assert main(["prompts", str(src), "-o", str(out), "--swap", "--tokenizer", "tests/assets/llama-tokenizer"]) == 0
    rows = read_out(out)
    assert len(rows) == 4 and rows[1]["order"] == [1, 0]
    expected = get_format("pairwise").render(Sample("What is 0+0?", ("0", "1"))).text
    assert rows[0]["prompt"] == expected and rows[0]["input_ids"][0] == 1


def test_judge_writes_verdicts_errors_and_resumes(tmp_path, tiny_model_dir, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_samples(src, 5, bad={2})
    args = [
        "judge",
        str(src),
        "-o",
        str(out),
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--quiet",
    ]
    assert main(args) == 3  # done, but a record could not be judged
    rows = read_out(out)
    assert sorted(r["id"] for r in rows) == [f"s{i}" for i in range(5)]
    err = next(r for r in rows if r["id"] == "s2")
    assert err["line"] == 3 and err["error"]["field"] == "answers"
    ok = next(r for r in rows if r["id"] == "s0")
    assert ok["question"] == "What is 0+0?" and "verdict" in ok and "pred_text" in ok
    assert "judged 4" in capsys.readouterr().err
    # re-running resumes: nothing judged twice (and the job still reports its bad record)
    assert main(args) == 3
    assert len(read_out(out)) == 5
    assert "already done: 5" in capsys.readouterr().err


def test_judge_prints_table_without_output(tmp_path, tiny_model_dir, capsys):
    src = tmp_path / "in.jsonl"
    write_samples(src, 2)
    assert main(["judge", str(src), "--model", str(tiny_model_dir), "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["id", "format", "scores"] and "s1" in out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killed_job_resumes_with_every_record_once(tmp_path, tiny_model_dir):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_samples(src, 40)
    cmd = [
        sys.executable,
        "-m",
        "judgelm",
        "judge",
        str(src),
        "-o",
        str(out),
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--batch-size",
        "1",
        "--quiet",
        "--max-new-tokens",
        "8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(out.read_bytes().splitlines())
    assert 3 <= partial < 40, "the job should have been killed midway"
    assert subprocess.run(cmd, env=env, stderr=subprocess.DEVNULL).returncode == 0
    ids = [r["id"] for r in read_out(out)]
    assert sorted(ids) == sorted(f"s{i}" for i in range(40)) and len(ids) == len(set(ids))


def test_judge_table_explains_every_column(tmp_path, tiny_model_dir, capsys):
    src = tmp_path / "in.jsonl"
    write_samples(src, 2)
    assert main(["judge", str(src), "--model", str(tiny_model_dir), "--device", "cpu", "--quiet", "--swap"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header == ["id", "format", "scores", "result", "conf", "p(grammar)", "swap", "note"]
    legend = {line.split()[0] for line in lines[lines.index("") + 1 :]}
    assert legend == set(header)


def test_verdicts_are_written_as_they_are_made(tmp_path, tiny_model_dir):
    """The first verdict is in the output file before the second chunk of samples starts."""
    from judgelm import Judge
    from judgelm.cli.judge_loop import judge_records
    from judgelm.io import ResultWriter, read_samples
    from judgelm.options import JudgeOptions

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_samples(src, 4)
    judge = Judge.from_pretrained(str(tiny_model_dir), device="cpu")
    written_before: list[int] = []
    run = judge._run
    judge._run = lambda jobs, *a: (written_before.append(len(out.read_bytes().splitlines())), run(jobs, *a))
    with ResultWriter(out) as writer:
        verdicts = judge_records(judge, list(read_samples(src)), JudgeOptions(), writer=writer, progress=False)
    assert len(verdicts) == 4 and written_before[:2] == [0, 1]
    assert len(read_out(out)) == 4


def test_empty_input_and_help_read_plainly(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["judge", str(empty)]) == 0
    assert "empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["judge", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "`" not in text and "legend" in text


def test_a_row_says_which_number_decided():
    from judgelm.cli.verdict_table import VerdictTable
    from judgelm.types import Preference, Provenance, Verdict

    prov = Provenance(model="m", format="pairwise", template_hash="", orders=((0, 1),), scoring="logits")
    v = Verdict("pair-1", "pairwise", (2.59, 2.6), prov, winner=0, preference=Preference(0.442, 0.12, 0.438))
    lines: list[str] = []
    table = VerdictTable(["pair-1"], ["pairwise"], 2, write=lines.append)
    table.add("pair-1", v)
    table.legend()
    row = lines[2].split()
    assert row[:5] == ["pair-1", "pairwise", "2.59", "2.60", "answer"] and row[5] == "1*"
    assert lines[2].endswith("decided by P(answer 1 better) 0.442 > P(answer 2 better) 0.438")
    assert any(line.strip().startswith("result") and "*" in line for line in lines[3:])


def test_quiet_hides_the_model_loading_bar_too(tmp_path, tiny_model_dir, capfd):
    from transformers.utils import logging as hf_logging

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "Q?", "answers": ["a", "b"]}) + "\n")
    base = ["judge", str(src), "--model", str(tiny_model_dir), "--abstain-threshold", "1"]
    assert main([*base, "-o", str(tmp_path / "loud.jsonl")]) == 0
    loud = capfd.readouterr().err
    assert main([*base, "-o", str(tmp_path / "quiet.jsonl"), "--quiet"]) == 0
    quiet = capfd.readouterr().err
    assert "judging" in loud and "it/s]" in loud
    assert "it/s]" not in quiet and "Loading" not in quiet  # no bar at all: neither the job's nor transformers'
    assert hf_logging.is_progress_bar_enabled()  # restored for the rest of the process
