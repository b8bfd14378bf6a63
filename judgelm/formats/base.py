"""What a formatter is: it turns a `Sample` into a `Prompt` (exact text + `VerdictSpec`) and reads
a judge's text back into scores. Formatters are registered by name; users can register their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from judgelm.errors import FormatError, InvalidSampleError
from judgelm.formats.parsing import DEFAULT_SCORE_VALUES, ParseResult, parse_verdict_line
from judgelm.formats.scales import TIE_SCORE
from judgelm.swap import identity, permute_sample, swap_orders
from judgelm.types import Sample, Turn

__all__ = [
    "DEFAULT_SCORE_VALUES",
    "Formatter",
    "ParsedJudgment",
    "Prompt",
    "VerdictSpec",
    "get_format",
    "list_formats",
    "register_format",
]


@dataclass(frozen=True)
class VerdictSpec:
    """The verdict grammar of a prompt.

    Score grammars (JudgeLM): the judge writes ``n_scores`` scores on its first line, separated
    by ``separator`` and ended by ``terminator``; the first ``len(forced)`` of them are already
    written by the prompt (``### Response:10``). Each free score is one of ``score_values``
    (exact strings: ``"10"``, ``"7.5"``, ``"yes"``) worth ``score_numbers`` (default: the strings
    read as numbers).

    Choice grammars (``picks`` set): the judge writes one label of ``score_values`` naming the
    better of the ``n_scores`` shown candidates (``picks[i]``, 0-based) or a tie (``None``).

    ``lead`` is written before the verdict (`` `` after ``[RESULT]``); ``terminator=None`` means
    the judge ends its text (EOS) after the verdict. ``marker`` makes the grammar explain-first:
    the judge writes free text, then ``marker``, then the verdict (Prometheus: ``[RESULT]``)."""

    n_scores: int
    forced: tuple[str, ...] = ()
    score_values: tuple[str, ...] = DEFAULT_SCORE_VALUES
    separator: str = " "
    terminator: str | None = "\n"
    score_numbers: tuple[float, ...] = ()
    picks: tuple[int | None, ...] = ()
    lead: str = ""
    marker: str | None = None

    def __post_init__(self) -> None:
        if self.n_scores < 1 or len(self.forced) >= self.n_scores:
            raise FormatError(f"a verdict needs >= 1 free score (n={self.n_scores}, forced={self.forced})")
        if len(set(self.score_values)) != len(self.score_values) or len(self.score_values) < 1:
            raise FormatError(f"score_values must be distinct and non-empty: {self.score_values}")
        if self.picks:
            if self.forced or len(self.picks) != len(self.score_values):
                raise FormatError("a choice verdict has one pick per label and no forced scores")
            if any(p is not None and not 0 <= p < self.n_scores for p in self.picks):
                raise FormatError(f"picks {self.picks} name slots outside 0..{self.n_scores - 1}")
            return
        if self.score_numbers:
            if len(self.score_numbers) != len(self.score_values):
                raise FormatError("score_numbers needs one number per score value")
            return
        try:
            [float(v) for v in self.score_values]
        except ValueError as e:
            raise FormatError(f"score_values must be numbers (or give score_numbers): {e}") from None

    @property
    def is_choice(self) -> bool:
        return bool(self.picks)

    @property
    def graded_slots(self) -> range:
        """Positions on the verdict line that score the prompt's shown candidates."""
        return range(len(self.forced), self.n_scores)

    @property
    def n_graded(self) -> int:
        return self.n_scores - len(self.forced)

    @property
    def n_written(self) -> int:
        """Free values the judge writes: one label for a choice, else one per graded slot."""
        return 1 if self.picks else self.n_graded

    @cached_property
    def numbers(self) -> tuple[float, ...]:
        """The number of each score value (score grammars)."""
        return self.score_numbers or tuple(float(v) for v in self.score_values)

    @cached_property
    def values(self) -> tuple[float, ...]:
        """The per-candidate score values a verdict distribution ranges over: the score numbers,
        or for a choice loss 0 / (tie 0.5) / win 1."""
        if self.picks:
            return (0.0, TIE_SCORE, 1.0) if None in self.picks else (0.0, 1.0)
        return self.numbers

    @cached_property
    def score_range(self) -> tuple[float, float]:
        return min(self.values), max(self.values)

    def slot_values(self, written: Sequence[str]) -> tuple[int, ...]:
        """Indices into `values`, one per graded slot, of the line that writes ``written``."""
        if self.picks:
            pick = self.picks[self.score_values.index(written[0])]
            shown = [TIE_SCORE if pick is None else float(pick == k) for k in range(self.n_scores)]
            return tuple(self.values.index(x) for x in shown)
        return tuple(self.score_values.index(v) for v in written)

    def hash_key(self) -> str:
        """A stable text of this grammar for template hashes: the original five fields as they
        always printed, plus any newer field that is set."""
        key = (
            f"VerdictSpec(n_scores={self.n_scores!r}, forced={self.forced!r}, score_values={self.score_values!r}, "
            f"separator={self.separator!r}, terminator={self.terminator!r})"
        )
        extra = {f: getattr(self, f) for f in ("score_numbers", "picks", "lead", "marker") if getattr(self, f)}
        return key + (repr(extra) if extra else "")

    def with_scores(self, score_values: Sequence[str]) -> VerdictSpec:
        return dataclasses.replace(self, score_values=tuple(score_values), score_numbers=())


@dataclass(frozen=True)
class Prompt:
    """The exact text a judge reads (no BOS: the tokenizer adds it), for one order of a sample.

    ``order[k]`` is the index of the sample's candidate shown in slot k (Assistant k+1 among the
    graded slots)."""

    text: str
    format: str
    spec: VerdictSpec
    order: tuple[int, ...]
    template_hash: str
    with_reference: bool = False
    images: tuple[Any, ...] = ()
    messages: tuple[tuple[str, str], ...] = ()  # the chat form, (role, content) pairs

    def chat(self) -> list[dict[str, str]]:
        """The chat form as OpenAI-style messages (what an API-served judge receives)."""
        return [{"role": role, "content": content} for role, content in self.messages]

    @property
    def response_prefix(self) -> str:
        """Text already on the verdict line when the judge starts writing (``"10"`` or ``""``)."""
        return " ".join(self.spec.forced)


@dataclass(frozen=True)
class ParsedJudgment:
    """A judge's text read back: per-candidate scores in the sample's order, or why not."""

    scores: tuple[float, ...] | None
    explanation: str
    reason: str | None = None
    reason_code: str | None = None


def label_judgment(label: str, prompt: Prompt, explanation: str) -> ParsedJudgment:
    """The judgment of one written verdict label: per-candidate scores in the sample's order
    (a score label scores its slot; a choice label scores win 1 / tie 0.5 / loss 0)."""
    spec = prompt.spec
    if label not in spec.score_values:
        allowed = ", ".join(spec.score_values)
        return ParsedJudgment(None, explanation, f"{label!r} is not one of {allowed}", "out_of_range")
    shown = [spec.values[i] for i in spec.slot_values((label,))]
    scores = [0.0] * len(shown)
    for slot, candidate in enumerate(prompt.order):
        scores[candidate] = shown[slot]
    return ParsedJudgment(tuple(scores), explanation)


def _placeholder(sample: Sample) -> Sample:
    """A sample of the same shape with every text replaced by its field name (for template hashes)."""
    return sample.replace(
        question="{question}",
        answers=tuple(f"{{answer_{k}}}" for k in range(1, len(sample.answers) + 1)),
        reference=None if sample.reference is None else "{reference}",
        gold=None if sample.gold is None else "{gold}",
        rubric=None if sample.rubric is None else "{rubric}",
        input=None if sample.input is None else "{input}",
        conversations=tuple(
            tuple(Turn(t.role, f"{{{t.role}_{c}_{i}}}") for i, t in enumerate(conv))
            for c, conv in enumerate(sample.conversations)
        ),
        id=None,
    )


class Formatter(ABC):
    """One judging mode. Subclasses set ``name`` and ``summary`` and implement `build`.

    Contract: `build` receives the sample already permuted into the shown order and returns the
    prompt text and its `VerdictSpec`; it must insert texts verbatim. `validate` raises
    `InvalidSampleError` naming the field.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    # How candidates are re-ordered for swap=True: "reverse" (pairs), "cyclic" (N), or "none".
    swap_kind: ClassVar[str] = "reverse"
    # Whether the template has its own slot for `Sample.input`; if not, a non-empty input is
    # appended to the question (``question + "\n" + input``, the Alpaca convention).
    uses_input: ClassVar[bool] = False
    # Whether the judge writes free text before its verdict (its VerdictSpec has a `marker`):
    # logit scoring then generates that text first and reads the verdict after the marker.
    explains_first: ClassVar[bool] = False
    # Where the judge's text ends besides EOS: its template starting over (a judge that does not
    # stop by itself writes the prompt's closing line again, e.g. JudgeLM's "### Response:").
    # Generation stops there (`GenerationOptions.stop_strings`) and the text is cut before it.
    stop_strings: ClassVar[tuple[str, ...]] = ()

    # ---- to implement -------------------------------------------------------------------------
    @abstractmethod
    def build(self, sample: Sample) -> tuple[str, VerdictSpec]:
        """Prompt text and grammar for ``sample`` in the order shown."""

    def validate(self, sample: Sample) -> None:
        """Raise `InvalidSampleError` if ``sample`` cannot be judged in this mode."""
        return None  # every sample is fine unless a format says otherwise

    def prepare(self, sample: Sample) -> Sample:
        """Derive missing fields before rendering (e.g. a gold answer from the reference)."""
        return sample

    def messages(self, sample: Sample, text: str) -> tuple[tuple[str, str], ...]:
        """The chat form of the prompt ``text`` built for ``sample`` (default: one user message
        holding the exact text; formats with a system prompt override this)."""
        return (("user", text),)

    # ---- provided -----------------------------------------------------------------------------
    def n_candidates(self, sample: Sample) -> int:
        return sample.n_candidates

    def orders(self, sample: Sample, swap: bool = False) -> tuple[tuple[int, ...], ...]:
        """The orders to judge in: identity, plus the swapped ones when ``swap``."""
        n = self.n_candidates(sample)
        if not swap or self.swap_kind == "none" or n < 2:
            return (identity(n),)
        return swap_orders(n, self.swap_kind)

    def render(self, sample: Sample, order: Sequence[int] | None = None) -> Prompt:
        sample = self.prepare(self._fold_input(sample))
        self.validate(sample)
        n = self.n_candidates(sample)
        order = identity(n) if order is None else tuple(order)
        if sorted(order) != list(range(n)):
            raise FormatError(f"order {order} is not a permutation of {n} candidates")
        shown = permute_sample(sample, order)
        text, spec = self.build(shown)
        if spec.n_graded != n:
            raise FormatError(f"format {self.name!r} grades {spec.n_graded} slots for {n} candidates")
        return Prompt(
            text=text,
            format=self.name,
            spec=spec,
            order=order,
            template_hash=self.template_hash(sample),
            with_reference=sample.reference is not None,
            images=sample.images,
            messages=self.messages(shown, text),
        )

    def _fold_input(self, sample: Sample) -> Sample:
        if self.uses_input or not sample.input:
            return sample
        return sample.replace(question=f"{sample.question}\n{sample.input}", input=None)

    def template_hash(self, sample: Sample) -> str:
        """12 hex digits identifying the exact template bytes used for a sample of this shape."""
        text, spec = self.build(_placeholder(self._fold_input(sample)))
        key = f"{self.name}\0{text}\0{spec.hash_key()}".encode()
        return hashlib.sha256(key).hexdigest()[:12]

    def parse(self, text: str, prompt: Prompt, *, official: bool = False) -> ParsedJudgment:
        """Read the judge's continuation of ``prompt`` back into per-candidate scores."""
        spec = prompt.spec
        line_text = prompt.response_prefix + text
        result: ParseResult = parse_verdict_line(
            line_text, spec.n_scores, official=official, score_range=spec.score_range
        )
        explanation = line_text.partition("\n")[2].strip()
        if result.scores is None:
            return ParsedJudgment(None, explanation, result.reason, result.reason_code)
        shown = result.scores[len(spec.forced) :]
        scores = [0.0] * len(shown)
        for slot, candidate in enumerate(prompt.order):
            scores[candidate] = shown[slot]
        return ParsedJudgment(tuple(scores), explanation)

    # ---- truncation hooks: which texts may be shortened to fit the context -------------------
    def shortenable(self, sample: Sample) -> list[str]:
        """Texts that truncation may shorten, in a stable order (default: the answers)."""
        return list(sample.answers)

    def with_shortened(self, sample: Sample, texts: Sequence[str]) -> Sample:
        return sample.replace(answers=tuple(texts))


_REGISTRY: dict[str, Formatter] = {}


def register_format(formatter: Formatter | type[Formatter], *, overwrite: bool = False) -> Formatter:
    """Register a formatter (an instance or a class) under its ``name``. Usable as a decorator."""
    instance = formatter() if isinstance(formatter, type) else formatter
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name:
        raise FormatError(f"{type(instance).__name__} has no `name`")
    if name in _REGISTRY and not overwrite:
        raise FormatError(f"format {name!r} is already registered (pass overwrite=True)")
    _REGISTRY[name] = instance
    return formatter  # type: ignore[return-value]


def get_format(name: str) -> Formatter:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FormatError(f"unknown format {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def list_formats() -> dict[str, str]:
    """Registered format names with their one-line summaries."""
    return {name: f.summary for name, f in sorted(_REGISTRY.items())}


def require(condition: bool, message: str, field: str) -> None:
    if not condition:
        raise InvalidSampleError(message, field=field)
