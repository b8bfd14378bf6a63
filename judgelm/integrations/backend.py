"""Where the reward adapters get verdicts from: a `Judge` in this process, or a running
``judgelm serve``. Both take samples + `JudgeOptions` and give verdicts, sync or async, so every
adapter works the same against either.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from judgelm.formats.parsing import DEFAULT_SCORE_RANGE
from judgelm.options import JudgeOptions
from judgelm.types import Sample, Verdict

__all__ = ["JudgeBackend", "LocalBackend", "RemoteBackend", "as_backend"]


@runtime_checkable
class JudgeBackend(Protocol):
    score_range: tuple[float, float]

    def judge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]: ...

    async def ajudge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]: ...


class LocalBackend:
    """A `Judge` in this process. Calls are serialised (one model), async ones run in a thread so
    the caller's event loop keeps going while the model works."""

    def __init__(self, judge: Any):
        self.judge_ = judge
        self._lock = threading.Lock()
        config = getattr(judge, "config", None)
        self.score_range = config.score_range if config is not None else DEFAULT_SCORE_RANGE

    def judge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        if not samples:
            return []
        with self._lock:
            return self.judge_.judge(list(samples), **options.as_kwargs())

    async def ajudge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        return await asyncio.to_thread(self.judge, samples, options)


class RemoteBackend:
    """A ``judgelm serve`` at ``url`` (its micro-batcher merges calls from many trainers)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        score_range: tuple[float, float] = DEFAULT_SCORE_RANGE,
    ):
        from judgelm.serve.client import JudgeClient

        self.client = JudgeClient(url, api_key=api_key, timeout=timeout)
        self.score_range = score_range

    def judge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        return self.client.judge(samples, options)

    async def ajudge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        return await self.client.ajudge(samples, options)


def as_backend(target: Any, *, api_key: str | None = None) -> JudgeBackend:
    """A backend for ``target``: a `Judge`, a server URL (``http://...``), or a backend."""
    if isinstance(target, str):
        if not target.startswith(("http://", "https://")):
            raise ValueError(f"a judge server URL starts with http:// or https://, got {target!r}")
        return RemoteBackend(target, api_key=api_key)
    if isinstance(target, LocalBackend | RemoteBackend):
        return target
    if callable(getattr(target, "judge", None)) and hasattr(target, "tokenizer"):
        return LocalBackend(target)
    if isinstance(target, JudgeBackend):
        return target
    raise TypeError(f"expected a Judge, a server URL or a JudgeBackend, got {type(target).__name__}")
