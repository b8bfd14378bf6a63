"""The server under hostile clients: every malformed body is a 4xx naming the field (checked
before the model runs), every answer is valid JSON, and idle or slow connections cannot starve
real clients (a header deadline, uvicorn's keep-alive timeout, a connection cap that closes the
oldest idle connection instead of refusing new ones)."""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from test_serve_support import CountingJudge, grading_judge

from judgelm.serve import BackgroundServer, ServeConfig


@contextmanager
def running(judge, **config):
    srv = BackgroundServer(judge, ServeConfig(**config), graceful_timeout_s=5).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            yield srv, client
    finally:
        srv.stop()


def ok_record(i=0):
    return {"id": f"r{i}", "question": "What is 2+2?", "answers": ["good: 4", "bad: 5"]}


def post_raw(client, path, body: bytes):
    return client.post(path, content=body, headers={"content-type": "application/json"})


HOSTILE_BODIES = [
    # (raw body, the field the 400 must name (None: the body as a whole))
    (b'{"samples": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}", None),
    (b'{"samples": [{"question": "q\\ud800", "answers": ["a", "b"]}]}', "samples[0].question"),
    (b'{"samples": [{"question": "q", "answers": ["a", "b"], "note": "\\udfff"}]}', "samples[0].note"),
    (
        b'{"samples": [{"conversations": [[{"role": ["user"], "content": "hi"}, '
        b'{"role": "assistant", "content": "yo"}]], "mode": "chat"}]}',
        "samples[0].conversations[0][0].role",
    ),
    (
        b'{"samples": [{"conversations": [[{"role": {"r": 1}, "content": "hi"}]], "mode": "chat"}]}',
        "samples[0].conversations[0][0].role",
    ),
    (b'{"samples": [{"question": "q", "answers": {"first": "x", "second": "y"}}]}', "samples[0].answers"),
    (b'{"samples": [{"question": "q", "answers": ["a", "b"], "id": 1' + b"0" * 5000 + b"}]}", None),
    (b'{"samples": [{"question": "q\xff", "answers": ["a", "b"]}]}', None),
    (b'{"samples": [{"question": "q"}]}', "samples[0].answers"),
]


HOSTILE_IDS = [
    "deep-nesting",
    "surrogate-in-question",
    "surrogate-in-extra-field",
    "role-list",
    "role-object",
    "answers-object",
    "5000-digit-int",
    "invalid-utf8",
    "no-answers",
]


@pytest.mark.parametrize(("body", "field"), HOSTILE_BODIES, ids=HOSTILE_IDS)
def test_malformed_bodies_are_a_400_naming_the_field_before_the_model_runs(body, field):
    judge = CountingJudge(grading_judge())
    with running(judge) as (_, c):
        for path in ("/v1/judge", "/get_reward"):
            r = post_raw(c, path, body)
            assert r.status_code == 400, (path, r.status_code, r.text[:300])
            err = r.json()["error"]  # a valid JSON answer
            if path == "/v1/judge" and field is not None:
                assert err["field"] == field, err
        assert judge.calls == []  # refused before any model time
        assert c.get("/health").status_code == 200


def test_nan_is_never_written_as_bare_nan():
    judge = grading_judge()
    with running(judge) as (_, c):
        r = post_raw(c, "/v1/judge", b'{"samples": [{"question": "q", "answers": ["good: 4", "bad"], "x": NaN}]}')
        assert r.status_code == 200
        assert b"NaN" not in r.content and b"Infinity" not in r.content
        assert json.loads(r.content, parse_constant=lambda c: pytest.fail(f"bare {c}"))["results"][0]["x"] is None


# ---- idle and slow connections ---------------------------------------------------------------


@pytest.fixture
def many_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 4500:
        pytest.skip(f"needs ~4,500 file descriptors (hard limit {hard})")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(url_port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", url_port))
        socks.append(s)
    return socks


def test_two_thousand_idle_connections_do_not_starve_real_clients(many_fds):
    """1,400 idle sockets used to make every request, /health included, a 503."""
    judge = grading_judge()
    with running(judge, header_timeout_s=30.0, max_connections=1024) as (srv, _):
        socks = open_idle(srv.port, 2000)
        try:
            time.sleep(0.3)
            for _ in range(3):
                with httpx.Client(base_url=srv.url, timeout=10) as fresh:  # a new connection each time
                    assert fresh.get("/health").status_code == 200
                    r = fresh.post("/v1/judge", json={"samples": [ok_record()]})
                    assert r.status_code == 200 and r.json()["results"][0]["verdict"]["winner"] == 0
        finally:
            for s in socks:
                s.close()
        assert srv.guard.evicted >= 2000 - 1024


def test_when_every_connection_is_busy_a_new_one_gets_503_with_retry_after():
    judge = CountingJudge(grading_judge(), gated=True)
    with running(judge, max_connections=2) as (srv, _):
        results = []

        def busy():
            with httpx.Client(base_url=srv.url, timeout=30) as cl:
                results.append(cl.post("/v1/judge", json={"samples": [ok_record()]}).status_code)

        threads = [threading.Thread(target=busy) for _ in range(2)]
        for t in threads:
            t.start()
        assert judge.entered.wait(10)
        time.sleep(0.3)  # both requests are in flight (one in the model, one queued)
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.settimeout(5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 503") and b"retry-after:" in head.lower()
        judge.gate.set()
        for t in threads:
            t.join()
        assert results == [200, 200]


def test_slowloris_is_cut_off_at_the_header_deadline():
    judge = grading_judge()
    with running(judge, header_timeout_s=1.5) as (srv, c):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.settimeout(0.1)
        start, closed_at = time.monotonic(), None
        s.sendall(b"GET /health HTTP/1.1\r\n")
        for k in range(40):  # one header every 0.25 s, never the blank line
            try:
                s.sendall(f"X-Slow-{k}: 1\r\n".encode())
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    closed_at = time.monotonic() - start
                    break
            except TimeoutError:
                pass
            except OSError:
                closed_at = time.monotonic() - start
                break
            time.sleep(0.25)
        s.close()
        assert closed_at is not None and 1.0 < closed_at < 4.0, closed_at
        assert c.get("/health").status_code == 200
        assert srv.guard.timed_out >= 1


def test_a_silent_connection_is_closed_at_the_header_deadline():
    with running(grading_judge(), header_timeout_s=0.5) as (srv, _):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.settimeout(5)
        start = time.monotonic()
        data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 408") or data == b""
        assert time.monotonic() - start < 3
        s.close()


def test_keep_alive_connections_serve_many_requests_and_idle_ones_close():
    with running(grading_judge(), header_timeout_s=0.5, keep_alive_s=1) as (srv, c):
        for _ in range(5):  # one pooled connection, requests well apart from the header deadline
            assert c.get("/health").status_code == 200
            time.sleep(0.6)
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.settimeout(5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        while s.recv(4096):  # the rest of the body, then the close after keep_alive_s
            pass
        assert time.monotonic() - start < 4
        s.close()


def test_a_slow_body_gets_408():
    with running(grading_judge(), body_timeout_s=0.5) as (srv, _):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.settimeout(5)
        head = b"POST /v1/judge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        s.sendall(head + b"{")  # then nothing: 99 bytes never come
        data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        s.close()


def test_serve_flags_set_the_connection_limits():
    import argparse

    from judgelm.cli.serve_cmd import _add_arguments, build_config

    p = argparse.ArgumentParser()
    _add_arguments(p)
    argv = ["--max-connections", "64", "--header-timeout", "3", "--keep-alive-timeout", "2", "--body-timeout", "9"]
    config = build_config(p.parse_args(argv))
    assert (config.max_connections, config.header_timeout_s, config.keep_alive_s, config.body_timeout_s) == (
        64,
        3,
        2,
        9,
    )
    with pytest.raises(ValueError, match="header_timeout_s"):
        ServeConfig(header_timeout_s=0)
