"""Every error judgelm raises, in one tree.

::

    JudgeLMError
     ├── InvalidSampleError       a sample (or JSONL record) is malformed; names the record and field
     ├── FormatError              unknown format name, or a formatter that breaks its contract
     ├── PromptTooLongError       a prompt cannot fit the model's context under the chosen policy
     ├── ModelLoadError           weights or tokenizer could not be loaded safely
     ├── MissingDependencyError   an optional extra is needed (the message names `pip install ...`)
     ├── ScoringError             the verdict grammar cannot be built for this tokenizer
     └── JobError                 a batch job cannot run as asked (its input cannot be read, its
                                  output file belongs to something else); nothing was judged

Judging never raises for a bad *output* of the model: an unreadable verdict is a `Verdict` with
``abstained=True`` and a ``reason``. Errors are for bad *inputs* and bad *setups*.
"""

from __future__ import annotations

import copy

__all__ = [
    "FormatError",
    "InvalidSampleError",
    "JobError",
    "JudgeLMError",
    "MissingDependencyError",
    "ModelLoadError",
    "PromptTooLongError",
    "ScoringError",
]


class JudgeLMError(Exception):
    """Base class of every judgelm error."""


class InvalidSampleError(JudgeLMError, ValueError):
    """A sample or an input record is malformed.

    ``field`` names the offending field, ``record`` the record (its id), and ``source`` where it
    was read (``in.jsonl:12``), so a batch job can report it and go on with the other records.
    Every message has one shape: ``in.jsonl:12 (id s3), field 'answers': what is wrong; how to fix``
    (``record s3, field ...`` when there is no file).
    """

    def __init__(self, message: str, *, field: str | None = None, record: str | None = None, source: str | None = None):
        self.field = field
        self.record = record
        self.source = source
        self.detail = message
        super().__init__(self._render())

    @property
    def where(self) -> str | None:
        """The record's location: ``in.jsonl:12 (id s3)``, ``in.jsonl:12``, ``record s3`` or None."""
        if self.source is not None:
            return self.source + (f" (id {self.record})" if self.record is not None else "")
        return None if self.record is None else f"record {self.record}"

    def _render(self) -> str:
        where = ", ".join(part for part in (self.where, self.field and f"field {self.field!r}") if part)
        return f"{where}: {self.detail}" if where else self.detail

    def _with(self, **changes: str | None) -> InvalidSampleError:
        new = copy.copy(self)
        new.__dict__.update(changes)
        new.args = (new._render(),)
        return new

    def located(self, record: str) -> InvalidSampleError:
        """The same error, attributed to the record ``record`` (an id)."""
        return self._with(record=record)

    def at(self, source: str, record: str | None = None) -> InvalidSampleError:
        """The same error, read at ``source`` (``file:line``), of the record with id ``record``."""
        return self._with(source=source, record=record)


class FormatError(JudgeLMError, ValueError):
    """Unknown format name, duplicate registration, or a formatter that breaks its contract."""


class PromptTooLongError(JudgeLMError, ValueError):
    """The prompt does not fit the context window and the truncation policy forbids cutting it."""


class ModelLoadError(JudgeLMError, OSError):
    """The model or its tokenizer could not be loaded (or not safely)."""


class MissingDependencyError(JudgeLMError, ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, package: str, extra: str, purpose: str, hint: str | None = None):
        self.package = package
        self.extra = extra
        install = hint or f'pip install "judgelm[{extra}]"'
        super().__init__(f"{purpose} needs the package {package!r}: {install}")


class ScoringError(JudgeLMError, ValueError):
    """The verdict grammar cannot be tokenized or scored with this tokenizer/model."""


class JobError(JudgeLMError):
    """A batch job cannot run as asked: the input cannot be read, or the output file is a folder,
    the input itself, not judgelm output, or the output of another job. The message is one line
    that says what to do."""
