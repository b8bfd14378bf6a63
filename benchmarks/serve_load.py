"""Load test for ``judgelm serve``: N concurrent clients on loopback against a real server process.

Three phases against the same tiny model (a random 2-layer Llama with the LLaMA tokenizer, saved
like a checkpoint and served by ``python -m judgelm.cli.serve_cmd``):

1. ``batched``: the default micro-batcher (max batch 32), a queue big enough for every client.
2. ``unbatched``: the same load with ``--max-batch-size 1`` (what micro-batching buys).
3. ``overload``: more clients than a small queue holds; refused requests (503) are retried after
   the server's Retry-After, so every request is answered in the end.
4. ``batched`` again with logit scoring (expected scores, what ``/get_reward`` uses by default).

Phases 1-3 ask for text scoring (greedy score line) so they measure the serving path around the
cheapest model call.

For every phase: throughput (samples/s), p50/p99 latency of answered requests, 503 count, the
mean model batch (from /metrics), and the exactly-once check: every sample id sent comes back
exactly once, in its own request's response, none lost or duplicated.

    python benchmarks/serve_load.py                       # prints a markdown table
    python benchmarks/serve_load.py --write-results       # also updates benchmarks/RESULTS.md

Every request goes to 127.0.0.1; loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Serving load test"
MAX_RETRIES = 50  # per request, in the overload phase
PHASE_TIMEOUT_S = 600


@dataclass
class Phase:
    name: str
    clients: int
    requests_per_client: int
    samples_per_request: int
    server_args: list[str]
    scoring: str = "text"
    retry: bool = False


@dataclass
class Outcome:
    phase: Phase
    seconds: float
    latencies: list[float] = field(default_factory=list)
    refused: int = 0
    answered: Counter[str] = field(default_factory=Counter)
    mismatched: int = 0
    failed: int = 0
    mean_batch: float = 0.0
    abstained: int = 0

    @property
    def sent_ids(self) -> int:
        p = self.phase
        return p.clients * p.requests_per_client * p.samples_per_request

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    def row(self) -> dict[str, object]:
        lost = self.sent_ids - len(self.answered)
        dup = sum(n - 1 for n in self.answered.values() if n > 1)
        return {
            "phase": self.phase.name,
            "scoring": self.phase.scoring,
            "clients": self.phase.clients,
            "requests": self.phase.clients * self.phase.requests_per_client,
            "samples/req": self.phase.samples_per_request,
            "samples/s": round(sum(self.answered.values()) / self.seconds, 1),
            "p50 ms": round(self.pct(0.50) * 1000, 1),
            "p99 ms": round(self.pct(0.99) * 1000, 1),
            "503s": self.refused,
            "mean batch": round(self.mean_batch, 1),
            "lost": lost,
            "duplicated": dup,
            "misrouted": self.mismatched,
            "failed": self.failed,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_tiny_model(folder: Path) -> Path:
    """The random tiny Llama the tests use, saved like a checkpoint (safetensors + tokenizer)."""
    sys.path.insert(0, str(ROOT))
    from judgelm.modalities.text import load_tokenizer
    from judgelm.testing import tiny_llama

    tok_dir = ROOT / "tests" / "assets" / "llama-tokenizer"
    tokenizer = load_tokenizer(str(tok_dir))
    tiny_llama(tokenizer).save_pretrained(folder)
    for f in tok_dir.glob("*.json"):
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def start_server(model: str, port: int, extra: list[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "judgelm.cli.serve_cmd", "--model", model, "--port", str(port)]
    cmd += ["--device", "cpu", "--log-level", "warning", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()  # SIGTERM: graceful
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sample(client: int, req: int, k: int) -> dict[str, object]:
    # Varied lengths, so batches mix short and long prompts as real traffic does.
    pad = " detail" * ((client * 7 + req * 3 + k) % 12)
    return {
        "id": f"c{client}-r{req}-s{k}",
        "question": f"Client {client} asks question {req}: which answer is better?{pad}",
        "answers": [f"Answer A for {req}.{pad}", f"Answer B, number {k}."],
    }


async def run_client(client: int, phase: Phase, ac: httpx.AsyncClient, out: Outcome) -> None:
    for req in range(phase.requests_per_client):
        samples = [sample(client, req, k) for k in range(phase.samples_per_request)]
        body = {"samples": samples, "options": {"scoring": phase.scoring}}
        want = [s["id"] for s in samples]
        for _ in range(MAX_RETRIES):
            start = time.perf_counter()
            try:
                r = await ac.post("/v1/judge", json=body)
            except httpx.HTTPError:
                out.failed += 1
                break
            if r.status_code == 503:
                out.refused += 1
                if not phase.retry:
                    break
                await asyncio.sleep(min(float(r.headers.get("retry-after", "1")), 2.0))
                continue
            out.latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                out.failed += 1
                break
            results = r.json()["results"]
            got = [x["id"] for x in results]
            if got != want:
                out.mismatched += 1
            out.answered.update(got)
            out.abstained += sum(bool(x["verdict"]["abstained"]) for x in results)
            break


def mean_batch(metrics: str) -> float:
    s = re.search(r"^judgelm_batch_size_sum (\S+)$", metrics, re.M)
    c = re.search(r"^judgelm_batch_size_count (\S+)$", metrics, re.M)
    return float(s.group(1)) / float(c.group(1)) if s and c and float(c.group(1)) else 0.0


async def run_phase(phase: Phase, url: str) -> Outcome:
    limits = httpx.Limits(max_connections=phase.clients + 4, max_keepalive_connections=phase.clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as ac:
        out = Outcome(phase, 0.0)
        start = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(run_client(c, phase, ac, out) for c in range(phase.clients))), PHASE_TIMEOUT_S
        )
        out.seconds = time.perf_counter() - start
        out.mean_batch = mean_batch((await ac.get("/metrics")).text)
    return out


def table(rows: list[dict[str, object]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def write_results(text: str, section: str = SECTION) -> None:
    """Replace (or append) only this benchmark's section of RESULTS.md."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = old.find(section)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(section))
        new = old[:start] + text + (old[nxt + 1 :] if nxt >= 0 else "")
    RESULTS.write_text(new.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a model folder to serve (default: a tiny random Llama, saved to a temp dir)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests-per-client", type=int, default=4)
    p.add_argument("--samples-per-request", type=int, default=1)
    p.add_argument("--overload-clients", type=int, default=64)
    p.add_argument("--overload-queue", type=int, default=8)
    p.add_argument("--write-results", action="store_true", help="update the section in benchmarks/RESULTS.md")
    args = p.parse_args(argv)

    n, r, k = args.clients, args.requests_per_client, args.samples_per_request
    batched = ["--max-batch-size", "32", "--max-queue", "4096", "--max-wait-ms", "5"]
    overload = ["--max-batch-size", "8", "--max-queue", str(args.overload_queue)]
    phases = [
        Phase("batched", n, r, k, batched),
        Phase("unbatched", n, r, k, ["--max-batch-size", "1", "--max-queue", "4096"]),
        Phase("overload", args.overload_clients, r, k, [*overload, "--max-request-samples", str(k)], retry=True),
        Phase("batched", n, r, k, batched, scoring="logits"),
    ]
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(save_tiny_model(Path(tmp) / "tiny-llama"))
        for phase in phases:
            port = free_port()
            proc = start_server(model, port, phase.server_args)
            try:
                outcomes.append(asyncio.run(run_phase(phase, f"http://127.0.0.1:{port}")))
            finally:
                stop_server(proc)
            print(json.dumps(outcomes[-1].row()), file=sys.stderr)
    rows = [o.row() for o in outcomes]
    bad = ("lost", "duplicated", "misrouted", "failed")
    ok = all(row[b] == 0 for row in rows for b in bad)
    load = os.getloadavg()
    cmd = "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{cmd.strip()}`  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared; load average at the end "
            f"{load[0]:.1f}), CPU only, server and clients on 127.0.0.1, separate processes.  ",
            f"Model: {'a tiny random 2-layer Llama (LLaMA tokenizer)' if not args.model else args.model}; "
            "its verdicts are noise (it measures the serving path, not a judge).",
            "",
            table(rows),
            "",
            "- `samples/s`: answered samples / wall time of the phase. `p50/p99 ms`: latency of the attempt"
            " that was answered (refused attempts are counted under `503s`, not in the latency).",
            "- `mean batch`: samples per model call, from the server's `/metrics`.",
            "- `scoring`: `text` = greedy score line (the reference's fast eval); `logits` = the"
            " scoring head's expected scores (the default whenever the engine can), which on CPU"
            " costs several times more per sample and gains little from batching.",
            "- `overload`: a queue of "
            f"{args.overload_queue} samples for {args.overload_clients} clients; each 503 is retried after"
            " Retry-After (capped at 2 s).",
            f"- Exactly once: every sample id sent came back exactly once in its own response: "
            f"{'yes, in every phase' if ok else 'NO (see lost/duplicated/misrouted)'}.",
        ]
    )
    print(text)
    if args.write_results:
        write_results(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
