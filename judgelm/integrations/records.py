"""Input records shared by the server and the batch jobs: checking a sample against its format
before any model time is spent, and a stable key for every record so a job can resume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from judgelm.errors import InvalidSampleError, JudgeLMError
from judgelm.types import Sample

__all__ = ["check_sample", "record_key"]


def check_sample(sample: Sample, mode: str | None = None) -> None:
    """Raise `InvalidSampleError` (naming the field) when ``sample`` does not fit its format.

    `Judge.judge` would abstain on such a sample; callers that own the input (an HTTP client, a
    dataset) are better served by an error that says which field to fix."""
    from judgelm.formats import get_format, infer_mode

    name = mode or infer_mode(sample)
    try:
        fmt = get_format(name)
        fmt.render(sample)  # shape, rubric and scale: everything a prompt needs
    except InvalidSampleError:
        raise
    except JudgeLMError as e:  # unknown format name, ...
        raise InvalidSampleError(str(e), field="mode") from None


def record_key(row: Mapping[str, Any], id_column: str | None = None) -> str:
    """The key a record is written (and resumed) under.

    ``id_column`` when given (it must be present), else ``id``, else ``question_id``, else a hash
    of the record's canonical JSON: the same record gets the same key in every run, so a killed
    job resumes without an id column (identical records then count once)."""
    if id_column is not None:
        value = row.get(id_column)
        if value is None:
            raise InvalidSampleError("missing (the job keys records by this column)", field=id_column)
        return str(value)
    for name in ("id", "question_id"):
        if row.get(name) is not None:
            return str(row[name])
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return "sha1:" + hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:16]
