"""Hypothesis strategies for JSONL input files that mix valid records with every kind of hostile
line, and the check that a `judgelm judge` run accounted for each line exactly once. Used by
tests/test_fuzz.py and benchmarks/fuzz.py (run as a script, this module is the job that test
kills: ``python tests/hostile_lines.py IN OUT DELAY_S`` judges IN into OUT with a scripted judge).

Each generated line is ``(kind, expected, text)``: ``expected`` is ``"verdict"`` (a verdict or an
abstention line), ``"error"`` (an error line naming its line), ``"blank"`` (no output line) or
``"either"`` (a record whose fate depends on the lines before it: an id like ``line-7`` or a
repeated id; checked by the general invariants only).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=12) | st.sampled_from(
    ["", "\r", "<image>", "{}", "\\", "\u2028", "\U0001f600", "Assistant 1", "### Response:"]
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True) | TEXT,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(TEXT.filter(lambda k: k not in ("id", "question_id", "idx")), inner, max_size=3)
    ),
    max_leaves=4,
)
ID = "\x00ID\x00"  # replaced by the line's own id ("r<line>") when the file is assembled


def _native() -> st.SearchStrategy:
    """A valid native record: 1 to 4 answers (single, pairwise, multi)."""
    return st.fixed_dictionaries(
        {"id": st.just(ID), "question": TEXT, "answers": st.lists(TEXT, min_size=1, max_size=4)},
        optional={"reference": TEXT, "note": JSON_VALUE},
    )


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


_CHAT = st.fixed_dictionaries(
    {
        "id": st.just(ID),
        "mode": st.just("chat"),
        "conversations": st.tuples(TEXT, st.lists(TEXT, min_size=1, max_size=2)).map(
            lambda t: [[{"role": "user", "content": t[0]}, {"role": "assistant", "content": a}] for a in t[1]]
        ),  # one conversation per assistant, the same user turn (the chat format compares those)
    }
)
_JUDGELM = st.fixed_dictionaries(
    {"question_id": st.just(ID), "question_body": TEXT, "answer1_body": TEXT, "answer2_body": TEXT}
)
_SURROGATE = st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}".encode())


@st.composite
def _surrogate_record(draw: st.DrawFn) -> bytes:
    """A valid record with one lone surrogate escape in a string, a key or an extra field."""
    obj = draw(_native())
    obj["note"] = "NOTE"
    text = _dumps(obj)
    where = draw(st.sampled_from([b'"question": "', b'"answers": ["', b'"note": "', b'{"']))
    escape = draw(_SURROGATE)
    return text.replace(where, where + escape, 1)


@st.composite
def _invalid_utf8(draw: st.DrawFn) -> bytes:
    text = _dumps(draw(_native()))
    bad = draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\x80"]))
    return text.replace(b'"question": "', b'"question": "' + bad, 1)


@st.composite
def _truncated(draw: st.DrawFn) -> bytes:
    text = _dumps(draw(_native()))
    return text[: draw(st.integers(1, len(text) - 1))]


@st.composite
def _with_raw(draw: st.DrawFn, field: str, raw: st.SearchStrategy[bytes]) -> bytes:
    obj = draw(_native())
    obj[field] = "RAW"
    return _dumps(obj).replace(b'"RAW"', draw(raw), 1)


def _set(field: str, value: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(_native(), value).map(lambda t: {**t[0], field: t[1]})


def _chat_role(role: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(_CHAT, role).map(lambda t: {**t[0], "conversations": [[{"role": t[1], "content": "hi"}]]})


# kind -> (expected outcome, strategy of the line: a dict (serialized, ID filled in) or bytes)
KINDS: dict[str, tuple[str, st.SearchStrategy]] = {
    "valid": ("verdict", _native()),
    "valid-chat": ("verdict", _CHAT),
    "valid-judgelm": ("verdict", _JUDGELM),
    "valid-nan": ("verdict", _with_raw("score", st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))),
    "valid-bare-cr": ("verdict", _native().map(lambda o: _dumps(o).replace(b'"question": "', b'"question": "\r', 1))),
    "valid-bom": ("verdict", _native().map(lambda o: b"\xef\xbb\xbf" + _dumps(o))),
    "blank": ("blank", st.sampled_from([b"", b"   ", b"\t", b"\r", b" \r "])),
    "not-json": ("error", _truncated() | st.sampled_from([b"{", b"nul", b"{'a': 1}", b'{"a" 1}', b"\x0c{}"])),
    "invalid-utf8": ("error", _invalid_utf8()),
    "big-int": ("error", _with_raw("n", st.integers(1001, 6000).map(lambda n: b"7" * n))),
    "deep": ("error", _with_raw("x", st.integers(65, 60_000).map(lambda n: b"[" * n + b"]" * n))),
    "surrogate": ("error", _surrogate_record()),
    "role-list-or-object": ("error", _chat_role(st.lists(TEXT, max_size=2) | st.dictionaries(TEXT, TEXT, max_size=2))),
    "role-unknown": ("error", _chat_role(st.integers() | st.sampled_from(["system", "bot", ""]))),
    "images": (
        "error",
        _set(
            "images",
            st.integers() | st.dictionaries(TEXT, TEXT, max_size=2) | st.lists(st.integers(), min_size=1, max_size=2),
        ),
    ),
    "answers-object": ("error", _set("answers", st.dictionaries(TEXT, TEXT, min_size=1, max_size=3))),
    "answers-wrong": ("error", _set("answers", st.just([]) | st.lists(st.integers(), min_size=1, max_size=3) | TEXT)),
    "no-answers": ("error", _native().map(lambda o: {k: v for k, v in o.items() if k != "answers"})),
    "bad-question": ("error", _set("question", st.integers() | st.lists(TEXT, max_size=2) | st.booleans())),
    "bad-mode": ("error", _set("mode", st.sampled_from(["foo", "single!", "PAIRWISE"]) | st.integers())),
    "wrong-count": (
        "error",
        _set("answers", st.lists(TEXT, min_size=2, max_size=2)).map(lambda o: {**o, "mode": "single"}),
    ),
    "bad-reference": ("error", _set("reference", st.integers() | st.lists(TEXT, min_size=1, max_size=2))),
    "not-an-object": ("error", st.one_of(st.lists(JSON_VALUE, max_size=3), st.integers(), TEXT).map(_dumps)),
    "random-object": (
        "either",
        st.dictionaries(TEXT.filter(lambda k: k not in ("id", "question_id", "idx")), JSON_VALUE, max_size=4),
    ),
    "id-like-a-line-key": (
        "either",
        st.tuples(_native(), st.integers(1, 200)).map(lambda t: {**t[0], "id": f"line-{t[1]}"}),
    ),
    "repeated-id": ("either", st.tuples(_native(), st.integers(0, 3)).map(lambda t: {**t[0], "id": f"dup-{t[1]}"})),
    "no-id": ("verdict", _native().map(lambda o: {k: v for k, v in o.items() if k != "id"})),
}

LINE = st.sampled_from(sorted(KINDS)).flatmap(
    lambda kind: KINDS[kind][1].map(lambda body: (kind, KINDS[kind][0], body))
)


# ---- server requests ---------------------------------------------------------------------------

OPTIONS = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "swap": st.booleans() | st.integers(),
        "scoring": st.sampled_from(["auto", "text", "logits", "bogus"]),
        "max_new_tokens": st.integers(-5, 5000) | st.none(),
        "mode": st.sampled_from([None, "pairwise", "nope"]),
        "extra": st.just(1),
    },
)


NOT_JSON = {"not-json", "invalid-utf8", "big-int", "deep"}  # lines that make the whole body unreadable
VALID_LINE = st.sampled_from(sorted(k for k, (e, _) in KINDS.items() if e == "verdict" and k != "valid-bom")).flatmap(
    lambda kind: KINDS[kind][1].map(lambda body: (kind, "verdict", body))
)
REWARD = st.fixed_dictionaries(
    {"query": st.lists(TEXT, min_size=1, max_size=3)},
    optional={
        "prompts": st.lists(TEXT | st.none(), max_size=3),
        "labels": st.lists(TEXT | st.none() | st.integers(), max_size=3),
    },
) | st.dictionaries(st.sampled_from(["query", "prompts", "labels"]), JSON_VALUE)


@st.composite
def judge_request(draw) -> tuple[bytes, list[str] | None]:
    """A /v1/judge body and the expected outcome of each sample (None: the body itself is odd)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64) | JSON_VALUE.map(lambda v: json.dumps(v).encode())), None
    lines = VALID_LINE if draw(st.booleans()) else LINE  # half of the requests: valid records only
    specs = [s for s in draw(st.lists(lines, min_size=1, max_size=4)) if s[1] != "blank"]
    data, meta = assemble(specs)
    options = draw(OPTIONS)
    body = b'{"samples": [' + b", ".join(data.splitlines()) + b"]"
    if options is not None:
        body += b', "options": ' + json.dumps(options).encode()
    if options is not None or any(kind == "valid-bom" for kind, _ in meta):  # a BOM only starts a file
        return body + b"}", None
    return body + b"}", [expected if kind not in NOT_JSON else "body" for kind, expected in meta]


def _reward_request(body: Any) -> tuple[str, bytes, None]:
    return "/get_reward", json.dumps(body).encode(), None


_JUDGING = judge_request().map(lambda r: ("/v1/judge", *r))
REQUEST = st.one_of(_JUDGING, _JUDGING, REWARD.map(_reward_request))  # (path, body, expected): 2/3 judge


def check_answer(path: str, expected: list[str] | None, status: int, content: bytes) -> None:
    """A server answer to a `REQUEST`: never 5xx, valid JSON (no bare NaN), an error message on
    4xx; and for a /v1/judge body whose samples' fate is known: 400 naming the sample, or 200
    with one result per sample."""
    assert status < 500, content[:500]
    answer = json.loads(content, parse_constant=lambda c: _fail(f"bare {c} in the answer"))
    if status >= 400:
        assert isinstance(answer["error"]["message"], str)
    if path == "/v1/judge" and expected:
        if "body" in expected:  # not JSON within limits: the body as a whole is refused
            assert status == 400, answer
        elif "error" in expected:
            assert status == 400 and answer["error"]["field"].startswith("samples["), answer
        elif "either" not in expected:
            assert status == 200 and len(answer["results"]) == len(expected), answer


def assemble(specs: list[tuple[str, str, Any]]) -> tuple[bytes, list[tuple[str, str]]]:
    """The file's bytes and, per line, ``(kind, expected)``; a line's own id is ``r<line>``."""
    lines, meta = [], []
    for n, (kind, expected, body) in enumerate(specs, start=1):
        text = body if isinstance(body, bytes) else _dumps(body)
        lines.append(text.replace(json.dumps(ID).encode(), f'"r{n}"'.encode()))
        meta.append((kind, expected))
    return b"\n".join(lines) + b"\n", meta


def check_output(meta: list[tuple[str, str]], out: Path) -> dict[str, int]:
    """Every non-blank input line accounted for exactly once in ``out``; returns outcome counts."""
    rows = [
        json.loads(x, parse_constant=lambda c: _fail(f"bare {c} in the output")) for x in out.read_bytes().splitlines()
    ]
    ids = Counter(r["id"] for r in rows)
    assert [k for k, c in ids.items() if c > 1] == [], "an id written twice"
    nonblank = [n for n, (_, expected) in enumerate(meta, start=1) if expected != "blank"]
    assert len(rows) == len(nonblank), f"{len(nonblank)} records, {len(rows)} output lines"
    errors = {r["line"]: r for r in rows if "error" in r and "verdict" not in r}
    assert len(errors) == sum("error" in r and "verdict" not in r for r in rows), "two error lines for one line"
    for n, err in errors.items():
        assert err["error"]["record"].startswith(f"in.jsonl:{n}"), err
        assert "judgelm bug" not in err["error"]["message"], err  # the safety net must never be needed
    verdicts = {r["id"] for r in rows if "verdict" in r}
    for n, (kind, expected) in enumerate(meta, start=1):
        if expected == "verdict":
            if kind == "no-id":  # keyed line-N (line-N#2 when a record before took line-N as its id)
                assert any(v == f"line-{n}" or v.startswith(f"line-{n}#") for v in verdicts), (n, kind, errors.get(n))
            else:
                assert f"r{n}" in verdicts, (n, kind, errors.get(n))
        elif expected == "error":
            assert n in errors, (n, kind)
    assert set(errors) <= set(nonblank)
    return {"lines": len(meta), "records": len(nonblank), "verdicts": len(verdicts), "errors": len(errors)}


def _fail(message: str) -> Any:
    raise AssertionError(message)


def scripted_grader(delay_s: float = 0.0) -> Any:
    """The judge of the fuzz jobs: it answers a score per assistant the prompt shows (a slow one
    when ``delay_s``: the job that is killed midway)."""
    from judgelm.testing import scripted_judge

    def respond(prompt: str) -> str:
        if delay_s:
            time.sleep(delay_s)
        n = max(1, sum(f"Assistant {k}" in prompt for k in range(1, 6)))
        return " ".join(str(3 + k) for k in range(n)) + "\n"

    return scripted_judge(respond, name="fuzz-grader")


def run_job(src: Path, out: Path, *extra: str, delay_s: float = 0.0) -> int:
    """``judgelm judge src -o out`` in this process, on `scripted_grader`."""
    import judgelm.cli.judge_cmd as judge_cmd
    from judgelm.cli import main

    load_judge = judge_cmd.load_judge
    judge_cmd.load_judge = lambda args, **kw: scripted_grader(delay_s)  # type: ignore[assignment]
    try:
        return main(["judge", str(src), "-o", str(out), "--quiet", *extra])
    finally:
        judge_cmd.load_judge = load_judge  # (the other tests' CLI loads real judges)


if __name__ == "__main__":  # the job a test kills: python tests/hostile_lines.py IN OUT DELAY_S
    sys.exit(run_job(Path(sys.argv[1]), Path(sys.argv[2]), "--batch-size", "4", delay_s=float(sys.argv[3])))
