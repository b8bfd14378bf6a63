"""Every error judgelm raises, in one tree.

::

    JudgeLMError
     ├── InvalidSampleError       a sample (or JSONL record) is malformed; names the record and field
     ├── FormatError              unknown format name, or a formatter that breaks its contract
     ├── PromptTooLongError       a prompt cannot fit the model's context under the chosen policy
     ├── ModelLoadError           weights or tokenizer could not be loaded safely
     ├── MissingDependencyError   an optional extra is needed (the message names `pip install ...`)
     └── ScoringError             the verdict grammar cannot be built for this tokenizer

Judging never raises for a bad *output* of the model: an unreadable verdict is a `Verdict` with
``abstained=True`` and a ``reason``. Errors are for bad *inputs* and bad *setups*.
"""

from __future__ import annotations

__all__ = [
    "FormatError",
    "InvalidSampleError",
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

    ``record`` names the record (a sample id, or ``line 12`` of a JSONL file) and ``field`` the
    offending field, so a batch job can report it and go on with the other records.
    """

    def __init__(self, message: str, *, field: str | None = None, record: str | None = None):
        self.field = field
        self.record = record
        self.detail = message
        where = ", ".join(part for part in (record and f"record {record}", field and f"field {field!r}") if part)
        super().__init__(f"{where}: {message}" if where else message)

    def located(self, record: str) -> InvalidSampleError:
        """The same error, attributed to ``record`` (used when a reader knows the line number)."""
        return InvalidSampleError(self.detail, field=self.field, record=record)


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
