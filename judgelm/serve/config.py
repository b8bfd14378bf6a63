"""`ServeConfig`: the limits and defaults of one judge server."""

from __future__ import annotations

from dataclasses import dataclass, field

from judgelm.integrations.openrlhf import RewardMapping

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """Server settings. Limits exist so that one client cannot take the server down:

    - ``max_queue``: samples waiting for the model; past it, requests get 503 + Retry-After.
    - ``max_request_samples`` / ``max_body_bytes``: one request's size (413 beyond).
    - ``max_batch_size`` / ``max_wait_ms``: a model call takes up to this many samples, waiting at
      most this long for more to arrive once a request is queued.
    - ``max_connections``: open connections; past it a new connection closes the oldest one with
      no request in flight (idle, or still sending its head), or gets 503 + Retry-After when every
      connection is busy (capped below the process's file-descriptor limit).
    - ``header_timeout_s``: a request's head (request line and headers) must arrive within this
      long of its first byte, or of the connection's opening: silent and slowloris clients get 408.
    - ``keep_alive_s``: an idle keep-alive connection is closed after this long.
    - ``body_timeout_s``: a request body must arrive within this long (408 beyond).
    - ``api_key``: when set, every endpoint but ``/health`` needs ``Authorization: Bearer KEY``.
    - ``reward``: how ``/get_reward`` maps OpenRLHF queries (see `RewardMapping`).
    - ``served_model_name``: the model name of the OpenAI routes (default: the judge's name).
    """

    api_key: str | None = None
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_request_samples: int = 256
    max_body_bytes: int = 8 * 1024 * 1024
    max_new_tokens_limit: int = 2048
    max_connections: int = 4096
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    body_timeout_s: float = 60.0
    reward: RewardMapping = field(default_factory=RewardMapping)
    served_model_name: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_batch_size",
            "max_queue",
            "max_request_samples",
            "max_body_bytes",
            "max_new_tokens_limit",
            "max_connections",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("header_timeout_s", "keep_alive_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        if self.max_request_samples > self.max_queue:
            # A request larger than the whole queue could never be accepted: refuse the setup.
            raise ValueError("max_request_samples must be <= max_queue")
        if self.api_key == "":
            raise ValueError("api_key must be a non-empty string or None")
