"""Reading the files benchmarks ship as: JSONL, a JSON array, or a JSON object keyed by id."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from judgelm.errors import InvalidSampleError

__all__ = ["read_json", "read_records"]


def read_json(path: str | os.PathLike[str]) -> Any:
    """A whole JSON document. ``NaN`` literals are accepted (the PandaLM test set has them)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InvalidSampleError(
            f"not valid JSON ({e.msg}, line {e.lineno})", record=path.name
        ) from None


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A list of JSON objects from a JSON array or a JSONL file (decided by the first character)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        data = read_json(path)
    else:
        data = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InvalidSampleError(
                    f"not valid JSON ({e.msg})", record=f"{path.name}:{n}"
                ) from None
    for n, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            raise InvalidSampleError("each record must be a JSON object", record=f"{path.name}:{n}")
    return data
