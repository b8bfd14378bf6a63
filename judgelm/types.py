"""The typed values that flow through judgelm: what is judged (`Sample`) and what was found
(`Verdict`). All frozen; sequences are stored as tuples.

Answer indices are 0-based everywhere in Python (``winner == 0`` is the first answer); the
JudgeLM text grammar and prompts count assistants from 1.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from judgelm.errors import InvalidSampleError

__all__ = [
    "AbstainReason",
    "Preference",
    "Provenance",
    "Sample",
    "ScoreDistribution",
    "Truncation",
    "Turn",
    "Verdict",
]

Role = Literal["user", "assistant"]

# Why a verdict abstained. Stable strings: reports count them, tests match them.
AbstainReason = Literal[
    "invalid_input",  # the sample does not fit the format (a wrong number of answers, ...)
    "too_long",  # the prompt does not fit the context under the truncation policy
    "unparseable",  # the judge's text has no readable score line
    "out_of_range",  # readable scores outside the grammar's range
    "outside_grammar",  # (logit scoring) too much probability outside the verdict grammar
    "no_verdict",  # (explain-first formats) the judge never wrote its verdict marker ([RESULT])
    "input_error",  # an input could not be loaded (an image file, ...)
    "engine_error",  # the engine could not run the sample (a remote judge's request failed after retries)
]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise InvalidSampleError(
                f"must be 'user' or 'assistant', got {self.role!r}; write \"role\": \"user\"", field="role"
            )
        if not isinstance(self.content, str):
            raise InvalidSampleError(f"content must be a string, got {type(self.content).__name__}", field="content")


def _as_turn(value: Any) -> Turn:
    if isinstance(value, Turn):
        return value
    if isinstance(value, Mapping):
        # Accept both {"role", "content"} (OpenAI style) and {"from", "value"} (ShareGPT style).
        role = value.get("role", value.get("from"))
        if not isinstance(role, str):
            raise InvalidSampleError(
                f"must be 'user' or 'assistant', got {kind_of(role)}; write \"role\": \"user\"", field="role"
            )
        role = {"human": "user", "gpt": "assistant"}.get(role, role)
        return Turn(role=role, content=value.get("content", value.get("value")))  # type: ignore[arg-type]
    raise InvalidSampleError(f"a turn must be a mapping with 'role' and 'content', got {kind_of(value)}")


def kind_of(value: Any) -> str:
    """A value's type as a JSON reader would say it (``list``, ``object``, ``number``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", tuple: "a list"}
    return kinds.get(type(value), type(value).__name__)


def _sequence(name: str, value: Any, what: str) -> tuple[Any, ...]:
    """``value`` as a tuple when it is a list-like of items (not a string, bytes or a mapping)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidSampleError(
            f"must be a list of {what}, got {kind_of(value)}; write it as a list [...]", field=name
        )
    return tuple(value)


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    out = _sequence(name, value, "strings")
    for i, item in enumerate(out):
        if not isinstance(item, str):
            raise InvalidSampleError(f"must be a string, got {kind_of(item)}", field=f"{name}[{i}]")
    return out


def _images(value: Any) -> tuple[Any, ...]:
    """Image sources: paths, bytes or PIL images (one, or a list of them)."""
    if value is None:
        return ()
    single = isinstance(value, str | bytes | bytearray | memoryview | os.PathLike) or _is_pil_image(value)
    items = (value,) if single else _sequence("images", value, "images (paths, bytes or PIL images)")
    for i, item in enumerate(items):
        if not (isinstance(item, str | bytes | bytearray | memoryview | os.PathLike) or _is_pil_image(item)):
            raise InvalidSampleError(
                f"an image must be a path, bytes or a PIL image, got {kind_of(item)}", field=f"images[{i}]"
            )
    return items


def _is_pil_image(value: Any) -> bool:
    pil = sys.modules.get("PIL.Image")  # a PIL image exists only once PIL is imported
    return pil is not None and isinstance(value, pil.Image)


def _rubric(value: Any) -> str | Mapping[str, str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidSampleError(
                    f"rubric entries must map strings to strings, got {k!r}: {v!r}", field="rubric"
                )
        return MappingProxyType(dict(value))
    raise InvalidSampleError(
        f"must be a rubric name, a text or a mapping (criteria, score1_description, ...), got {type(value).__name__}",
        field="rubric",
    )


def _scale(value: Any) -> str | tuple[str, ...] | Mapping[str, Any] | None:
    """Shape check only; the format resolves the scale (and names this field if it is wrong)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    if isinstance(value, Iterable) and not isinstance(value, bytes):
        labels = tuple(value)
        if all(isinstance(x, str | int | float) and not isinstance(x, bool) for x in labels):
            return tuple(str(x) for x in labels)
    raise InvalidSampleError(
        f"must be a scale name, a list of labels or a mapping, got {type(value).__name__}", field="scale"
    )


@dataclass(frozen=True)
class Sample:
    """What is judged.

    - ``question``: the user question (verbatim; not stripped).
    - ``answers``: the candidate answers, 1..N. For ``single``/``mmvet`` the one graded answer.
    - ``reference``: an optional reference answer; its presence selects the with-reference prompt.
    - ``gold``: for ``single``/``mmvet``, the answer shown as Assistant 1 with a forced score of 10.
    - ``conversations``: for ``chat``, one conversation (a sequence of turns) per assistant.
    - ``images``: for image formats, paths, bytes or PIL images, in prompt order.
    - ``mode``: a registered format name; ``None`` lets the judge infer it.
    - ``rubric``: what to judge by: a built-in rubric name (``helpfulness``, ``harmlessness``,
      ``honesty``, ``factual_validity``, ``reasoning``), a mapping ``criteria`` +
      ``score1_description``.. (one per scale label), or text used verbatim.
    - ``input``: the task's input beside the instruction (PandaLM's ``### Input``); formats
      without an input slot append it to the question. Shown only when non-empty.
    - ``scale``: the verdict scale (``"1-5"``, ``"1-10"``, ``"A/B/tie"``, ``"yes/no"``, a list of
      labels, ...; see `judgelm.formats.scales`); ``None``: the judge's or the format's default.
    """

    question: str = ""
    answers: tuple[str, ...] = ()
    reference: str | None = None
    gold: str | None = None
    conversations: tuple[tuple[Turn, ...], ...] = ()
    images: tuple[Any, ...] = ()
    id: str | None = None
    mode: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    rubric: str | Mapping[str, str] | None = None
    input: str | None = None
    scale: str | tuple[str, ...] | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        record = _record_id(self.id)
        try:
            if not isinstance(self.question, str):
                raise InvalidSampleError(f"must be a string, got {kind_of(self.question)}", field="question")
            set_(self, "answers", _str_tuple("answers", self.answers))
            for name in ("reference", "gold", "mode", "input"):
                value = getattr(self, name)
                if value is not None and not isinstance(value, str):
                    raise InvalidSampleError(f"must be a string or null, got {kind_of(value)}", field=name)
            set_(self, "rubric", _rubric(self.rubric))
            set_(self, "scale", _scale(self.scale))
            set_(self, "id", record)
            convs = []
            for k, conv in enumerate(_sequence("conversations", self.conversations or (), "conversations")):
                turns = []
                for t, turn in enumerate(_sequence(f"conversations[{k}]", conv, "turns")):
                    try:
                        turns.append(_as_turn(turn))
                    except InvalidSampleError as e:
                        raise InvalidSampleError(
                            e.detail, field=f"conversations[{k}][{t}]" + (f".{e.field}" if e.field else "")
                        ) from None
                convs.append(tuple(turns))
            set_(self, "conversations", tuple(convs))
            set_(self, "images", _images(self.images))
            if self.meta is not None and not isinstance(self.meta, Mapping):
                raise InvalidSampleError(f"must be a mapping, got {kind_of(self.meta)}", field="meta")
            set_(self, "meta", MappingProxyType(dict(self.meta or {})))
        except InvalidSampleError as e:
            raise e.located(record) if record is not None else e from None

    @property
    def n_candidates(self) -> int:
        """How many things are scored: conversations for chat samples, else answers."""
        return len(self.conversations) if self.conversations else len(self.answers)

    def replace(self, **changes: Any) -> Sample:
        """A copy with fields changed (``dataclasses.replace`` that keeps ``meta``)."""
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        values["meta"] = dict(self.meta)
        values.update(changes)
        return Sample(**values)

    def to_dict(self) -> dict[str, Any]:
        """The native JSONL record of this sample (images kept only when they are paths)."""
        out: dict[str, Any] = {"id": self.id, "mode": self.mode, "question": self.question}
        out["answers"] = list(self.answers)
        if self.reference is not None:
            out["reference"] = self.reference
        if self.gold is not None:
            out["gold"] = self.gold
        if self.conversations:
            out["conversations"] = [
                [{"role": t.role, "content": t.content} for t in conv] for conv in self.conversations
            ]
        if self.images:
            out["images"] = [str(i) if isinstance(i, str) else repr(type(i)) for i in self.images]
        if self.rubric is not None:
            out["rubric"] = self.rubric if isinstance(self.rubric, str) else dict(self.rubric)
        if self.input is not None:
            out["input"] = self.input
        if self.scale is not None:
            scale = self.scale
            out["scale"] = (
                scale if isinstance(scale, str) else dict(scale) if isinstance(scale, Mapping) else list(scale)
            )
        return out


@dataclass(frozen=True)
class ScoreDistribution:
    """A judge's probability distribution over the allowed scores of one answer.

    ``probs`` is normalised over ``values``; ``outside_mass`` is the probability the model gave
    to text outside the verdict grammar before that normalisation.
    """

    values: tuple[float, ...]
    probs: tuple[float, ...]
    outside_mass: float = 0.0

    @property
    def expected(self) -> float:
        return sum(v * p for v, p in zip(self.values, self.probs, strict=True))

    @property
    def mode(self) -> float:
        return self.values[max(range(len(self.probs)), key=self.probs.__getitem__)]

    @property
    def entropy(self) -> float:
        """Shannon entropy in nats."""
        return -sum(p * math.log(p) for p in self.probs if p > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "probs": [round(p, 6) for p in self.probs],
            "outside_mass": round(self.outside_mass, 6),
            "expected": round(self.expected, 6),
        }


@dataclass(frozen=True)
class Preference:
    """Pairwise preference from the joint score distribution: P(first better), P(tie),
    P(second better), for the sample's answers in their original order."""

    first: float
    tie: float
    second: float


@dataclass(frozen=True)
class Truncation:
    """One shortened text: which answer (0-based, in the sample's order; for chat samples the
    assistant turn ``answer`` of conversation ``conversation``) and how many tokens were kept."""

    answer: int
    original_tokens: int
    kept_tokens: int
    conversation: int | None = None


@dataclass(frozen=True)
class Provenance:
    """Where a verdict came from, enough to reproduce it."""

    model: str
    format: str
    template_hash: str
    orders: tuple[tuple[int, ...], ...]
    scoring: Literal["text", "logits"] = "text"
    truncation: tuple[Truncation, ...] = ()
    with_reference: bool = False
    judgelm_version: str = ""
    # the verdict format's score scale, (lowest, highest): what rewards normalise against
    score_range: tuple[float, float] | None = None
    # logit scoring from a server's top-k log-probabilities (approximate): the verdict probability
    # the server's lists could hide (0.0: every candidate was shown); None when exact
    unseen_mass: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What a judge found about one sample.

    ``scores[i]`` scores ``answers[i]`` of the sample (original order, whatever order the judge
    saw; averaged over orders when ``swap=True``). ``winner`` is the 0-based index of the best
    answer, ``None`` on a tie or an abstain: check ``abstained`` (and ``reason``) first — a failure
    is never reported as a tie.
    """

    sample_id: str | None
    format: str
    scores: tuple[float, ...] | None
    provenance: Provenance
    winner: int | None = None
    ranking: tuple[int, ...] | None = None
    explanation: str | None = None
    text: str | None = None
    abstained: bool = False
    reason: str | None = None
    reason_code: AbstainReason | None = None
    distributions: tuple[ScoreDistribution, ...] | None = None
    preference: Preference | None = None
    rank1_probs: tuple[float, ...] | None = None
    confidence: float | None = None
    order_scores: tuple[tuple[float, ...] | None, ...] = ()
    consistent: bool | None = None
    inconsistency: float | None = None
    prompt: str | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        """One readable line: result, scores (3 significant digits), outcome probabilities,
        confidence (`judgelm.verdict_display.describe`); ``repr`` keeps every field."""
        from judgelm.verdict_display import describe

        return describe(self)

    @property
    def tie(self) -> bool:
        """True when the judge gave the best score to more than one answer (never on abstain)."""
        return not self.abstained and self.scores is not None and len(self.scores) >= 2 and self.winner is None

    @property
    def label(self) -> int | None:
        """The JudgeLM pairwise label: 1 if answer 1 wins, -1 if answer 2 wins, 0 on a tie,
        ``None`` on an abstain (the reference code would have called that a tie)."""
        if self.abstained or self.scores is None or len(self.scores) != 2:
            return None
        return {None: 0, 0: 1, 1: -1}[self.winner]

    def to_dict(self, *, prompt: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (the ``verdict`` field of judgelm's JSONL output)."""
        out = asdict(self)
        out["distributions"] = None if self.distributions is None else [d.to_dict() for d in self.distributions]
        out["tie"] = self.tie
        out["label"] = self.label
        if not prompt:
            out.pop("prompt")
        return out


def verdict_from_dict(data: Mapping[str, Any]) -> Verdict:
    """Inverse of `Verdict.to_dict` (used to read judgelm's own JSONL output back)."""

    def tup(x: Any) -> Any:
        return None if x is None else tuple(tuple(i) if isinstance(i, list) else i for i in x)

    prov = dict(data["provenance"])
    prov["orders"] = tuple(tuple(o) for o in prov.get("orders", ()))
    prov["truncation"] = tuple(Truncation(**t) for t in prov.get("truncation", ()))
    if prov.get("score_range") is not None:
        prov["score_range"] = tuple(prov["score_range"])
    dists = data.get("distributions")
    pref = data.get("preference")
    return Verdict(
        sample_id=data.get("sample_id"),
        format=data["format"],
        scores=tup(data.get("scores")),
        provenance=Provenance(**prov),
        winner=data.get("winner"),
        ranking=tup(data.get("ranking")),
        explanation=data.get("explanation"),
        text=data.get("text"),
        abstained=bool(data.get("abstained", False)),
        reason=data.get("reason"),
        reason_code=data.get("reason_code"),
        distributions=None
        if dists is None
        else tuple(ScoreDistribution(tuple(d["values"]), tuple(d["probs"]), d.get("outside_mass", 0.0)) for d in dists),
        preference=None if pref is None else Preference(**pref),
        rank1_probs=tup(data.get("rank1_probs")),
        confidence=data.get("confidence"),
        order_scores=tuple(None if s is None else tuple(s) for s in data.get("order_scores", ())),
        consistent=data.get("consistent"),
        inconsistency=data.get("inconsistency"),
        prompt=data.get("prompt"),
    )


def _record_id(value: Any) -> str | None:
    """A sample id as text (ids read from JSON may be numbers)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidSampleError(
        f"must be a string, a number or null, got {kind_of(value)}; give each record a text id", field="id"
    )


def as_samples(samples: Sample | Sequence[Sample]) -> list[Sample]:
    """``samples`` as a list of `Sample`; a wrong shape raises `InvalidSampleError` naming it."""
    if isinstance(samples, Sample):
        return [samples]
    if isinstance(samples, str | bytes | Mapping) or not isinstance(samples, Iterable):
        raise InvalidSampleError(
            f"must be a Sample or a list of Samples, got {kind_of(samples)}; build one with Sample(question, answers)",
            field="samples",
        )
    out = list(samples)
    for i, s in enumerate(out):
        if not isinstance(s, Sample):
            raise InvalidSampleError(
                f"must be a Sample, got {kind_of(s)}; a JSON record becomes one with judgelm.io.sample_from_record",
                field=f"samples[{i}]",
            )
    return out
