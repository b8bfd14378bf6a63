"""``judgelm serve`` as a real process: a tiny saved model, a free loopback port, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_command(args: list[str], *, api_key: str | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m ARGS --port P --device cpu`` in its own process, once its /health answers:
    (process, base URL). Killed afterwards if the test did not stop it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if api_key:
        env["JUDGELM_API_KEY"] = api_key
    port = free_port()
    cmd = [sys.executable, "-m", *args, "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{' '.join(args)} did not come up"
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM, then a clean exit (0, no traceback); returns its stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    return err


def test_serve_command_end_to_end(tiny_model_dir):
    # (python -m judgelm.cli.serve_cmd: the documented module entry point, the same as `judgelm serve`)
    with running_command(["judgelm.cli.serve_cmd", "--model", str(tiny_model_dir)], api_key="k3y") as (proc, url):
        body = {"samples": [{"question": "Q?", "answers": ["a", "b"]}]}
        assert httpx.post(f"{url}/v1/judge", json=body, timeout=30).status_code == 401
        r = httpx.post(f"{url}/v1/judge", json=body, headers={"Authorization": "Bearer k3y"}, timeout=30)
        assert r.status_code == 200
        assert r.json()["results"][0]["verdict"]["provenance"]["model"] == str(tiny_model_dir)
        err = stop(proc)
        assert f"on {url}" in err and "judgelm serve: stopped" in err
