"""Property-based fuzzing of `judgelm judge` input files: hypothesis generates over 10,000 lines
mixing valid records with every hostile kind (tests/hostile_lines.py), pooled into one input
file. Judged (on a scripted judge), every non-blank line is accounted for exactly once (a verdict
or an error line naming its line), with no traceback and the exit code that says records were
bad; a re-run resumes (nothing left to do); a job killed with SIGKILL midway and re-run ends with
exactly the output of an uninterrupted run. A longer, randomly seeded run: benchmarks/fuzz.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_lines import JSON_VALUE, KINDS, LINE, TEXT, assemble, check_output, run_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judgelm.cli import EXIT_BAD_RECORDS

EXAMPLES = 2200  # lists of 1-12 lines: 10,309 lines in all (derandomized: the same on every machine)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> tuple[Path, list, Path, dict]:
    """The pooled input file, its line kinds, and an uninterrupted run's output and counts."""
    pool: list = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # a CI test, not a search: the same lines everywhere
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(LINE, min_size=1, max_size=12))
    def draw(specs):
        pool.extend(specs)

    draw()
    folder = tmp_path_factory.mktemp("fuzz")
    data, meta = assemble(pool)
    src, out = folder / "in.jsonl", folder / "whole.jsonl"
    src.write_bytes(data)
    assert run_job(src, out) == EXIT_BAD_RECORDS
    return src, meta, out, check_output(meta, out)


def test_every_line_is_accounted_for_exactly_once(fuzzed, capsys):
    src, meta, out, counts = fuzzed
    print(counts)
    assert counts["lines"] >= 10_000 and {kind for kind, _ in meta} == set(KINDS)
    assert counts["verdicts"] > 2_000 and counts["errors"] > 5_000
    before = out.read_bytes()
    assert run_job(src, out) == EXIT_BAD_RECORDS  # a re-run resumes: nothing left to do
    assert out.read_bytes() == before
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"already done: {counts['records']}" in err


def _without_time(path: Path) -> dict[str, dict]:
    rows = [json.loads(x) for x in path.read_bytes().splitlines()]
    return {r["id"]: {k: v for k, v in r.items() if k != "tstamp"} for r in rows}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_killed_job_resumes_to_the_uninterrupted_result(fuzzed, tmp_path):
    src, meta, whole, counts = fuzzed
    out = tmp_path / "out.jsonl"
    helper = Path(__file__).with_name("hostile_lines.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    log = (tmp_path / "stderr.txt").open("wb")  # (a pipe would fill with error lines and block the job)
    proc = subprocess.Popen([sys.executable, str(helper), str(src), str(out), "0.002"], env=env, stderr=log)
    target = counts["errors"] + 200  # the error lines come first, then verdicts, 4 at a time
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= target):
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    assert out.read_bytes().count(b"\n") < counts["records"], "the kill did not land midway"
    assert run_job(src, out) == EXIT_BAD_RECORDS
    check_output(meta, out)
    assert _without_time(out) == _without_time(whole)  # 0 lost, 0 duplicated, the same verdicts


# ---- the server ---------------------------------------------------------------------------------

OPTIONS = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "swap": st.booleans() | st.integers(),
        "scoring": st.sampled_from(["auto", "text", "logits", "bogus"]),
        "max_new_tokens": st.integers(-5, 5000) | st.none(),
        "mode": st.sampled_from([None, "pairwise", "nope"]),
        "extra": st.just(1),
    },
)


NOT_JSON = {"not-json", "invalid-utf8", "big-int", "deep"}  # lines that make the whole body unreadable
VALID_LINE = st.sampled_from(sorted(k for k, (e, _) in KINDS.items() if e == "verdict" and k != "valid-bom")).flatmap(
    lambda kind: KINDS[kind][1].map(lambda body: (kind, "verdict", body))
)
REWARD = st.fixed_dictionaries(
    {"query": st.lists(TEXT, min_size=1, max_size=3)},
    optional={
        "prompts": st.lists(TEXT | st.none(), max_size=3),
        "labels": st.lists(TEXT | st.none() | st.integers(), max_size=3),
    },
) | st.dictionaries(st.sampled_from(["query", "prompts", "labels"]), JSON_VALUE)


@st.composite
def judge_request(draw) -> tuple[bytes, list[str] | None]:
    """A /v1/judge body and the expected outcome of each sample (None: the body itself is odd)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64) | JSON_VALUE.map(lambda v: json.dumps(v).encode())), None
    lines = VALID_LINE if draw(st.booleans()) else LINE  # half of the requests: valid records only
    specs = [s for s in draw(st.lists(lines, max_size=4)) if s[1] != "blank"]
    data, meta = assemble(specs)
    options = draw(OPTIONS)
    body = b'{"samples": [' + b", ".join(data.splitlines()) + b"]"
    if options is not None:
        body += b', "options": ' + json.dumps(options).encode()
    if options is not None or any(kind == "valid-bom" for kind, _ in meta):  # a BOM only starts a file
        return body + b"}", None
    return body + b"}", [expected if kind not in NOT_JSON else "body" for kind, expected in meta]


@pytest.fixture(scope="module")
def server():
    from hostile_lines import scripted_grader

    from judgelm.serve import BackgroundServer, ServeConfig

    with BackgroundServer(scripted_grader(), ServeConfig(max_wait_ms=0)) as srv:
        yield srv


def _reward_request(body) -> tuple[str, bytes, None]:
    return "/get_reward", json.dumps(body).encode(), None


def test_server_fuzz_answers_4xx_or_200_in_valid_json_never_5xx(server):
    import httpx

    statuses: dict[tuple[str, int], int] = {}
    judging = judge_request().map(lambda r: ("/v1/judge", *r))
    with httpx.Client(base_url=server.url, timeout=60) as client:

        @settings(
            max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(st.one_of(judging, judging, REWARD.map(_reward_request)))  # 2/3 of the requests judge
        def one(request):
            path, body, expected = request
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            statuses[path, r.status_code] = statuses.get((path, r.status_code), 0) + 1
            assert r.status_code < 500, r.text[:500]
            answer = json.loads(r.content, parse_constant=lambda c: pytest.fail(f"bare {c}"))
            if r.status_code >= 400:
                assert isinstance(answer["error"]["message"], str)
            if path == "/v1/judge" and expected:
                if "body" in expected:  # not JSON within limits: the body as a whole is refused
                    assert r.status_code == 400, answer
                elif "error" in expected:
                    assert r.status_code == 400 and answer["error"]["field"].startswith("samples["), answer
                elif "either" not in expected:
                    assert r.status_code == 200 and len(answer["results"]) == len(expected), answer

        one()
        assert client.get("/health").status_code == 200
    print(statuses)
    assert min(statuses.get((p, c), 0) for p in ("/v1/judge", "/get_reward") for c in (200, 400)) > 20
