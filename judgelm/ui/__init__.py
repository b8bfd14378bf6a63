"""The judge page: ``judgelm ui`` / `create_ui_app`. Judge side by side, see the score
distributions, ask the judge why, and judge a JSONL file, in the browser; served by the judge
server's own Starlette app (the ``serve`` extra), with no build step (see docs/ui.md)."""

from __future__ import annotations

from typing import Any

__all__ = ["create_ui_app"]


def __getattr__(name: str) -> Any:
    if name == "create_ui_app":
        from judgelm.ui.app import create_ui_app

        return create_ui_app
    raise AttributeError(f"module 'judgelm.ui' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
