"""The cache of converted GGUF weights (`judgelm.engine.weights_cache`): an entry is used only when
complete, concurrent first runs agree on one entry, a damaged entry is rebuilt, and a cache that
cannot be written never fails a load. (The demo judge through it: tests/test_smollm2.py.)"""

from __future__ import annotations

import threading
import time

import pytest

from judgelm.engine import weights_cache


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(weights_cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return path


def writer(calls: list[int], delay: float = 0.0):
    def write(folder):
        calls.append(1)
        (folder / "model.safetensors").write_bytes(b"w" * 1000)
        time.sleep(delay)
        (folder / "config.json").write_text("{}")

    return write


def test_an_entry_is_found_by_the_file_hash_and_versions(root, gguf):
    assert weights_cache.lookup(gguf) is None
    calls: list[int] = []
    entry = weights_cache.store(gguf, writer(calls))
    assert entry is not None and entry.parent == root / "gguf" and calls == [1]
    assert weights_cache.lookup(gguf) == entry
    assert (entry / "model.safetensors").stat().st_size == 1000
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # no temporary folder left
    gguf.write_bytes(gguf.read_bytes() + b"!")  # another file: another entry
    assert weights_cache.lookup(gguf) is None


def test_a_damaged_entry_is_not_used_and_is_rebuilt(root, gguf):
    entry = weights_cache.store(gguf, writer([]))
    assert entry is not None
    with (entry / "model.safetensors").open("r+b") as f:
        f.truncate(10)  # a half-written or damaged weights file
    assert weights_cache.lookup(gguf) is None
    calls: list[int] = []
    assert weights_cache.store(gguf, writer(calls)) == entry and calls == [1]
    assert weights_cache.lookup(gguf) == entry


def test_a_crashed_conversion_leaves_nothing_that_is_read(root, gguf):
    def crash(folder):
        (folder / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    assert weights_cache.store(gguf, crash) is None  # logged, not raised: the load goes on
    assert weights_cache.lookup(gguf) is None
    assert not any(p.name.startswith(".tmp") for p in (root / "gguf").iterdir())


def test_concurrent_first_runs_agree_on_one_complete_entry(root, gguf):
    calls: list[int] = []
    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(weights_cache.store(gguf, writer(calls, delay=0.2))))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entry = weights_cache.lookup(gguf)
    assert entry is not None and got == [entry] * 3 and len(calls) == 3
    assert [p.name for p in (root / "gguf").iterdir()] == [entry.name]


def test_the_cache_can_be_turned_off_or_be_unwritable(tmp_path, gguf, monkeypatch, caplog):
    monkeypatch.setenv(weights_cache.ENV, "off")
    assert weights_cache.cache_root() is None
    assert weights_cache.store(gguf, writer([])) is None and weights_cache.lookup(gguf) is None
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv(weights_cache.ENV, str(blocker))
    assert weights_cache.store(gguf, writer([])) is None
    assert "could not cache" in caplog.text
