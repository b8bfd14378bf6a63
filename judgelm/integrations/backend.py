"""Where the reward adapters get verdicts from: a `Judge` in this process, or a running
``judgelm serve``. Both take samples + `JudgeOptions` and give verdicts, sync or async, so every
adapter works the same against either.

Both pickle, so a reward function can be sent to another process (TRL's experimental
``AsyncGRPOTrainer`` pickles its reward functions into a spawned child): a remote backend travels
as its URL and settings; a local one travels as its loader and loads the judge on first use
there. A local backend around an already loaded `Judge` refuses to pickle (it would copy the
model), naming what to pass instead.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
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


def _ray_actor_id() -> str | None:
    """The id of the Ray actor this code runs in, if any (Ray is never imported for this)."""
    ray = sys.modules.get("ray")
    if ray is None or not getattr(ray, "is_initialized", lambda: False)():
        return None
    try:
        return ray.get_runtime_context().get_actor_id()
    except Exception:  # an older or partial Ray: no actor context to report
        return None


def _warn_if_in_ray_actor() -> None:
    actor = _ray_actor_id()
    if actor is not None:
        warnings.warn(
            f"judgelm: a local Judge was loaded inside Ray actor {actor}. Trainers start several such "
            "workers (veRL: reward.num_workers, 8 by default; OpenRLHF: one per vLLM engine), each with its "
            "own copy of the model. Serve the judge once with `judgelm serve` and pass its URL instead.",
            RuntimeWarning,
            stacklevel=3,
        )


class LocalBackend:
    """A `Judge` in this process. Calls are serialised (one model), async ones run in a thread so
    the caller's event loop keeps going while the model works.

    ``judge`` is a loaded `Judge`, or a zero-argument loader returning one (e.g.
    ``functools.partial(Judge.from_pretrained, "BAAI/JudgeLM-7B-v1.0")``, or
    `LocalBackend.from_pretrained`), run on first use: only a loader can be pickled."""

    def __init__(self, judge: Any):
        self._loader: Callable[[], Any] | None = None
        self._judge: Any = None
        if callable(getattr(judge, "judge", None)):
            self._judge = judge
            _warn_if_in_ray_actor()
        elif callable(judge):
            self._loader = judge
        else:
            raise TypeError(f"expected a Judge or a zero-argument loader, got {type(judge).__name__}")
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, name_or_path: str | None, **kwargs: Any) -> LocalBackend:
        """A backend that loads ``Judge.from_pretrained(name_or_path, **kwargs)`` on first use."""
        from judgelm.judge import Judge

        return cls(functools.partial(Judge.from_pretrained, name_or_path, **kwargs))

    @property
    def judge_(self) -> Any:
        """The judge, loaded now if it was given as a loader."""
        if self._judge is None:
            with self._lock:
                if self._judge is None:
                    self._judge = self._loader()  # type: ignore[misc]
                    _warn_if_in_ray_actor()
        return self._judge

    @property
    def score_range(self) -> tuple[float, float]:
        config = getattr(self.judge_, "config", None)
        return config.score_range if config is not None else DEFAULT_SCORE_RANGE

    def judge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        if not samples:
            return []
        judge = self.judge_
        with self._lock:
            return judge.judge(list(samples), **options.as_kwargs())

    async def ajudge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        return await asyncio.to_thread(self.judge, samples, options)

    def __getstate__(self) -> dict[str, Any]:
        if self._loader is None:
            raise TypeError(
                "a reward backed by a loaded Judge cannot be sent to another process (that would copy the "
                "model). Pass a loader instead, e.g. LocalBackend.from_pretrained('BAAI/JudgeLM-7B-v1.0') "
                "(loaded there on first use), or the URL of a running `judgelm serve`."
            )
        return {"loader": self._loader}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._loader, self._judge, self._lock = state["loader"], None, threading.Lock()


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

        self.url, self.api_key, self.timeout = url, api_key, timeout
        self.client = JudgeClient(url, api_key=api_key, timeout=timeout)
        self.score_range = score_range

    def judge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        return self.client.judge(samples, options)

    async def ajudge(self, samples: Sequence[Sample], options: JudgeOptions) -> list[Verdict]:
        return await self.client.ajudge(samples, options)

    def __reduce__(self) -> tuple[Any, ...]:
        # The settings travel; the HTTP connections (bound to this process) are made anew there.
        return (
            functools.partial(RemoteBackend, api_key=self.api_key, timeout=self.timeout, score_range=self.score_range),
            (self.url,),
        )


def as_backend(target: Any, *, api_key: str | None = None) -> JudgeBackend:
    """A backend for ``target``: a `Judge`, a zero-argument loader of one, a server URL
    (``http://...``), or a backend."""
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
    if callable(target) and not hasattr(target, "judge"):
        return LocalBackend(target)
    raise TypeError(f"expected a Judge, a loader, a server URL or a JudgeBackend, got {type(target).__name__}")
