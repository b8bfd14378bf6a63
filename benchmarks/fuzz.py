"""Fuzzing `judgelm judge` and `judgelm serve` with hostile input, longer than the CPU test suite
(tests/test_fuzz.py) and randomly seeded: the same generators (tests/hostile_lines.py, hypothesis).

1. Input files: N lines mixing valid records with every hostile kind (invalid UTF-8, lone
   surrogates anywhere, 5,000-digit integers, 60,000-deep nesting, list/object roles, answers as
   an object, ids that collide with ``line-N`` keys, bare ``\\r``, NaN, ...), judged by a scripted
   judge (``judgelm judge -o``): once without interruption; then again in a fresh output, killed
   with SIGKILL at several points and re-run each time, then finished. Counted: job crashes (an
   exit code other than 0 or 3, or a traceback), lines lost or duplicated, verdicts that differ
   from the uninterrupted run.
2. The server: M requests (/v1/judge bodies with hostile records, random JSON and bytes, odd
   options; /get_reward bodies) against ``judgelm serve`` on the same scripted judge. Counted:
   5xx answers, answers that are not valid JSON, wrong status for a body whose fate is known.

    python benchmarks/fuzz.py [--lines 30000] [--kills 4] [--requests 3000] [--seed S] [--out fuzz.json]
        [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from serve_load import ROOT, table, write_results

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from hostile_lines import LINE, REQUEST, assemble, check_answer, check_output, run_job
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

SECTION = "## Fuzzing hostile input (issue 14)"
HELPER = ROOT / "tests" / "hostile_lines.py"


def draw(strategy: st.SearchStrategy, n: int, rng_seed: int) -> list:
    """``n`` examples of ``strategy`` (hypothesis, seeded)."""
    out: list = []

    @seed(rng_seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x):
        out.append(x)

    collect()
    return out


def lines_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_bytes().splitlines()]


def without_time(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: {k: v for k, v in r.items() if k != "tstamp"} for r in rows}


def fuzz_files(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    start = time.perf_counter()
    pool = [
        line for batch in draw(st.lists(LINE, min_size=1, max_size=12), args.lines // 4, args.seed) for line in batch
    ]
    pool = pool[: args.lines]
    data, meta = assemble(pool)
    src = folder / "in.jsonl"
    src.write_bytes(data)
    generated = time.perf_counter() - start
    crashes, runs = 0, 0

    def run(out: Path) -> None:
        nonlocal crashes, runs
        runs += 1
        code = run_job(src, out)
        crashes += code not in (0, 3)

    whole = folder / "whole.jsonl"
    run(whole)
    counts = check_output(meta, whole)
    reference = without_time(lines_of(whole))
    out, log = folder / "out.jsonl", folder / "killed.log"
    rng = random.Random(args.seed)
    kill_points = sorted(rng.uniform(0.05, 0.95) for _ in range(args.kills))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    for frac in kill_points:
        target = int(frac * counts["records"])
        with log.open("ab") as err:
            proc = subprocess.Popen([sys.executable, str(HELPER), str(src), str(out), "0.001"], env=env, stderr=err)
            deadline = time.monotonic() + 600
            while proc.poll() is None and not (out.exists() and out.read_bytes().count(b"\n") >= target):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            runs += 1
            crashes += proc.returncode not in (0, 3, -signal.SIGKILL)
    run(out)
    crashes += "Traceback" in log.read_text(errors="replace")
    final = lines_of(out)
    ids = Counter(r["id"] for r in final)
    got = without_time(final)
    return {
        "seed": args.seed,
        "input lines": counts["lines"],
        "records": counts["records"],
        "kinds": len({kind for kind, _ in meta}),
        "verdict lines": counts["verdicts"],
        "error lines": counts["errors"],
        "job runs": runs,
        "SIGKILLs": kills,
        "job crashes": crashes,
        "lost": len(set(reference) - set(ids)),
        "duplicated": sum(n - 1 for n in ids.values()),
        "differing from uninterrupted": sum(got.get(k) != v for k, v in reference.items()),
        "generation s": round(generated, 1),
    }


def fuzz_server(args: argparse.Namespace) -> dict[str, object]:
    import httpx
    from hostile_lines import scripted_grader

    from judgelm.serve import BackgroundServer, ServeConfig

    requests = draw(REQUEST, args.requests, args.seed + 1)
    statuses: Counter[int] = Counter()
    wrong = 0
    with (
        BackgroundServer(scripted_grader(), ServeConfig(max_wait_ms=0)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as c,
    ):
        for path, body, expected in requests:
            r = c.post(path, content=body, headers={"content-type": "application/json"})
            statuses[r.status_code] += 1
            try:
                check_answer(path, expected, r.status_code, r.content)
            except AssertionError:
                wrong += 1
        healthy = c.get("/health").status_code == 200
    return {
        "requests": len(requests),
        **{f"{code}": n for code, n in sorted(statuses.items())},
        "5xx": sum(n for code, n in statuses.items() if code >= 500),
        "wrong answers": wrong,
        "healthy after": healthy,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=30_000, help="input lines to generate (default: 30000)")
    p.add_argument("--kills", type=int, default=4, help="SIGKILLs of the job, each followed by a re-run")
    p.add_argument("--requests", type=int, default=3000, help="server requests (default: 3000)")
    p.add_argument("--seed", type=int, default=random.randrange(2**31), help="hypothesis seed (default: random)")
    p.add_argument("--out", default="fuzz.json", help="the results as JSON")
    p.add_argument("--write-results", action="store_true", help="update the section in benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = fuzz_files(args, Path(tmp))
    print(json.dumps(files), file=sys.stderr)
    server = fuzz_server(args)
    print(json.dumps(server), file=sys.stderr)
    Path(args.out).write_text(json.dumps({"files": files, "server": server}, indent=2) + "\n")
    ok = all(files[k] == 0 for k in ("job crashes", "lost", "duplicated", "differing from uninterrupted"))
    ok = ok and server["5xx"] == 0 and server["wrong answers"] == 0 and server["healthy after"]
    load = os.getloadavg()
    cmd = "python benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{cmd.strip()}` (seed {args.seed})  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared; load average at the end "
            f"{load[0]:.1f}); a scripted judge (the fuzz is about input, not verdicts).",
            "",
            "Input files (`judgelm judge -o`):",
            "",
            table([files]),
            "",
            "Server (`/v1/judge`, `/get_reward`; status code counts):",
            "",
            table([server]),
            "",
            "- `job crashes`: runs that ended with an exit code other than 0 (all judged) or 3 (some records "
            "bad), or printed a traceback. `lost` / `duplicated`: ids of the uninterrupted run missing from / "
            "repeated in the output that was killed and re-run; `differing`: its lines that differ (time "
            "stamps aside). `wrong answers`: a 5xx, an answer that is not valid JSON, or a status other than "
            "the one a body's records call for.",
            f"- Result: {'all zero' if ok else 'FAILURES (see the tables)'}.",
        ]
    )
    print(text)
    if args.write_results:
        write_results(text, SECTION)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
