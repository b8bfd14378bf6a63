"""`JudgeClient`: talk to a running ``judgelm serve`` (sync and async).

The reward adapters use it to score against a remote judge exactly as they would in-process:
samples go out as native JSON records, verdicts come back through `verdict_from_dict`. A 503
(the server's queue is full) is retried after the server's Retry-After, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from judgelm.errors import InvalidSampleError, JudgeLMError, MissingDependencyError
from judgelm.options import JudgeOptions
from judgelm.types import Sample, Verdict, verdict_from_dict

__all__ = ["JudgeClient", "RemoteJudgeError"]

_MAX_RETRY_SLEEP_S = 10.0


class RemoteJudgeError(JudgeLMError):
    """The judge server answered with an error (``status`` is the HTTP status)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"judge server answered {status}: {message}")
        self.status = status


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("httpx", "serve", "Calling a judgelm server") from None
    return httpx


def _sample_record(sample: Sample) -> dict[str, Any]:
    if sample.images:
        raise InvalidSampleError("image samples cannot be sent to a judge server", field="images")
    return sample.to_dict()


class JudgeClient:
    """A client for ``judgelm serve`` (``base_url`` like ``http://127.0.0.1:8000``)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        max_retries: int = 8,
    ):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.max_retries = max_retries
        self._sync: Any = None
        self._async: tuple[Any, Any] | None = None  # (event loop, httpx.AsyncClient)

    # ---- plumbing ---------------------------------------------------------------------------
    def _client(self) -> Any:
        if self._sync is None:
            self._sync = _httpx().Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout)
        return self._sync

    def _aclient(self) -> Any:
        # An AsyncClient's connections belong to one event loop: make one per loop.
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (
                loop,
                _httpx().AsyncClient(base_url=self.base_url, headers=self.headers, timeout=self.timeout),
            )
        return self._async[1]

    def _result(self, response: Any) -> dict[str, Any] | None:
        """The JSON body, None for a retryable 503, or an exception for other errors."""
        if response.status_code == 503:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"message": response.text[:500]}}
        if response.status_code >= 400:
            err = body.get("error", {}) if isinstance(body, Mapping) else {}
            message = err.get("message", str(body)) if isinstance(err, Mapping) else str(err)
            if response.status_code in (400, 413, 422) and isinstance(err, Mapping) and err.get("field"):
                raise InvalidSampleError(message, field=err["field"])
            raise RemoteJudgeError(response.status_code, message)
        return body

    @staticmethod
    def _retry_after(response: Any) -> float:
        try:
            return min(float(response.headers.get("retry-after", "1")), _MAX_RETRY_SLEEP_S)
        except ValueError:
            return 1.0

    def _post(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        for _ in range(self.max_retries + 1):
            response = self._client().post(path, json=payload)
            body = self._result(response)
            if body is not None:
                return body
            time.sleep(self._retry_after(response))
        raise RemoteJudgeError(503, f"still overloaded after {self.max_retries} retries")

    async def _apost(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        for _ in range(self.max_retries + 1):
            response = await self._aclient().post(path, json=payload)
            body = self._result(response)
            if body is not None:
                return body
            await asyncio.sleep(self._retry_after(response))
        raise RemoteJudgeError(503, f"still overloaded after {self.max_retries} retries")

    @staticmethod
    def _judge_payload(samples: Sequence[Sample], options: JudgeOptions) -> dict[str, Any]:
        return {"samples": [_sample_record(s) for s in samples], "options": options.to_dict()}

    @staticmethod
    def _verdicts(body: Mapping[str, Any]) -> list[Verdict]:
        return [verdict_from_dict(r["verdict"]) for r in body["results"]]

    # ---- API --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        response = self._client().get("/health")
        response.raise_for_status()
        return response.json()

    def judge(self, samples: Sequence[Sample], options: JudgeOptions | None = None) -> list[Verdict]:
        """`Judge.judge` on the server: one verdict per sample, in order."""
        if not samples:
            return []
        payload = self._judge_payload(samples, options or JudgeOptions())
        return self._verdicts(self._post("/v1/judge", payload))

    async def ajudge(self, samples: Sequence[Sample], options: JudgeOptions | None = None) -> list[Verdict]:
        if not samples:
            return []
        payload = self._judge_payload(samples, options or JudgeOptions())
        return self._verdicts(await self._apost("/v1/judge", payload))

    def get_reward(
        self,
        query: Sequence[str],
        prompts: Sequence[str] | None = None,
        labels: Sequence[str | None] | None = None,
    ) -> dict[str, Any]:
        """The OpenRLHF remote reward call: ``{"rewards", "scores", "extra_logs"}``."""
        return self._post("/get_reward", {"query": list(query), "prompts": prompts, "labels": labels})

    async def aget_reward(
        self,
        query: Sequence[str],
        prompts: Sequence[str] | None = None,
        labels: Sequence[str | None] | None = None,
    ) -> dict[str, Any]:
        return await self._apost("/get_reward", {"query": list(query), "prompts": prompts, "labels": labels})

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async[1].aclose()
            self._async = None

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
