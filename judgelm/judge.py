"""`Judge`: the front door. It composes formatter -> prompt -> engine -> verdict.

Every helper (`compare`, `grade`, `rank`, `compare_chats`) wraps the one batched `Judge.judge`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from judgelm import __version__
from judgelm.config import JudgeConfig
from judgelm.errors import InvalidSampleError, PromptTooLongError
from judgelm.formats import get_format, infer_mode
from judgelm.formats.base import Formatter, ParsedJudgment
from judgelm.modalities.text import EncodedPrompt, TruncationPolicy, fit_prompt
from judgelm.types import Provenance, Sample, Turn, Verdict, as_samples

__all__ = ["Discussion", "Judge"]

Scoring = Literal["text", "logits"]

# New tokens for a score line: a few tokens per score ("10" is 2 tokens + a separator) + slack.
_SCORE_LINE_TOKENS_PER_SCORE = 4
DEFAULT_EXPLAIN_TOKENS = 512


@dataclass(frozen=True)
class Discussion:
    """A follow-up conversation with the judge about one of its verdicts."""

    context: str  # the judge prompt followed by the verdict it wrote
    turns: tuple[Turn, ...] = ()

    @property
    def reply(self) -> str | None:
        """The judge's latest answer."""
        return self.turns[-1].content if self.turns and self.turns[-1].role == "assistant" else None


@dataclass
class _Job:
    """One sample on its way through `Judge.judge`."""

    sample: Sample
    format: Formatter | None = None
    encoded: tuple[EncodedPrompt, ...] = ()
    verdict: Verdict | None = None  # set early when the sample is refused


class Judge:
    """A judge: a causal LM plus the JudgeLM formats.

    >>> judge = Judge.from_pretrained("BAAI/JudgeLM-7B-v1.0")       # doctest: +SKIP
    >>> judge.compare("What is 2+2?", "4", "5").winner                # doctest: +SKIP
    0
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str | None = None,
        engine: Any | None = None,
        truncation: TruncationPolicy = "answers",
        max_batch_tokens: int | None = None,
        config: JudgeConfig | None = None,
    ):
        from judgelm.engine.hf import HFEngine

        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        self.engine = engine or HFEngine(model, tokenizer, max_batch_tokens=max_batch_tokens)
        self.truncation: TruncationPolicy = truncation
        self.config = config or JudgeConfig()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | None = None,
        *,
        device: str | None = None,
        dtype: Any = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        gguf_file: str | None = None,
        truncation: TruncationPolicy = "answers",
        max_batch_tokens: int | None = None,
        **model_kwargs: Any,
    ) -> Judge:
        """Load any Hugging Face causal LM as a judge (a local folder, a hub id, a .gguf file, or
        ``None`` for the embedded SmolLM2 demo judge). Safetensors are preferred, torch files
        load with ``weights_only=True``, and remote code runs only with ``trust_remote_code``."""
        from judgelm.engine.loading import load_model_and_tokenizer

        model, tokenizer, name = load_model_and_tokenizer(
            name_or_path,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            revision=revision,
            gguf_file=gguf_file,
            **model_kwargs,
        )
        config = JudgeConfig.load(name_or_path) if name_or_path and Path(name_or_path).is_dir() else None
        return cls(model, tokenizer, name=name, truncation=truncation, max_batch_tokens=max_batch_tokens, config=config)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Save weights (safetensors), tokenizer and ``judge.json`` so `from_pretrained` reloads
        the same judge."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        self.config.save(folder)
        return folder

    # ---- the batched call -------------------------------------------------------------------
    def judge(
        self,
        samples: Sample | Sequence[Sample],
        *,
        mode: str | None = None,
        swap: bool = False,
        explain: bool = False,
        scoring: Scoring = "text",
        max_new_tokens: int | None = None,
        official_parser: bool = False,
        truncation: TruncationPolicy | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Verdict]:
        """Judge samples in one batched pass; one `Verdict` per sample, in order.

        - ``mode``: a format name for all samples (default: each sample's ``mode`` or inferred).
        - ``swap``: also judge with the candidates re-ordered (reversed for pairs, rotated for N)
          and average; ``Verdict.consistent`` tells whether the orders agreed.
        - ``explain``: let the judge write its explanation; otherwise generation stops at the
          first newline like the reference "fast eval".
        - ``official_parser``: read scores exactly like the reference ``parse_score``.

        A sample that cannot be judged (wrong shape, too long under ``truncation="error"``, an
        unreadable verdict) gets an abstained verdict with a reason; it never raises for those.
        """
        if scoring not in ("text", "logits"):
            raise ValueError(f"scoring must be 'text' or 'logits', got {scoring!r}")
        if scoring == "logits":
            raise NotImplementedError("logit scoring arrives with the scoring head")
        policy = truncation or self.truncation
        jobs = [self._prepare(s, mode, swap, explain, max_new_tokens, policy) for s in as_samples(samples)]
        flat = [(j, e) for j in jobs if j.verdict is None for e in j.encoded]
        if flat:
            budget = max_new_tokens or self._default_new_tokens(explain, flat)
            outputs = self.engine.generate(
                [e.input_ids for _, e in flat],
                max_new_tokens=budget,
                stop_at_newline=not explain,
                on_batch=on_progress,
            )
            texts = self.tokenizer.batch_decode(outputs, skip_special_tokens=True)
            by_job: dict[int, list[str]] = {}
            for (job, _), text in zip(flat, texts, strict=True):
                by_job.setdefault(id(job), []).append(text)
            for job in jobs:
                if job.verdict is None:
                    job.verdict = self._combine(job, by_job[id(job)], official_parser, explain)
        return [j.verdict for j in jobs]  # type: ignore[misc]

    def encode(
        self, sample: Sample, *, mode: str | None = None, swap: bool = False, explain: bool = False
    ) -> tuple[EncodedPrompt, ...]:
        """The prompts (text, token ids, truncation) this judge would read for ``sample``, one per
        order; raises `InvalidSampleError` / `PromptTooLongError` instead of abstaining."""
        fmt = get_format(mode or infer_mode(sample))
        budget = self._prompt_budget(explain, None, fmt.n_candidates(sample) + 1)
        return tuple(
            fit_prompt(fmt, sample, o, self.tokenizer, budget, self.truncation) for o in fmt.orders(sample, swap)
        )

    def _default_new_tokens(self, explain: bool, flat: list[tuple[_Job, EncodedPrompt]]) -> int:
        if explain:
            return DEFAULT_EXPLAIN_TOKENS
        n_scores = max(e.prompt.spec.n_scores for _, e in flat)
        return _SCORE_LINE_TOKENS_PER_SCORE * n_scores + 4

    def _prompt_budget(self, explain: bool, max_new_tokens: int | None, n_scores: int) -> int:
        reserve = max_new_tokens or (DEFAULT_EXPLAIN_TOKENS if explain else _SCORE_LINE_TOKENS_PER_SCORE * n_scores + 4)
        context = self.engine.context_length
        return max(context - min(reserve, context // 2), 1)

    def _prepare(
        self,
        sample: Sample,
        mode: str | None,
        swap: bool,
        explain: bool,
        max_new_tokens: int | None,
        policy: TruncationPolicy,
    ) -> _Job:
        job = _Job(sample)
        name = mode or infer_mode(sample)
        try:
            job.format = get_format(name)
            orders = job.format.orders(sample, swap)
            budget = self._prompt_budget(explain, max_new_tokens, job.format.n_candidates(sample) + 1)
            job.encoded = tuple(fit_prompt(job.format, sample, o, self.tokenizer, budget, policy) for o in orders)
        except InvalidSampleError as e:
            job.verdict = self._abstain(sample, name, "invalid_input", str(e))
        except PromptTooLongError as e:
            job.verdict = self._abstain(sample, name, "too_long", str(e))
        return job

    def _abstain(
        self, sample: Sample, fmt: str, code: str, reason: str, *, provenance: Provenance | None = None, **kw: Any
    ) -> Verdict:
        prov = provenance or Provenance(
            model=self.name, format=fmt, template_hash="", orders=(), judgelm_version=__version__
        )
        return Verdict(
            sample_id=sample.id,
            format=fmt,
            scores=None,
            provenance=prov,
            abstained=True,
            reason=reason,
            reason_code=code,
            **kw,  # type: ignore[arg-type]
        )

    def _combine(self, job: _Job, texts: list[str], official: bool, explain: bool) -> Verdict:
        assert job.format is not None
        fmt, first = job.format, job.encoded[0]
        parsed: list[ParsedJudgment] = [
            fmt.parse(t, e.prompt, official=official) for t, e in zip(texts, job.encoded, strict=True)
        ]
        prov = Provenance(
            model=self.name,
            format=fmt.name,
            template_hash=first.prompt.template_hash,
            orders=tuple(e.prompt.order for e in job.encoded),
            scoring="text",
            truncation=first.truncation,
            with_reference=first.prompt.with_reference,
            judgelm_version=__version__,
        )
        order_scores = tuple(p.scores for p in parsed)
        common = {"text": texts[0], "order_scores": order_scores, "prompt": first.prompt.text}
        ok = [p for p in parsed if p.scores is not None]
        if not ok:
            bad = parsed[0]
            return self._abstain(
                job.sample,
                fmt.name,
                bad.reason_code or "unparseable",
                bad.reason or "unreadable verdict",
                provenance=prov,
                **common,
            )
        scores = tuple(statistics.fmean(col) for col in zip(*(p.scores for p in ok), strict=True))  # type: ignore[misc]
        winners = {_winner(p.scores) for p in ok}  # type: ignore[arg-type]
        return Verdict(
            sample_id=job.sample.id,
            format=fmt.name,
            scores=scores,
            provenance=prov,
            winner=_winner(scores),
            ranking=_ranking(scores),
            explanation=ok[0].explanation if explain else None,
            consistent=(len(winners) == 1) if len(ok) >= 2 else None,
            **common,
        )

    # ---- helpers: each is one sample through `judge` ----------------------------------------
    def compare(
        self, question: str, answer_a: str, answer_b: str, *, reference: str | None = None, **kw: Any
    ) -> Verdict:
        """Which of two answers is better (pairwise)."""
        return self.judge(Sample(question, (answer_a, answer_b), reference=reference, mode="pairwise"), **kw)[0]

    def grade(
        self, question: str, answer: str, *, gold: str | None = None, reference: str | None = None, **kw: Any
    ) -> Verdict:
        """Score one answer (single); ``gold`` (or else ``reference``) anchors Assistant 1 at 10."""
        return self.judge(Sample(question, (answer,), reference=reference, gold=gold, mode="single"), **kw)[0]

    def rank(self, question: str, answers: Sequence[str], *, reference: str | None = None, **kw: Any) -> Verdict:
        """Score and rank N answers in one prompt (pairwise for 2, multi for 3+)."""
        mode = "pairwise" if len(answers) == 2 else "multi"
        return self.judge(Sample(question, tuple(answers), reference=reference, mode=mode), **kw)[0]

    def compare_chats(
        self,
        conversation_a: Sequence[Turn | dict[str, str]],
        conversation_b: Sequence[Turn | dict[str, str]] | None = None,
        *,
        reference: str | None = None,
        **kw: Any,
    ) -> Verdict:
        """Compare two assistants' multi-turn conversations with the same user (or grade one)."""
        convs = (conversation_a,) if conversation_b is None else (conversation_a, conversation_b)
        return self.judge(Sample(conversations=convs, reference=reference, mode="chat"), **kw)[0]  # type: ignore[arg-type]

    def discuss(self, about: Verdict | Discussion, message: str, *, max_new_tokens: int = 256) -> Discussion:
        """Ask the judge a follow-up question about a verdict it gave.

        The judge sees its prompt and verdict, then Vicuna-v1.1 turns
        (``USER: ... ASSISTANT: ...</s>``), as in the JudgeLM demo. Pass the returned
        `Discussion` back in to go on; `Discussion.reply` is the latest answer."""
        if isinstance(about, Verdict):
            if about.prompt is None or about.text is None:
                raise ValueError("this verdict has no prompt/text to discuss (judged with scoring='logits'?)")
            about = Discussion(context=about.prompt + about.text)
        eos = self.tokenizer.eos_token or ""
        history = "".join(
            f"USER: {u.content} ASSISTANT: {a.content}{eos}"
            for u, a in zip(about.turns[::2], about.turns[1::2], strict=True)
        )
        text = f"{about.context} {history}USER: {message} ASSISTANT:"
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        out = self.engine.generate([ids], max_new_tokens=max_new_tokens)[0]
        reply = self.tokenizer.decode(out, skip_special_tokens=True).strip()
        return Discussion(about.context, (*about.turns, Turn("user", message), Turn("assistant", reply)))


def _winner(scores: Sequence[float]) -> int | None:
    """Index of the strictly best score; None on a tie for best (or a single score)."""
    if len(scores) < 2:
        return None
    best = max(scores)
    top = [i for i, s in enumerate(scores) if s == best]
    return top[0] if len(top) == 1 else None


def _ranking(scores: Sequence[float]) -> tuple[int, ...] | None:
    """Candidate indices best first (ties keep input order); None for a single score."""
    if len(scores) < 2:
        return None
    return tuple(sorted(range(len(scores)), key=lambda i: -scores[i]))
