"""`JudgeOptions`: the per-call knobs of `Judge.judge`, as one hashable value.

`Judge.judge` takes them (``options=`` or the same names as keywords), the server groups queued
requests by them (one model call judges samples that share them), the reward adapters and Ray
pass them through, the CLI builds them from its flags, and the wire format reads and writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

from judgelm.errors import InvalidSampleError
from judgelm.modalities.text import TruncationPolicy

__all__ = ["SCORINGS", "SLOT_STRATEGIES", "TRUNCATIONS", "JudgeOptions", "Scoring", "SlotStrategy"]

# "auto" = logit scoring when the judge's engine can read logits (expected scores), else text.
Scoring = Literal["auto", "logits", "text"]
# Several answers under logit scoring: "joint" (exact joint distribution), "greedy" (each slot
# given the most probable earlier ones), "auto" (joint up to 400 verdict lines).
SlotStrategy = Literal["auto", "joint", "greedy"]
SCORINGS: tuple[str, ...] = get_args(Scoring)
SLOT_STRATEGIES: tuple[str, ...] = get_args(SlotStrategy)
TRUNCATIONS: tuple[str, ...] = get_args(TruncationPolicy)


@dataclass(frozen=True)
class JudgeOptions:
    """How to judge (see `Judge.judge` for each field). ``truncation=None``: the judge's own."""

    mode: str | None = None
    swap: bool = False
    explain: bool = False
    scoring: Scoring = "auto"
    slots: SlotStrategy = "auto"
    max_new_tokens: int | None = None
    official_parser: bool = False
    truncation: TruncationPolicy | None = None
    calibrated: bool = True

    def __post_init__(self) -> None:
        for name, allowed in (("scoring", SCORINGS), ("slots", SLOT_STRATEGIES), ("truncation", TRUNCATIONS)):
            value = getattr(self, name)
            if value not in allowed and not (name == "truncation" and value is None):
                raise ValueError(f"{name} must be {_one_of(allowed)}, got {value!r}")

    def replace(self, **changes: Any) -> JudgeOptions:
        return replace(self, **changes)

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
        for name in ("swap", "explain", "official_parser", "calibrated"):
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
        for name, allowed, nullable in (
            ("scoring", SCORINGS, False),
            ("slots", SLOT_STRATEGIES, False),
            ("truncation", TRUNCATIONS, True),
        ):
            if name in data and not (nullable and data[name] is None):
                if data[name] not in allowed:
                    raise InvalidSampleError(
                        f"must be {_one_of(allowed)}{' or null' if nullable else ''}, got {data[name]!r}",
                        field=f"{field_prefix}.{name}",
                    )
                values[name] = data[name]
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


def _one_of(allowed: tuple[str, ...]) -> str:
    quoted = [repr(a) for a in allowed]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


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
