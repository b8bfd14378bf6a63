"""Ray Data batch judging on a local CPU cluster: 2 actors, results identical to the in-process
judge, and a SIGKILLed job that resumes with every record exactly once."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

# Keep the local cluster on loopback: Ray otherwise binds its services to the node's interface
# address (this switch is Ray's "single-machine cluster" mode, read when ray is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")

from test_serve_support import assert_close  # noqa: E402

from judgelm import Judge  # noqa: E402
from judgelm.errors import JobError  # noqa: E402
from judgelm.integrations import judge_dataset, judge_file  # noqa: E402
from judgelm.integrations.ray_data import run_judge_command  # noqa: E402
from judgelm.io import JobStamp, read_samples  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"r{i}",
                "question": f"Question {i}? " + "more " * (i % 5),
                "answers": [f"first {i}", f"second {i * 7}"],
                "mode": None,
            }
        )
    out[3]["mode"] = "single"  # two answers in a single-answer format: an error line, not a crash
    return out


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def in_process(judge: Judge, recs: list[dict]) -> dict[str, dict]:
    from judgelm.io import sample_from_record

    good = [r for r in recs if r["mode"] is None]
    verdicts = judge.judge([sample_from_record(r) for r in good])
    return {r["id"]: json.loads(json.dumps(v.to_dict())) for r, v in zip(good, verdicts, strict=True)}


PYTHONPATH = os.pathsep.join([str(ROOT), str(ROOT / "tests")])  # actors import the test helpers


@pytest.fixture(scope="module")
def ray_cluster():
    ctx = ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 1024**2,
        runtime_env={"env_vars": {"PYTHONPATH": PYTHONPATH}},
    )
    yield ctx.address_info["address"]
    ray.shutdown()


def test_two_actor_run_equals_in_process_judge(ray_cluster, tiny_model_dir, tmp_path):
    recs = records(16)
    out = tmp_path / "out.jsonl"
    seen: list[str] = []
    summary = judge_dataset(
        ray.data.from_items(recs),
        out,
        judge=str(tiny_model_dir),
        judge_kwargs={"device": "cpu"},
        num_actors=2,
        batch_size=3,
        on_line=lambda line: seen.append(line["id"]),
    )
    assert (summary.written, summary.errors, summary.skipped, summary.duplicates) == (15, 1, 0, 0)
    lines = lines_of(out)
    assert sorted(x["id"] for x in lines) == sorted(r["id"] for r in recs) == sorted(seen)
    [err] = [x for x in lines if "error" in x]
    assert err["id"] == "r3" and err["error"]["field"] == "answers"
    expected = in_process(Judge.from_pretrained(str(tiny_model_dir), device="cpu"), recs)
    got = {x["id"]: x["verdict"] for x in lines if "verdict" in x}
    # Same verdicts; logit-read floats may differ in the 7th digit, as batches pad differently.
    assert_close(got, expected, tol=1e-5)
    assert [got[k]["provenance"]["scoring"] for k in got] == [expected[k]["provenance"]["scoring"] for k in got]
    assert all(x["pred_model_id"] == str(tiny_model_dir) for x in lines if "verdict" in x)


KILLED_JOB = textwrap.dedent(
    """
    import sys, time
    from judgelm.integrations import judge_file
    from judgelm.io import JobStamp

    def slow_grader():  # defined in __main__, so Ray ships it to the actors by value
        from test_serve_support import CountingJudge, grading_judge

        return CountingJudge(grading_judge(), delay=0.3)  # slow enough to be killed midway

    import ray
    # A job on the test's running cluster; its actors import the test helpers.
    ray.init(address=sys.argv[3], log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": sys.argv[4]}})
    # the slow grader judges like the grader that resumes the job: one job, named so
    judge_file(sys.argv[1], sys.argv[2], judge=slow_grader, num_actors=2, batch_size=2, job=JobStamp("grader"))
    print("finished")
    """
)


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # field 6 of /proc/PID/stat: the session id
                pids.append(int(entry.name))
    return pids


def test_killed_job_resumes_with_every_record_exactly_once(ray_cluster, tmp_path):
    recs = records(30)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs) + "{not json\n")
    out = tmp_path / "out.jsonl"
    script = tmp_path / "job.py"
    script.write_text(KILLED_JOB)
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    # A session of its own, so the kill takes the driver and anything it started; Ray then ends
    # the dead job's actors.
    proc = subprocess.Popen(
        [sys.executable, str(script), str(src), str(out), ray_cluster, PYTHONPATH],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.read_text().count("\n") >= 8):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in _session_pids(proc.pid):  # anything of that session that outlived the group kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    before = lines_of(out)
    print(f"killed after {time.monotonic() - t0:.1f} s")
    assert 8 <= len(before) < 31, "the kill did not land midway"
    done_before = {x["id"] for x in before}
    first = out.read_bytes().split(b"\n")[0]
    with out.open("ab") as f:  # and the kill tore the last line in half (a judgelm line's first half)
        f.write(first[: len(first) // 2])

    from test_serve_support import grading_judge

    t1 = time.monotonic()
    summary = judge_file(src, out, judge=grading_judge, num_actors=2, batch_size=4, job=JobStamp("grader"))
    print(f"resumed in {time.monotonic() - t1:.1f} s")
    assert summary.skipped == len(done_before) and summary.written + summary.errors == 31 - len(done_before)

    after = lines_of(out)  # every line parses: the torn one is gone
    counts = Counter(x["id"] for x in after)
    keys = [r.key for r in read_samples(src)]
    assert sorted(counts) == sorted(keys) and set(counts.values()) == {1}
    assert after[: len(before)] == before  # nothing written before the kill was redone
    assert {x["id"] for x in after if "error" in x} == {"r3", "line-31"}
    expected = in_process(grading_judge(), recs)
    got = {x["id"]: x["verdict"] for x in after if "verdict" in x}
    assert got.keys() == expected.keys()
    assert [(k, got[k], expected[k]) for k in got if got[k] != expected[k]] == []
    # Running once more finds nothing left to do.
    summary = judge_file(src, out, judge=grading_judge, num_actors=1, job=JobStamp("grader"))
    assert (summary.written, summary.errors, summary.skipped, summary.failed) == (0, 0, 31, 2)
    # ... and another job's run on this file is refused, leaving it as it was
    with pytest.raises(JobError, match="another job"):
        judge_file(src, out, judge=grading_judge, num_actors=1)
    assert lines_of(out) == after


def judge_cmd_args(**over) -> argparse.Namespace:
    """The namespace `judgelm judge` parses, plus the proposed --engine/--num-actors flags."""
    args = {
        "input": "in.jsonl",
        "output": "out.jsonl",
        "model": "m",
        "mode": None,
        "swap": False,
        "explain": False,
        "scoring": "text",
        "official_parser": False,
        "no_reference": False,
        "truncation": "answers",
        "batch_size": 32,
        "max_new_tokens": None,
        "device": None,
        "dtype": None,
        "trust_remote_code": False,
        "quiet": True,
        "engine": "ray",
        "num_actors": None,
        "abstain_threshold": None,
        "restart": False,
    }
    return argparse.Namespace(**{**args, **over})


def test_local_judge_imported_by_a_reward_worker_actor_warns(ray_cluster, tmp_path):
    """veRL 0.9.1 (verl/experimental/reward_loop/reward_loop.py) starts reward.num_workers Ray
    actors, each importing the reward file (verl/utils/import_utils.py: spec_from_file_location):
    a local Judge there is one model copy per actor, which judgelm warns about."""
    path = tmp_path / "my_reward.py"
    path.write_text(
        "from test_serve_support import grading_judge\n"
        "from judgelm.integrations import verl_compute_score\n"
        "compute_score = verl_compute_score(grading_judge()).as_async()\n"
    )

    @ray.remote(num_cpus=0)
    class RewardLoopWorker:
        def __init__(self, module_path):
            import importlib.util
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                spec = importlib.util.spec_from_file_location("custom_module", module_path)
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            self.warned = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]

        def report(self):
            return ray.get_runtime_context().get_actor_id(), self.warned

    actor = RewardLoopWorker.remote(str(path))
    actor_id, warned = ray.get(actor.report.remote(), timeout=120)
    ray.kill(actor)
    assert any(f"inside Ray actor {actor_id}" in m and "judgelm serve" in m for m in warned), warned


def test_cli_engine_ray_maps_the_judge_command_flags(monkeypatch, capsys):
    from judgelm.errors import JudgeLMError
    from judgelm.integrations import ray_data
    from judgelm.integrations.ray_data import RayJudgeSummary

    with pytest.raises(JudgeLMError, match="-o"):
        run_judge_command(judge_cmd_args(output=None))
    seen = {}

    def fake_judge_file(input, output, **kw):
        seen.update(kw, input=input, output=output)
        return RayJudgeSummary(output, 3, 1, 0, 2, 0, 1.0)

    monkeypatch.setattr(ray_data, "judge_file", fake_judge_file)
    args = judge_cmd_args(swap=True, mode="pairwise", max_new_tokens=9, device="cpu", num_actors=4, no_reference=True)
    assert run_judge_command(args) == 0
    assert seen["judge"] == "m" and seen["num_actors"] == 4 and seen["no_reference"] is True
    assert seen["options"].swap is True and seen["options"].mode == "pairwise" and seen["options"].max_new_tokens == 9
    assert seen["judge_kwargs"] == {
        "device": "cpu",
        "dtype": None,
        "trust_remote_code": False,
        "truncation": "answers",
        "abstain_threshold": None,
    }
    assert "judged 3 (abstained: 1)" in capsys.readouterr().err
    # the output belongs to this job (judge and flags), as with the local engine
    assert seen["job"].judge == "m" and seen["job"].options["swap"] is True and seen["restart"] is False
