"""JSON in and out for untrusted text, within explicit limits.

Reading (`loads`): one JSON document from bytes or text, refused with an `InvalidSampleError`
(never another exception) when it

- is not UTF-8 (the position of the first bad byte is named);
- nests deeper than ``max_depth`` (checked on the text *before* parsing, so the parser's
  recursion can never blow up);
- holds an integer of more than `MAX_INT_DIGITS` digits (Python's own int-str limit is
  process-wide and may be off; this one is not);
- holds a lone surrogate (``"\\ud800"``): text UTF-8 cannot represent, which would fail when the
  record is written back; the error names the field (a JSON path such as
  ``conversations[0][1].content``).

``NaN``, ``Infinity`` and ``-Infinity`` (which Python's ``json.dumps`` writes) are read as floats;
control characters inside strings (a bare ``\r``) and a leading byte order mark are read too.

Writing (`dumps`): always valid JSON text: a non-finite float is written as ``null`` (JSON has no
NaN), and a lone surrogate as its ``\\uXXXX`` escape.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from judgelm.errors import InvalidSampleError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "check_text", "dumps", "loads", "parse", "unencodable_path"]

MAX_DEPTH = 64  # arrays/objects inside each other (a judge record needs 4; a server request 6)
MAX_INT_DIGITS = 1000  # digits of one integer literal

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # a JSON string (escapes included)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
# a \u escape in the surrogate range D800-DFFF (a valid pair decodes to one character; a lone one does not)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.S)


class _TooManyDigits(ValueError):
    pass


def _parse_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise _TooManyDigits(f"an integer of {digits} digits (the limit is {MAX_INT_DIGITS})")
    return int(text)


# strict=False: control characters inside strings (a bare "\r", a tab) are read as they are
_DECODER = json.JSONDecoder(parse_int=_parse_int, strict=False)


def _depth(data: bytes, limit: int) -> int:
    """How deep arrays and objects nest in ``data`` (brackets inside strings do not count); 0 when
    there are too few brackets to nest deeper than ``limit``."""
    if data.count(b"[") + data.count(b"{") <= limit:  # cannot be deeper: skip the scan
        return 0
    import numpy as np  # a running sum over megabytes of brackets, off the Python loop

    brackets = np.frombuffer(_STRING.sub(b"", data).translate(None, _NOT_BRACKETS), np.uint8)
    if not brackets.size:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document within the limits above (raises `InvalidSampleError`)."""
    obj = parse(data, max_depth=max_depth)
    check_text(obj, data)
    return obj


def parse(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """`loads` without the lone-surrogate check (`check_text`)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidSampleError(
            f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); save the file as UTF-8"
        ) from None
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark (some editors write one)
        text = text[1:]
    depth = _depth(raw, max_depth)
    if depth > max_depth:
        raise InvalidSampleError(f"arrays/objects nested {depth} deep (the limit is {max_depth}); flatten the record")
    try:
        return _DECODER.decode(text)
    except _TooManyDigits as e:
        raise InvalidSampleError(f"{e}; write it as a string") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}" if e.lineno > 1 else f"column {e.colno}"
        raise InvalidSampleError(f"not valid JSON ({e.msg.removesuffix(' at')} at {where}); fix its syntax") from None
    except (ValueError, RecursionError) as e:  # a limit the scan above did not foresee: still this record's
        raise InvalidSampleError(f"not readable as JSON ({e})") from None


def check_text(obj: Any, data: bytes | str | None = None) -> None:
    """Raise `InvalidSampleError` naming the field when a string of ``obj`` holds a lone surrogate
    (``data``: the JSON text ``obj`` was read from; without a surrogate escape in it, the walk is
    skipped)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if data is not None and not _SURROGATE_ESCAPE.search(data):
        return
    path = unencodable_path(obj)
    if path is not None:
        raise InvalidSampleError(
            "holds a lone surrogate escape (\\ud800-\\udfff), text UTF-8 cannot represent; "
            "remove it or write the character's full surrogate pair",
            field=path or None,
        )


def unencodable_path(obj: Any, path: str = "") -> str | None:
    """The JSON path (``a.b[2]``; ``""`` for the root) of the first string, key or value, that
    UTF-8 cannot encode (a lone surrogate), or None when there is none."""
    if isinstance(obj, str):
        return None if _encodable(obj) else path
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            name = _printable(str(k))
            here = f"{path}.{name}" if path else name
            if isinstance(k, str) and name != k:
                return here
            found = unencodable_path(v, here)
            if found is not None:
                return found
        return None
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found = unencodable_path(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\ud800``)."""
    return text if _encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """Valid JSON text for ``obj`` on one line: non-finite floats become ``null``; the result
    encodes to UTF-8 (a lone surrogate is written as its ``\\uXXXX`` escape). ``default``: as
    for `json.dumps` (what to write for values JSON has no type for)."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, default=default)
    except ValueError:  # NaN or an infinity somewhere (a verdict parsed from "nan", an input's NaN)
        text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, default=default)
    return _printable(text)  # inside JSON strings, "\\ud800" is the escape of the lone surrogate
