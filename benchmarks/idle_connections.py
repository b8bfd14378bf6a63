"""Idle and slow clients against the judge server: does it keep serving real clients?

The server (a tiny random Llama, CPU, in its own process) is started three ways, one after the
other, in the same run:

- ``before``: what ``judgelm serve`` configured before issue 14: uvicorn with
  ``limit_concurrency = max_queue + 256``, which counts idle connections;
- ``guard``: ``judgelm serve`` now (`judgelm.serve.connections`: a header deadline of 10 s,
  keep-alive 5 s, a cap of 4,096 connections that closes the oldest idle one);
- ``guard-cap-1024``: the same with ``--max-connections 1024``, so 2,000 idle sockets overflow the
  cap and the oldest are closed to make room.

Against each, three phases, each measuring ``GET /health`` and a judged ``POST /v1/judge`` (one
sample, text scoring), every request on a fresh connection (a new client must get in):

1. ``quiet``: no attack;
2. ``idle``: 2,000 TCP connections that send nothing stay open during the measurement;
3. ``slowloris``: 200 connections each sending one more header line every 2 s, never the blank
   line that ends the head; how long the server lets them live is reported too.

    python benchmarks/idle_connections.py [--idle 2000] [--slowloris 200] [--out idle_connections.json]
        [--write-results]

Every request goes to 127.0.0.1. The open-files limit is raised to its hard limit for the
attacker and the server (both need one descriptor per connection).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from serve_load import ROOT, free_port, save_tiny_model, table, write_results

SECTION = "## Idle and slow connections against the server"

SERVER = """
import sys
from judgelm import Judge
from judgelm.serve import ServeConfig
mode, model, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
judge = Judge.from_pretrained(model, device="cpu")
config = ServeConfig()
if mode == "before":  # judgelm serve's uvicorn settings before issue 14
    import uvicorn
    from judgelm.serve.app import create_app
    uvicorn.run(create_app(judge, config), host="127.0.0.1", port=port, log_level="error", access_log=False,
                limit_concurrency=config.max_queue + 256)
else:
    from dataclasses import replace
    from judgelm.serve.server import serve
    if mode == "guard-cap-1024":
        config = replace(config, max_connections=1024)
    serve(judge, host="127.0.0.1", port=port, config=config, log_level="error")
"""
MODES = ("before", "guard", "guard-cap-1024")
SAMPLE = {"samples": [{"question": "What is 2+2?", "answers": ["4", "five"]}], "options": {"scoring": "text"}}


def start(mode: str, model: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, mode, model, str(port)], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the {mode} server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the {mode} server did not start")


def measure(url: str, n_health: int, n_judge: int) -> dict[str, object]:
    """Requests on fresh connections: latencies of the answered ones, and what else came back."""
    out: dict[str, list] = {"health": [], "judge": []}
    refused = failed = 0
    for name, n, call in (
        ("health", n_health, lambda c: c.get("/health")),
        ("judge", n_judge, lambda c: c.post("/v1/judge", json=SAMPLE)),
    ):
        for _ in range(n):
            start = time.perf_counter()
            try:
                with httpx.Client(base_url=url, timeout=30) as client:
                    status = call(client).status_code
            except httpx.HTTPError:
                failed += 1
                continue
            if status == 200:
                out[name].append(time.perf_counter() - start)
            elif status == 503:
                refused += 1
            else:
                failed += 1

    def p50(xs: list[float]) -> float | None:
        return round(sorted(xs)[len(xs) // 2] * 1000, 1) if xs else None

    return {
        "health answered": f"{len(out['health'])}/{n_health}",
        "health p50 ms": p50(out["health"]),
        "judge answered": f"{len(out['judge'])}/{n_judge}",
        "judge p50 ms": p50(out["judge"]),
        "503": refused,
        "failed": failed,
    }


def closed_by_server(s: socket.socket) -> bool:
    """Whether the server closed ``s`` (EOF, or a final 408 waiting to be read)."""
    try:
        s.setblocking(False)
        data = s.recv(4096, socket.MSG_PEEK)
        return data == b"" or data.startswith(b"HTTP/1.1 408")
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


class Slowloris:
    """``n`` connections that send one more header line every ``every_s`` on a thread; records
    when the server closed each one."""

    def __init__(self, port: int, n: int, every_s: float):
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        self.closed_after: list[float] = []
        self.start = time.monotonic()
        self.every_s = every_s
        self.stop = threading.Event()
        for s in self.socks:
            s.sendall(b"POST /v1/judge HTTP/1.1\r\nHost: x\r\n")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        live, k = list(self.socks), 0
        while live and not self.stop.wait(self.every_s):
            k += 1
            for s in list(live):
                try:
                    if closed_by_server(s):
                        raise ConnectionResetError
                    s.sendall(f"X-Slow-{k}: 1\r\n".encode())
                except OSError:
                    self.closed_after.append(time.monotonic() - self.start)
                    live.remove(s)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def run_mode(mode: str, model: str, args: argparse.Namespace) -> list[dict[str, object]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(mode, model, port)
    rows = []
    try:
        rows.append({"server": mode, "phase": "quiet", **measure(url, args.requests, args.judged)})
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.idle)]
        time.sleep(0.5)
        rows.append({"server": mode, "phase": f"{args.idle} idle", **measure(url, args.requests, args.judged)})
        rows[-1]["attack closed"] = f"{sum(closed_by_server(s) for s in idle)}/{args.idle}"
        for s in idle:
            s.close()
        time.sleep(0.5)
        loris = Slowloris(port, args.slowloris, 2.0)
        time.sleep(1.0)
        rows.append(
            {"server": mode, "phase": f"{args.slowloris} slowloris", **measure(url, args.requests, args.judged)}
        )
        time.sleep(max(0.0, args.slowloris_seconds - (time.monotonic() - loris.start)))
        loris.close()
        cut = sorted(loris.closed_after)
        rows[-1]["attack closed"] = (
            f"{len(cut)}/{args.slowloris} (median after {cut[len(cut) // 2]:.0f} s)"
            if cut
            else f"0/{args.slowloris} in {args.slowloris_seconds:.0f} s"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for row in rows:
        row.setdefault("attack closed", "-")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle", type=int, default=2000, help="idle connections (default: 2000)")
    p.add_argument("--slowloris", type=int, default=200, help="slowloris connections (default: 200)")
    p.add_argument("--slowloris-seconds", type=float, default=25.0, help="how long they keep trickling")
    p.add_argument("--requests", type=int, default=20, help="/health requests per phase")
    p.add_argument("--judged", type=int, default=10, help="judged requests per phase")
    p.add_argument("--modes", default=",".join(MODES), help=f"servers to run (default: {','.join(MODES)})")
    p.add_argument("--out", default="idle_connections.json", help="the results as JSON")
    p.add_argument("--write-results", action="store_true", help="update the section in benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = str(save_tiny_model(Path(tmp) / "tiny-llama"))
        for mode in args.modes.split(","):
            rows.extend(run_mode(mode, model, args))
            print(json.dumps(rows[-3:]), file=sys.stderr)
    Path(args.out).write_text(json.dumps({"rows": rows, "open_files_limit": hard}, indent=2) + "\n")
    load = os.getloadavg()
    cmd = "python benchmarks/idle_connections.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{cmd.strip()}`  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared; load average at the end "
            f"{load[0]:.1f}), open-files limit {hard}; server (a tiny random Llama on CPU) and attacker in "
            "separate processes on 127.0.0.1, all three servers in the same run.",
            "",
            table(rows),
            "",
            "- `before`: uvicorn's `limit_concurrency` (what `judgelm serve` set before), which counts idle "
            "connections: past it every request, `/health` included, gets 503 without Retry-After. `guard`: "
            "`judgelm serve` now (header deadline 10 s, keep-alive 5 s, 4,096 connections, the oldest idle "
            "one closed at the cap). `guard-cap-1024`: with `--max-connections 1024`.",
            "- Every measured request opens a fresh connection (a new client must get in). `answered`: 200 "
            "within 30 s; `p50 ms`: median latency of those; `503` / `failed`: refused / no answer.",
            "- `attack closed`: attack connections the server had closed (idle: when the measurement ended; "
            f"slowloris: within {args.slowloris_seconds:.0f} s, one header line every 2 s).",
        ]
    )
    print(text)
    if args.write_results:
        write_results(text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
