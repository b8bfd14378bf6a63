"""``judgelm serve`` as a real process: a tiny saved model, a free loopback port, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_end_to_end(tiny_model_dir):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JUDGELM_API_KEY": "k3y", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "judgelm.cli.serve_cmd",
        "--model",
        str(tiny_model_dir),
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
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
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        body = {"samples": [{"question": "Q?", "answers": ["a", "b"]}]}
        assert httpx.post(f"{url}/v1/judge", json=body, timeout=30).status_code == 401
        r = httpx.post(f"{url}/v1/judge", json=body, headers={"Authorization": "Bearer k3y"}, timeout=30)
        assert r.status_code == 200
        assert r.json()["results"][0]["verdict"]["provenance"]["model"] == str(tiny_model_dir)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert f"on http://127.0.0.1:{port}" in err and "judgelm serve: stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
