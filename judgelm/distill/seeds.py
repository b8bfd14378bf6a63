"""Seed tasks and the answers to them, read from JSONL; a bad line becomes a failure record naming
its file, line and field, and the other lines go on.

Seeds: ``{"question_id" | "id", "question" | "question_body" | "instruction", "reference"?: str or
{"text"}, "answers"?: {model_id: text} or [{"model_id" | "model", "text" | "answer"}]}``.
Answer files (``--answers``, FastChat's answer layout): ``{"question_id", "model_id", "text" |
"answer"}`` per line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Seed", "read_answer_file", "read_seeds"]


@dataclass
class Seed:
    question_id: str
    question: str
    reference: str | None = None
    answers: dict[str, str] = field(default_factory=dict)  # model id -> answer text (insertion order)


def _failure(path: Path, line: int, field_name: str | None, reason: str) -> dict[str, Any]:
    return {"stage": "input", "file": path.name, "line": line, "field": field_name, "reason": reason}


def _lines(path: Path) -> Iterator[tuple[int, Any, dict[str, Any] | None]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    yield n, None, _failure(path, n, None, f"not valid JSON ({e.msg})")
                    continue
                if not isinstance(obj, Mapping):
                    yield n, None, _failure(path, n, None, "a line must be a JSON object")
                    continue
                yield n, obj, None


def _text(obj: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str | None, str]:
    for k in keys:
        if k in obj:
            v = obj[k]
            return (v if isinstance(v, str) and v.strip() else None), k
    return None, keys[0]


def _answers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if not isinstance(item, Mapping):
                raise ValueError("each answer must be an object with model_id and text")
            pairs.append((item.get("model_id", item.get("model")), item.get("text", item.get("answer"))))
    else:
        raise ValueError("must be {model_id: text} or a list of {model_id, text}")
    out = {}
    for model, text in pairs:
        if not isinstance(model, str | int) or not isinstance(text, str):
            raise ValueError("each answer needs a model id and a text")
        out[str(model)] = text
    return out


def read_seeds(path: str | os.PathLike[str]) -> tuple[list[Seed], list[dict[str, Any]]]:
    """The seeds of a JSONL file, and a failure record per bad line (duplicates included)."""
    path = Path(path)
    seeds: dict[str, Seed] = {}
    failures = []
    for n, obj, bad in _lines(path):
        if bad is not None:
            failures.append(bad)
            continue
        qid = obj.get("question_id", obj.get("id"))
        question, key = _text(obj, ("question", "question_body", "instruction"))
        ref = obj.get("reference")
        ref = ref.get("text") if isinstance(ref, Mapping) else ref
        try:
            if qid is None or isinstance(qid, dict | list):
                raise KeyError("question_id")
            if question is None:
                raise KeyError(key)
            if ref is not None and not isinstance(ref, str):
                raise KeyError("reference")
            answers = _answers(obj.get("answers"))
        except KeyError as e:
            failures.append(_failure(path, n, e.args[0], "missing or not a non-empty string"))
            continue
        except ValueError as e:
            failures.append(_failure(path, n, "answers", str(e)))
            continue
        if str(qid) in seeds:
            failures.append(_failure(path, n, "question_id", f"duplicate question id {qid!r}"))
            continue
        seeds[str(qid)] = Seed(str(qid), question, ref or None, answers)
    return list(seeds.values()), failures


def read_answer_file(path: str | os.PathLike[str], seeds: Mapping[str, Seed]) -> list[dict[str, Any]]:
    """Add the answers of a FastChat-style answer file to ``seeds``; returns failure records."""
    path = Path(path)
    failures = []
    for n, obj, bad in _lines(path):
        if bad is not None:
            failures.append(bad)
            continue
        text, key = _text(obj, ("text", "answer"))
        qid, model = obj.get("question_id"), obj.get("model_id", obj.get("model"))
        if text is None:
            failures.append(_failure(path, n, key, "missing or not a non-empty string"))
        elif not isinstance(model, str | int):
            failures.append(_failure(path, n, "model_id", "missing"))
        elif str(qid) not in seeds:
            failures.append(_failure(path, n, "question_id", f"no seed task with question id {qid!r}"))
        else:
            seeds[str(qid)].answers[str(model)] = text
    return failures
