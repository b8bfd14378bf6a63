"""Remote judging (`Judge.from_endpoint` against ``judgelm serve`` on loopback) against the same
judge in-process: throughput and agreement, same machine, same run.

The judge (a tiny random Llama with the LLaMA tokenizer by default, ``--model`` for a real one) is
loaded in this process and served by a second process (``python -m judgelm.cli.serve_cmd``); the
same pairwise samples (JudgeLM prompts of realistic length, from the synthetic generator) are
judged five ways:

1. in-process, logit scoring (the default: joint slots),
2. remote, exact logit scoring (``echo`` + ``max_tokens`` 0: prompt log-probabilities),
3. remote, top-k logit scoring (``logprobs`` = 20; approximate, unseen mass reported),
4. in-process, text scoring (greedy score line),
5. remote, text scoring.

For each: seconds (median of ``--repeats``; one untimed warm-up per path first, then the paths in
turn, so a change of the machine's load hits all of them), samples/s, the ratio to the in-process run of the
same scoring, the largest difference of an expected score from the in-process verdict, and the
HTTP requests made. Prints a markdown table; ``--json PATH`` writes the rows, ``--write-results``
updates the section of benchmarks/RESULTS.md.

    python benchmarks/remote_judge.py --n 32 --write-results --json remote_judge.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# One thread per process (this one and the server): on a shared CPU, OpenMP threads that spin while
# other processes hold the cores make every small GEMM 10-100x slower, at random.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve_load import free_port, save_tiny_model, start_server, stop_server, table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Remote judging (Judge.from_endpoint vs in-process)"


def samples(n: int) -> list:
    from judgelm.data.records import record_from_dict
    from judgelm.data.synthetic import SyntheticConfig, generate

    return [record_from_dict(r).sample for r in generate(n, seed=5, config=SyntheticConfig())]


def max_diff(a: list, b: list) -> float:
    diffs = [
        abs(x - y)
        for va, vb in zip(a, b, strict=True)
        if va.scores is not None and vb.scores is not None
        for x, y in zip(va.scores, vb.scores, strict=True)
    ]
    return max(diffs, default=float("nan"))


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[nxt + 1 :] if nxt >= 0 else "")
    RESULTS.write_text(new.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a model folder (default: a tiny random Llama saved to a temp dir)")
    p.add_argument("--n", type=int, default=32, help="samples (default 32)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=8, help="remote requests in flight")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--write-results", action="store_true")
    args = p.parse_args(argv)

    from judgelm import Judge

    data = samples(args.n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(save_tiny_model(Path(tmp) / "tiny-llama"))
        local = Judge.from_pretrained(model, device="cpu", abstain_threshold=1.0)
        lengths = [len(local.encode(s)[0].input_ids) for s in data]
        port = free_port()
        server = start_server(model, port, ["--max-batch-size", "64", "--max-queue", "4096"])
        try:
            url = f"http://127.0.0.1:{port}"

            def remote(logprobs: str) -> Judge:
                return Judge.from_endpoint(
                    url,
                    model,
                    tokenizer=local.tokenizer,
                    logprobs=logprobs,
                    concurrency=args.concurrency,
                    abstain_threshold=1.0,
                )

            exact, topk = remote("echo"), remote("top_k")
            runs = [
                ("in-process", "logits", lambda: local.judge(data), None),
                ("remote exact (echo)", "logits", lambda: exact.judge(data), exact),
                ("remote top-k (20)", "logits", lambda: topk.judge(data), topk),
                ("in-process", "text", lambda: local.judge(data, scoring="text"), None),
                ("remote", "text", lambda: exact.judge(data, scoring="text"), exact),
            ]
            # one untimed warm-up per path (first-use costs), then the paths in turn, repeated: a
            # change of the machine's load hits every path alike
            results = [[fn()] for _, _, fn, _ in runs]
            times: list[list[float]] = [[] for _ in runs]
            requests = [0] * len(runs)
            for _ in range(args.repeats):
                for k, (_, _, fn, judge) in enumerate(runs):
                    before = judge.engine.http.usage.requests if judge else 0
                    t = time.perf_counter()
                    results[k] = [fn()]
                    times[k].append(time.perf_counter() - t)
                    requests[k] += (judge.engine.http.usage.requests - before) if judge else 0
            base: dict[str, tuple[float, list]] = {}
            for k, (name, scoring, _, judge) in enumerate(runs):
                seconds, verdicts = statistics.median(times[k]), results[k][0]
                if judge is None:
                    base[scoring] = (seconds, verdicts)
                ref_s, ref_v = base[scoring]
                unseen = [v.provenance.unseen_mass for v in verdicts if v.provenance.unseen_mass is not None]
                rows.append(
                    {
                        "path": name,
                        "scoring": scoring,
                        "s": round(seconds, 3),
                        "samples/s": round(len(data) / seconds, 2),
                        "vs in-process": f"{ref_s / seconds:.2f}x",
                        "max |Δ score|": f"{max_diff(verdicts, ref_v):.1e}",
                        "abstained": sum(v.abstained for v in verdicts),
                        "requests/run": requests[k] // args.repeats,
                        "unseen mass (mean)": f"{statistics.fmean(unseen):.3f}" if unseen else "-",
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            stop_server(server)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "n": args.n, "prompt_tokens": lengths}, indent=2))
    print(table(rows))
    if args.write_results:
        load = os.getloadavg()
        cmd = "python benchmarks/remote_judge.py " + " ".join(argv if argv is not None else sys.argv[1:])
        text = "\n".join(
            [
                SECTION,
                "",
                f"Command: `{cmd.strip()}`  ",
                f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared; load average at the end "
                f"{load[0]:.1f}), CPU only, one thread per process; the server is a second process on "
                "127.0.0.1.  ",
                f"Model: {args.model or 'a tiny random 2-layer Llama (LLaMA tokenizer)'}; {args.n} pairwise samples "
                f"(synthetic, prompts {min(lengths)}..{max(lengths)} tokens, mean {statistics.fmean(lengths):.0f}); "
                f"median of {args.repeats}; remote concurrency {args.concurrency}.",
                "",
                table(rows),
                "",
            ]
        )
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
