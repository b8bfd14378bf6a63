"""Serving a judge over HTTP: ``judgelm serve`` / `create_app` / `BackgroundServer`, and
`JudgeClient` to call it. Needs the ``serve`` extra (starlette, uvicorn, httpx); names load on
first use, so ``import judgelm.serve`` works without it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BackgroundServer",
    "JudgeClient",
    "JudgeOptions",
    "MicroBatcher",
    "Overloaded",
    "RemoteJudgeError",
    "ServeConfig",
    "ServerMetrics",
    "create_app",
    "serve",
]

_WHERE = {
    "BackgroundServer": "server",
    "serve": "server",
    "JudgeClient": "client",
    "RemoteJudgeError": "client",
    "JudgeOptions": "options",
    "MicroBatcher": "batcher",
    "Overloaded": "batcher",
    "ServeConfig": "config",
    "ServerMetrics": "metrics",
    "create_app": "app",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"judgelm.serve.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'judgelm.serve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
