"""A cache of de-quantized GGUF checkpoints as safetensors folders, so the demo judge loads in about
a second instead of parsing and de-quantizing its GGUF file (~18 s on 2 cores) on every run.

An entry is ``<root>/gguf/<key>/``: what ``save_pretrained`` writes (config, safetensors weights,
tokenizer files) and ``judgelm-cache.json``, the manifest. The key is the GGUF file's SHA-256 and
the judgelm and transformers versions: another file, or another version of the code that converts
it, is another entry. The root is ``$JUDGELM_CACHE_DIR``, else ``$XDG_CACHE_HOME/judgelm``, else
``~/.cache/judgelm``; ``JUDGELM_CACHE_DIR=off`` turns the cache off.

Safe against concurrent first runs and half-written entries: an entry is written into a private
temporary folder, its manifest last, and renamed into place in one step (atomic within a
filesystem); when two processes race, the second rename fails and that copy is dropped. A reader
uses an entry only when its manifest is there and names this file's hash, and every file it lists
has its recorded size; a caller whose load from an entry fails anyway `discard`s it (renamed away,
then deleted) and converts again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["ENV", "cache_root", "discard", "file_sha256", "lookup", "store"]

log = logging.getLogger(__name__)

ENV = "JUDGELM_CACHE_DIR"
MANIFEST = "judgelm-cache.json"
_OFF = ("", "0", "off", "none", "false")


def cache_root() -> Path | None:
    """Where cached conversions live (None: caching turned off)."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "judgelm"


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # ~0.1 s for the 98 MB demo file


def _versions() -> str:
    import transformers

    from judgelm.version import __version__

    return f"judgelm-{__version__}_transformers-{transformers.__version__}"


def _entry(root: Path, digest: str) -> Path:
    return root / "gguf" / f"{digest[:24]}_{_versions()}"


def lookup(gguf: str | Path, digest: str | None = None) -> Path | None:
    """The complete entry for ``gguf``, or None."""
    root = cache_root()
    if root is None:
        return None
    digest = digest or file_sha256(gguf)
    entry = _entry(root, digest)
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        complete = manifest["sha256"] == digest and all(
            (entry / name).stat().st_size == size for name, size in manifest["files"].items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent, half-deleted, or not ours
    return entry if complete else None


def store(gguf: str | Path, write: Callable[[Path], None], digest: str | None = None) -> Path | None:
    """Convert ``gguf`` once: ``write(folder)`` fills a fresh folder, which becomes the entry.
    Returns the entry (ours or a concurrent writer's), or None when it cannot be written (the
    failure is logged once: the cache is an optimisation, never an error)."""
    root = cache_root()
    if root is None:
        return None
    digest = digest or file_sha256(gguf)
    entry = _entry(root, digest)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        if entry.exists() and lookup(gguf, digest) is None:
            discard(entry)  # a half-written or damaged entry in the way
        tmp.mkdir(parents=True)
        write(tmp)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"sha256": digest, "source": str(gguf), "versions": _versions(), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        try:
            tmp.rename(entry)
        except OSError:  # another process renamed its copy first (or a broken entry is in the way)
            if lookup(gguf, digest) is None:
                raise
        return entry
    except OSError as e:
        log.warning("judgelm: could not cache the converted weights in %s (%s); they load from GGUF", root, e)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def discard(entry: Path) -> None:
    """Remove an entry that failed to load (moved aside first: a concurrent reader sees it whole
    or not at all)."""
    aside = entry.parent / f".bad-{entry.name}-{uuid.uuid4().hex[:8]}"
    try:
        entry.rename(aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)
