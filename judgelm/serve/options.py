"""`JudgeOptions`: the per-request knobs of `Judge.judge`, as one hashable value.

The server groups queued requests by these options (one model call judges samples that share
them), the reward adapters pass them through, and the wire format reads and writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from judgelm.errors import InvalidSampleError

__all__ = ["JudgeOptions"]

Scoring = Literal["auto", "logits", "text"]


@dataclass(frozen=True)
class JudgeOptions:
    """Keyword arguments of `Judge.judge` that a caller may choose per request."""

    mode: str | None = None
    swap: bool = False
    explain: bool = False
    # "auto" = logit scoring when the judge's engine can read logits (expected scores), else text.
    scoring: Scoring = "auto"
    max_new_tokens: int | None = None
    official_parser: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (only fields that differ from the defaults, to keep requests small)."""
        default = JudgeOptions()
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)
        }

    @classmethod
    def from_dict(
        cls, data: Any, *, field_prefix: str = "options", max_new_tokens_limit: int | None = None
    ) -> JudgeOptions:
        """Parse untrusted JSON; an `InvalidSampleError` names the offending field."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidSampleError(f"must be an object, got {_json_type(data)}", field=field_prefix)
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise InvalidSampleError(
                    f"unknown option (known: {', '.join(sorted(known))})",
                    field=f"{field_prefix}.{key}",
                )
        values: dict[str, Any] = {}
        for name in ("swap", "explain", "official_parser"):
            if name in data:
                if not isinstance(data[name], bool):
                    raise InvalidSampleError(
                        f"must be true or false, got {_json_type(data[name])}",
                        field=f"{field_prefix}.{name}",
                    )
                values[name] = data[name]
        if data.get("mode") is not None:
            if not isinstance(data["mode"], str):
                raise InvalidSampleError(
                    f"must be a string or null, got {_json_type(data['mode'])}",
                    field=f"{field_prefix}.mode",
                )
            values["mode"] = data["mode"]
        if "scoring" in data:
            if data["scoring"] not in ("auto", "logits", "text"):
                raise InvalidSampleError(
                    f"must be 'auto', 'logits' or 'text', got {data['scoring']!r}",
                    field=f"{field_prefix}.scoring",
                )
            values["scoring"] = data["scoring"]
        mnt = data.get("max_new_tokens")
        if mnt is not None:
            # bool is an int subclass: refuse it explicitly so `true` is not read as 1 token.
            if isinstance(mnt, bool) or not isinstance(mnt, int) or mnt < 1:
                raise InvalidSampleError("must be a positive integer or null", field=f"{field_prefix}.max_new_tokens")
            if max_new_tokens_limit is not None and mnt > max_new_tokens_limit:
                raise InvalidSampleError(
                    f"must be <= {max_new_tokens_limit} on this server",
                    field=f"{field_prefix}.max_new_tokens",
                )
            values["max_new_tokens"] = mnt
        return cls(**values)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)
