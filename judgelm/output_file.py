"""The output file of a batch job: append-only JSONL that knows which job it belongs to.

Every line starts with ``"judgelm_job": {"judge": ..., "options": {...}, "record": DIGEST}``: the
judge and the options of the job (a `JobStamp`) and the digest of the input line it answers
(`judgelm.io.Record.digest`). Reopening the file (a re-run) resumes only the same job:

- every complete line must be a judgelm line of this job (same judge, same options): a file that
  is not judgelm output, or holds another job's results, is refused with a `JobError` (and left
  untouched); ``restart=True`` (``--restart``) empties it and starts over;
- `ResultWriter.claim` checks the input: every id already written must be a record of this input
  with the same text. An input may grow (new records are judged); a changed or another input is
  refused;
- the output may not be the input file itself;
- a torn last line (a job killed mid-write) is dropped, and its record judged again.

Lines are written whole, one ``write`` per line on an ``O_APPEND`` descriptor, and each one is
valid JSON (`judgelm.strict_json.dumps`: no bare NaN), so a killed job loses nothing it wrote and
a re-run repeats nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgelm import strict_json
from judgelm.errors import InvalidSampleError, JobError
from judgelm.types import Verdict

if TYPE_CHECKING:
    from judgelm.io import Record

__all__ = ["STAMP_FIELD", "JobStamp", "ResultWriter", "error_record", "output_record", "write_results"]

STAMP_FIELD = "judgelm_job"
_LINE_START = b'{"' + STAMP_FIELD.encode() + b'": '  # how every line strict_json.dumps writes begins
_START_OVER = "use another output file, or start over with --restart"


@dataclass(frozen=True)
class JobStamp:
    """What an output file belongs to: the judge (a model name or path) and the options that
    change verdicts (format, swap, scoring, truncation, ...), JSON values only."""

    judge: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The stamp as it reads back from a line (JSON round trip: tuples become lists)."""
        return json.loads(strict_json.dumps({"judge": self.judge, "options": dict(self.options)}))


def _same_file(a: Path, b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _describe(stamp: Mapping[str, Any]) -> str:
    options = json.dumps(stamp.get("options"), sort_keys=True, ensure_ascii=False)
    return f"judge {stamp.get('judge')!r}, options {options}"


class ResultWriter:
    """Append-only JSONL output owned by one job (see the module docstring).

    ``done`` maps each id already written to the digest of the record it answers; ``failed``
    holds the ids written as error lines. ``input_path``: the job's input (refused as output)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        job: JobStamp | None = None,
        *,
        restart: bool = False,
        input_path: str | os.PathLike[str] | None = None,
    ):
        self.path = Path(path)
        self._stamp = (job or JobStamp()).as_json()
        self.done: dict[str, str | None] = {}
        self.failed: set[str] = set()
        self.counts = {"written": 0, "errors": 0}
        self._lines: dict[str, int] = {}  # id -> its line in the file (for messages)
        self._fd = -1
        if self.path.is_dir():
            raise JobError(f"{self.path}: is a folder; give the output a file name (e.g. {self.path / 'out.jsonl'})")
        if input_path is not None and _same_file(self.path, input_path):
            raise JobError(f"{self.path}: is the input file; write the results to another file")
        try:
            if self.path.exists() and not restart:
                self._recover()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if restart else 0)
            self._fd = os.open(self.path, flags, 0o644)
        except OSError as e:
            raise JobError(f"{self.path}: cannot write it ({e.strerror or e})") from None

    def _recover(self) -> None:
        """Read back the ids of a file this job wrote; refuse anything else (before changing it)."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        torn = data[end:]
        if torn and not (torn.startswith(_LINE_START) or _LINE_START.startswith(torn)):
            raise JobError(
                f"{self.path}: its last line has no newline and is not judgelm output (this is not a "
                f"judgelm output file); {_START_OVER}"
            )
        for n, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
            if line.strip():
                self._take_line(n, line)
        if torn:  # a job killed mid-write: the record of that line is judged again
            with self.path.open("r+b") as f:
                f.truncate(end)

    def _take_line(self, n: int, line: bytes) -> None:
        try:
            obj = strict_json.parse(line)
        except InvalidSampleError:
            obj = None
        stamp = obj.get(STAMP_FIELD) if isinstance(obj, dict) else None
        if not isinstance(stamp, dict) or not isinstance(obj, dict) or "id" not in obj:
            raise JobError(f"{self.path}:{n}: not judgelm output (no {STAMP_FIELD!r} field); {_START_OVER}")
        job = {k: v for k, v in stamp.items() if k != "record"}
        if job != self._stamp:
            raise JobError(
                f"{self.path}: holds another job's results ({_describe(job)}; this run: "
                f"{_describe(self._stamp)}); {_START_OVER}"
            )
        key = str(obj["id"])
        if key in self.done:
            first = self._lines[key]
            raise JobError(f"{self.path}:{n}: repeats id {key!r} (line {first}): edited or merged; {_START_OVER}")
        self.done[key] = stamp.get("record")
        self._lines[key] = n
        if "error" in obj and "verdict" not in obj:
            self.failed.add(key)

    def claim(self, records: Iterable[Record], source: str) -> None:
        """Check that every id already written answers one of ``records`` (the input, named
        ``source`` in messages) with the same text; raises `JobError` otherwise."""
        by_key = {r.key: r for r in records}
        for key, digest in self.done.items():
            rec = by_key.get(key)
            where = f"{self.path}:{self._lines.get(key, '?')} (id {key})"
            if rec is None:
                raise JobError(f"{where}: answers no record of {source} (results of another input); {_START_OVER}")
            if digest is not None and rec.digest is not None and digest != rec.digest:
                raise JobError(
                    f"{where}: was judged from another text than {source}:{rec.line} holds now (the input "
                    f"changed); {_START_OVER}"
                )

    def write(self, obj: Mapping[str, Any], *, digest: str | None = None) -> None:
        """Append one line (``obj`` with this job's stamp first); ``digest``: its record's."""
        body = {STAMP_FIELD: {**self._stamp, "record": digest}, **{k: v for k, v in obj.items() if k != STAMP_FIELD}}
        view = memoryview((strict_json.dumps(body) + "\n").encode("utf-8"))
        while view:  # one write on an O_APPEND fd (a loop only if the OS writes partially)
            view = view[os.write(self._fd, view) :]
        key = str(obj["id"])
        self.done[key] = digest
        if "verdict" in obj:
            self.counts["written"] += 1
        else:
            self.failed.add(key)
            self.counts["errors"] += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def output_record(record: Record, verdict: Verdict, *, model: str | None = None) -> dict[str, Any]:
    """The output line for a judged record: the input record, plus the verdict and the reference
    code's ``pred_*`` fields (``pred_text`` is the judge's raw text)."""
    base = dict(record.raw) if isinstance(record.raw, Mapping) else {}
    base.update(
        {
            "id": record.key,
            "verdict": verdict.to_dict(),
            "pred_id": record.key,
            "pred_text": verdict.text,
            "pred_model_id": model or verdict.provenance.model,
            "tstamp": time.time(),
        }
    )
    return base


def error_record(record: Record) -> dict[str, Any]:
    """The output line for a record that could not be judged (it keeps the input when it was
    JSON within limits; ``input`` is null otherwise)."""
    err = record.error
    return {
        "id": record.key,
        "line": record.line,
        "error": {
            "message": err.detail if err else "unknown",
            "field": err.field if err else None,
            "record": err.where if err else None,
        },
        "input": record.raw,
    }


def write_results(path: str | os.PathLike[str], records: Iterable[Record], verdicts: Iterable[Verdict]) -> None:
    """Write judged records (skipping ids already in the file)."""
    with ResultWriter(path) as w:
        for rec, v in zip(records, verdicts, strict=True):
            if rec.key not in w.done:
                w.write(output_record(rec, v), digest=rec.digest)
