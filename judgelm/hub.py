"""Where a checkpoint's files come from: a local folder, a local ``.gguf`` file, or a Hugging Face Hub
repo, decided once, with the errors a new user meets said plainly:

- a path that does not exist is "no such folder", not the hub's "Repo id must be in the form …";
- an unreachable hub is found by one quick request (no retries) instead of ~50 s of retried
  downloads: the repo's snapshot already in the local cache is then used (as a local folder, so
  nothing downstream retries either), or the error says once how to use a local folder or
  ``HF_HUB_OFFLINE=1``. With ``HF_HUB_OFFLINE=1`` a cached repo is read the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from judgelm.errors import ModelLoadError

__all__ = ["PROBE_TIMEOUT_S", "Source", "hub_file", "resolve_source"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0  # one request decides whether the hub can be reached
PROBE_REUSE_S = 60.0  # judge.json, tokenizer and weights of one load share the answer


@dataclass(frozen=True)
class Source:
    """A checkpoint location: ``path`` is a local folder (a hub snapshot in the cache counts) or a
    reachable hub repo id; ``gguf_file`` names a file in it."""

    kind: Literal["folder", "hub"]
    path: str
    gguf_file: str | None = None

    @property
    def is_local(self) -> bool:
        return self.kind == "folder"


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


_PROBED: dict[str, tuple[float, str | None]] = {}  # url -> (when, result): one probe per load
_WARNED: set[str] = set()  # snapshots already announced as used without the hub


def _probe(repo: str, revision: str | None) -> str | None:
    """``None`` when the hub answers (any HTTP status), else why it cannot be reached."""
    from huggingface_hub import constants, get_session

    url = f"{constants.ENDPOINT}/api/models/{repo}" + (f"/revision/{revision}" if revision else "")
    when, result = _PROBED.get(url, (0.0, None))
    if time.monotonic() - when < PROBE_REUSE_S:
        return result
    try:
        get_session().head(url, timeout=PROBE_TIMEOUT_S, follow_redirects=True)
        result = None
    except Exception as e:  # the client's connect/timeout/network errors: the hub is unreachable
        result = f"{type(e).__name__}: {e}"
    _PROBED[url] = (time.monotonic(), result)
    return result


def _cached_snapshot(repo: str, revision: str | None) -> str | None:
    """The folder of the repo's snapshot in the local cache, if there is one."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo, revision=revision, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError), or a revision never fetched
        return None


def _looks_like_path(name: str) -> bool:
    from huggingface_hub.utils import validate_repo_id

    if name.startswith((".", "/", "~")) or "\\" in name or name.endswith((".gguf", ".safetensors", ".bin")):
        return True
    try:
        validate_repo_id(name)
    except ValueError:  # HFValidationError
        return True
    return False


def resolve_source(name: str, revision: str | None = None) -> Source:
    """Classify ``name`` (a folder, a ``.gguf`` file or a hub repo id) and check that it can be read."""
    path = Path(name).expanduser()
    if path.is_dir():
        return Source("folder", str(path))
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"{name} is a file; pass the folder that holds the checkpoint (or a .gguf file)")
        return Source("folder", str(path.parent), gguf_file=path.name)
    if _looks_like_path(name):
        raise ModelLoadError(f"no such folder or file: {name}")
    hint = f"pass a local folder (--model ./path/to/{name.split('/')[-1]})"
    if _offline():
        snapshot = _cached_snapshot(name, revision)
        if snapshot is None:
            raise ModelLoadError(
                f"{name!r} is not a local folder and is not in the Hugging Face cache, and HF_HUB_OFFLINE is set: "
                f"{hint}, or download it once with the hub reachable"
            )
        return Source("folder", snapshot)
    why = _probe(name, revision)
    if why is None:
        return Source("hub", name)
    snapshot = _cached_snapshot(name, revision)
    if snapshot is not None:
        if snapshot not in _WARNED:
            _WARNED.add(snapshot)
            log.warning("judgelm: the Hugging Face Hub cannot be reached (%s); using the cached %s", why, name)
        return Source("folder", snapshot)
    from huggingface_hub import constants

    raise ModelLoadError(
        f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} to download {name!r} ({why}); {hint}, "
        "or set HF_HUB_OFFLINE=1 to use models already in the local cache"
    )


def hub_file(source: Source, filename: str, revision: str | None = None) -> Path | None:
    """One file of a checkpoint, or ``None`` when it has none (or it cannot be fetched now)."""
    if source.is_local:
        path = Path(source.path) / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError

    try:
        return Path(hf_hub_download(source.path, filename, revision=revision))
    except (EntryNotFoundError, OSError, ValueError) as e:  # missing here, not cached, not reachable
        log.debug("no %s in %s: %s", filename, source.path, e)
        return None
