"""JSONL in and out, built so that a batch job never loses or repeats work.

Input records are read in two dialects, detected per record:

- native: ``{"id", "mode", "question", "answers": [...], "reference", "gold", "conversations",
  "images", "rubric", "input", "scale"}`` (image paths relative to the JSONL file);
- JudgeLM: ``question_id``, ``question_body``, ``answer1_body``, ``answer2_body``, ...,
  ``reference`` (``{"text": ...}`` or a string);
- Prometheus / PandaLM: ``instruction`` with ``response`` (absolute grading), ``response_A`` and
  ``response_B`` (relative), or ``response1`` and ``response2`` (PandaLM); ``reference_answer``,
  ``rubric``, ``input`` as upstream names them.

Reading is total: every non-blank line (lines end at ``\n`` only) becomes exactly one `Record`,
a sample or an ``error`` naming the file, line, id and field; the others go on. Text that
cannot be represented (invalid UTF-8, lone surrogates), nesting and number sizes past the limits
of `judgelm.strict_json` are errors of their record, never of the job. Every record has a key,
unique in the file (its id, else ``line-N``), and a digest of its text.

The output side (an append-only JSONL that knows which job it belongs to, so a re-run resumes
exactly) is `judgelm.output_file`; its names are re-exported here.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm import strict_json
from judgelm.errors import InvalidSampleError, JobError
from judgelm.output_file import JobStamp, ResultWriter, error_record, output_record, write_results
from judgelm.types import Sample, kind_of

__all__ = [
    "JobStamp",
    "Record",
    "ResultWriter",
    "error_record",
    "output_record",
    "read_samples",
    "sample_from_record",
    "write_results",
]

log = logging.getLogger(__name__)

_NATIVE_FIELDS = (
    "id",
    "mode",
    "question",
    "answers",
    "reference",
    "gold",
    "conversations",
    "images",
    "rubric",
    "input",
    "scale",
)
# upstream Prometheus / PandaLM field names: answers in these keys, in this order
_UPSTREAM_ANSWERS = (("response",), ("response_A", "response_B"), ("response1", "response2"))
_UPSTREAM_FIELDS = ("instruction", "reference_answer", *(k for keys in _UPSTREAM_ANSWERS for k in keys))


@dataclass(frozen=True)
class Record:
    """One input line: its sample, or the error that kept it from becoming one.

    ``key`` is unique in its file (the record's id, else ``line-N``); ``digest`` identifies the
    line's text, so an output file can tell whether it was judged from this very record."""

    line: int
    key: str
    raw: Any
    sample: Sample | None = None
    error: InvalidSampleError | None = None
    digest: str | None = None
    source: str | None = None  # where it was read: "in.jsonl:12"
    id: str | None = None  # its own id (None when ``key`` is made up: line-N)

    def locate(self, error: InvalidSampleError) -> InvalidSampleError:
        """``error`` as this record's: ``in.jsonl:12 (id s3), field ...``."""
        return error.at(self.source or f"line {self.line}", self.id)


def _reference(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return value["text"]
    raise InvalidSampleError("must be a string or {'text': ...}", field="reference")


def _judgelm_answers(obj: Mapping[str, Any]) -> tuple[str, ...]:
    answers, k = [], 1
    while f"answer{k}_body" in obj:
        answers.append(obj[f"answer{k}_body"])
        k += 1
    if not answers:
        raise InvalidSampleError("a JudgeLM record needs answer1_body, answer2_body, ...", field="answer1_body")
    for i, a in enumerate(answers, start=1):
        if not isinstance(a, str):
            raise InvalidSampleError(f"must be a string, got {type(a).__name__}", field=f"answer{i}_body")
    return tuple(answers)


def sample_from_record(obj: Any, *, mode: str | None = None, base_dir: Path | None = None) -> Sample:
    """A `Sample` from one JSON record of either dialect (raises `InvalidSampleError`)."""
    if not isinstance(obj, Mapping):
        raise InvalidSampleError(f"a record must be a JSON object, got {type(obj).__name__}")
    if "question_body" in obj:  # JudgeLM dialect
        rid = obj.get("question_id", obj.get("id"))
        return Sample(
            question=obj["question_body"],
            answers=_judgelm_answers(obj),
            reference=_reference(obj.get("reference")),
            id=rid,
            mode=mode or obj.get("mode"),
            meta={k: v for k, v in obj.items() if k.endswith("_model_id")},
        )
    if "instruction" in obj and "question" not in obj:  # Prometheus / PandaLM field names
        return _upstream_sample(obj, mode)
    if "question" not in obj and "conversations" not in obj:
        raise InvalidSampleError(
            "needs 'question' (native), 'question_body' (JudgeLM) or 'instruction' (Prometheus, PandaLM)",
            field="question",
        )
    if "answers" not in obj and "conversations" not in obj:
        raise InvalidSampleError(
            "missing; give the answers to judge as a list of strings (1 to grade, 2 to compare, 3 or more to rank)",
            field="answers",
        )
    answers = obj.get("answers", ())
    if isinstance(answers, str):
        raise InvalidSampleError(
            'must be a list of strings, not a string; write ["answer 1", "answer 2"]', field="answers"
        )
    return Sample(
        question=obj.get("question", ""),
        answers=answers,
        reference=_reference(obj.get("reference")),
        gold=obj.get("gold"),
        conversations=obj.get("conversations") or (),
        images=_image_paths(obj.get("images"), base_dir),
        id=obj.get("id"),
        mode=mode or obj.get("mode"),
        meta={k: v for k, v in obj.items() if k not in _NATIVE_FIELDS},
        rubric=obj.get("rubric"),
        input=obj.get("input"),
        scale=obj.get("scale"),
    )


def _image_paths(value: Any, base_dir: Path | None) -> tuple[str, ...]:
    """A record's ``images``: one path or a list of paths (relative ones from ``base_dir``)."""
    if value is None:
        return ()
    if not isinstance(value, str | list):
        raise InvalidSampleError(
            f'must be a list of image paths, got {kind_of(value)}; write "images": ["picture.png"]', field="images"
        )
    paths = [value] if isinstance(value, str) else value
    for i, p in enumerate(paths):
        if not isinstance(p, str):
            raise InvalidSampleError(
                f"must be an image path (a string), got {kind_of(p)}; give the file's path", field=f"images[{i}]"
            )
    if base_dir is None:
        return tuple(paths)
    return tuple(p if os.path.isabs(p) or "://" in p else str(base_dir / p) for p in paths)


def _upstream_sample(obj: Mapping[str, Any], mode: str | None) -> Sample:
    for keys in _UPSTREAM_ANSWERS:
        if all(k in obj for k in keys):
            answers = tuple(obj[k] for k in keys)
            break
    else:
        raise InvalidSampleError(
            "needs 'response', 'response_A'/'response_B' or 'response1'/'response2'", field="response"
        )
    rid = obj.get("id", obj.get("idx"))
    return Sample(
        question=obj["instruction"],
        answers=answers,
        reference=_reference(obj.get("reference_answer", obj.get("reference"))),
        id=rid,
        mode=mode or obj.get("mode"),
        meta={k: v for k, v in obj.items() if k not in _NATIVE_FIELDS + _UPSTREAM_FIELDS},
        rubric=obj.get("rubric"),
        input=obj.get("input") or None,
        scale=obj.get("scale"),
    )


# JSON's whitespace; a line of nothing else is blank (a form feed is not JSON whitespace: an error)
_JSON_SPACE = b" \t\r"


def read_samples(path: str | os.PathLike[str], *, mode: str | None = None) -> Iterator[Record]:
    """Read a JSONL file of samples; yields exactly one `Record` per non-blank line, errors
    included (see the module docstring). Raises `JobError` only when the file cannot be read."""
    path = Path(path)
    try:
        f = path.open("rb")
    except IsADirectoryError:
        raise JobError(f"{path}: is a folder; give a JSONL file") from None
    except OSError as e:
        raise JobError(f"{path}: cannot read it ({e.strerror or e})") from None
    keys: dict[str, int] = {}  # key -> the line that holds it
    with f:
        # binary lines end at b"\n" only: a bare "\r" inside a record never splits it
        for n, line in enumerate(f, start=1):
            text = line.strip(_JSON_SPACE + b"\n")
            if not text:
                continue
            yield _read_record(text, n, f"{path.name}:{n}", keys, mode, path.parent)


def _read_record(text: bytes, n: int, where: str, keys: dict[str, int], mode: str | None, base_dir: Path) -> Record:
    digest = hashlib.sha256(text).hexdigest()[:16]
    raw: Any = None
    rid: str | None = None
    try:
        raw = strict_json.parse(text)
        rid = _explicit_id(raw)
        strict_json.check_text(raw, text)
        if rid is not None and rid in keys:
            raise InvalidSampleError(
                f"duplicate id {rid!r} (line {keys[rid]} has it; a record without an id is keyed line-N); "
                "give each record its own id",
                field="id",
            )
        sample = sample_from_record(raw, mode=mode, base_dir=base_dir)
    except InvalidSampleError as e:
        if raw is not None and strict_json.unencodable_path(raw) is not None:
            raw = None  # (only JSON within limits is echoed into the output)
        rid = rid if raw is not None else _id_hint(text)
        key = _claim(keys, f"{rid}#line-{n}" if rid is not None and rid in keys else rid or f"line-{n}", n)
        return Record(n, key, raw, error=e.at(where, rid), digest=digest, source=where, id=rid)
    except Exception as e:  # a judgelm bug must not stop the job either: this record reports it
        log.debug("reading %s failed", where, exc_info=True)
        err = InvalidSampleError(f"could not be read ({type(e).__name__}: {e}); a judgelm bug, please report it")
        key = _claim(keys, rid or f"line-{n}", n)
        return Record(n, key, None, error=err.at(where, rid), digest=digest, source=where, id=rid)
    key = _claim(keys, rid or f"line-{n}", n)
    sample = sample if sample.id else sample.replace(id=key)
    return Record(n, key, raw, sample=sample, digest=digest, source=where, id=rid)


def _explicit_id(raw: Any) -> str | None:
    """The record's own id (``id``, ``question_id`` or ``idx``) as text, if it has a usable one."""
    if not isinstance(raw, Mapping):
        return None
    rid = raw.get("id", raw.get("question_id", raw.get("idx")))
    if isinstance(rid, bool) or not isinstance(rid, str | int | float) or rid == "":
        return None
    rid = str(rid)
    return rid if strict_json.unencodable_path(rid) is None else None


def _id_hint(text: bytes) -> str | None:
    """For the message of a record that is not valid text: its id, read past the bad bytes."""
    try:
        return _explicit_id(strict_json.parse(text.decode("utf-8", "replace").encode("utf-8")))
    except InvalidSampleError:
        return None


def _claim(keys: dict[str, int], candidate: str, n: int) -> str:
    """``candidate``, or ``candidate#2``, ``#3``...: the first not yet taken (keys stay unique)."""
    key, k = candidate, 1
    while key in keys:
        k += 1
        key = f"{candidate}#{k}"
    keys[key] = n
    return key
