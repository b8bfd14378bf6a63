"""The ``/v1/judge`` wire format: untrusted JSON in, typed samples out, errors naming fields.

Request::

    {"samples": [<record>, ...], "options": {"swap": false, "explain": false, "scoring": "auto",
                                             "mode": null, "max_new_tokens": null,
                                             "official_parser": false}}

Each record is a native or JudgeLM JSONL record (see `judgelm.io`). The response holds one
``results`` entry per sample, in order, each exactly the line ``judgelm judge -o`` would write
(the input record + ``verdict`` + ``pred_*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.integrations.records import check_sample
from judgelm.io import Record, sample_from_record
from judgelm.options import JudgeOptions
from judgelm.serve.config import ServeConfig

__all__ = ["JudgeRequest", "RequestTooLarge", "parse_judge_request"]


class RequestTooLarge(InvalidSampleError):
    """A request over the server's size limits (answered 413)."""


@dataclass(frozen=True)
class JudgeRequest:
    records: tuple[Record, ...]
    options: JudgeOptions


def _located(e: InvalidSampleError, prefix: str) -> InvalidSampleError:
    return InvalidSampleError(e.detail, field=f"{prefix}.{e.field}" if e.field else prefix)


def parse_judge_request(body: Any, config: ServeConfig) -> JudgeRequest:
    if not isinstance(body, Mapping):
        raise InvalidSampleError("the request body must be a JSON object")
    unknown = set(body) - {"samples", "options"}
    if unknown:
        raise InvalidSampleError("unknown field (expected 'samples' and 'options')", field=sorted(unknown)[0])
    raw = body.get("samples")
    if not isinstance(raw, list):
        raise InvalidSampleError("required: a list of sample records", field="samples")
    if not raw:
        raise InvalidSampleError("must hold at least one sample", field="samples")
    if len(raw) > config.max_request_samples:
        raise RequestTooLarge(
            f"{len(raw)} samples; at most {config.max_request_samples} per request",
            field="samples",
        )
    options = JudgeOptions.from_dict(body.get("options"), max_new_tokens_limit=config.max_new_tokens_limit)
    records = []
    for i, obj in enumerate(raw):
        where = f"samples[{i}]"
        try:
            if isinstance(obj, Mapping) and obj.get("images"):
                # Image entries are file paths; reading server files for a remote client is a hole.
                raise InvalidSampleError("image samples are not accepted over HTTP", field="images")
            sample = sample_from_record(obj, mode=options.mode)
            check_sample(sample, options.mode)
        except InvalidSampleError as e:
            raise _located(e, where) from None
        key = sample.id if sample.id is not None else str(i)
        records.append(Record(i, key, obj, sample=sample.replace(id=key)))
    return JudgeRequest(tuple(records), options)
