"""`Judge`: the front door. It composes formatter -> prompt -> engine -> verdict.

Every helper (`compare`, `grade`, `rank`, `compare_chats`) wraps the one batched `Judge.judge`.
Two ways to read a verdict:

- ``scoring="logits"`` (the default when the engine can): the scoring head reads the judge's
  probability of every allowed verdict line from its logits — no text is parsed, nothing fails
  silently; a verdict whose probability mostly lies outside the grammar abstains.
- ``scoring="text"``: greedy generation, then the score line is parsed (the reference behaviour).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from judgelm import strict_json
from judgelm.config import JudgeConfig
from judgelm.errors import InvalidSampleError, JudgeLMError, PromptTooLongError
from judgelm.formats import get_format, infer_mode
from judgelm.formats.base import Formatter, ParsedJudgment
from judgelm.formats.followup import followup_context, followup_prompt, score_line
from judgelm.modalities.text import EncodedPrompt, TruncationPolicy, fit_prompt
from judgelm.options import JudgeOptions, Scoring, SlotStrategy
from judgelm.scoring.combine import Calibration
from judgelm.types import Provenance, Sample, Turn, Verdict, as_samples
from judgelm.version import __version__

if TYPE_CHECKING:
    from judgelm.engine.base import Engine

__all__ = ["ChunkSizer", "Discussion", "Judge"]

# New tokens for a score line: a few tokens per score ("10" is 2 tokens + a separator) + slack.
_SCORE_LINE_TOKENS_PER_SCORE = 4
DEFAULT_EXPLAIN_TOKENS = 512
DEFAULT_ABSTAIN_THRESHOLD = 0.5  # abstain when more probability than this lies outside the grammar


@dataclass(frozen=True)
class Discussion:
    """A follow-up conversation with the judge about one of its verdicts."""

    context: str  # the judge prompt followed by the verdict it wrote
    turns: tuple[Turn, ...] = ()
    images: tuple[Any, ...] = ()  # the judged sample's images (paths, bytes, PIL): a vision judge sees them again
    stop_strings: tuple[str, ...] = ()  # the verdict's format's: a reply that starts a new judgment is over

    @property
    def reply(self) -> str | None:
        """The judge's latest answer."""
        return self.turns[-1].content if self.turns and self.turns[-1].role == "assistant" else None


class ChunkSizer:
    """How many samples `Judge.stream` judges next: one first (the first verdict as soon as
    possible), then as many as take about ``seconds`` at the speed seen so far, at most ``limit``
    and at most twice the last chunk."""

    def __init__(self, limit: int, seconds: float):
        if limit < 1 or seconds <= 0:
            raise ValueError(f"need limit >= 1 and seconds > 0, got {limit}, {seconds}")
        self.limit, self.seconds, self.size = limit, seconds, 1

    def record(self, judged: int, elapsed: float) -> None:
        """``judged`` samples (refused ones excluded) took ``elapsed`` seconds."""
        fits = self.limit if judged == 0 or elapsed <= 0 else int(self.seconds * judged / elapsed)
        self.size = max(1, min(self.limit, 2 * self.size, fits))


@dataclass
class _Job:
    """One sample on its way through `Judge.judge`."""

    sample: Sample
    index: int = 0  # position in the `Judge.judge` call (what ``on_token`` reports)
    format: Formatter | None = None
    encoded: tuple[EncodedPrompt, ...] = ()
    images: tuple[Any, ...] | None = None  # preprocessed image tensors, for vision judges
    texts: list[str] = field(default_factory=list)  # generated continuations, one per order
    generated: list[list[int]] = field(default_factory=list)  # their token ids (explain-first scoring)
    scores: list[Any] = field(default_factory=list)  # PromptScores (None: no verdict marker), one per order
    missing: list[str | None] = field(default_factory=list)  # explain-first: why an order has no scores
    failure: str | None = None  # the engine could not run an order (a remote request failed)
    verdict: Verdict | None = None  # set early when the sample is refused

    def add_scores(self, result: Any, missing: str | None = None) -> None:
        """One order's scores (`PromptScores`, None, or the engine's `RowFailure`)."""
        from judgelm.engine.base import RowFailure

        if isinstance(result, RowFailure):
            self.failure, result, missing = result.reason, None, result.reason
        self.scores.append(result)
        self.missing.append(missing)


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
        abstain_threshold: float = DEFAULT_ABSTAIN_THRESHOLD,
    ):
        from judgelm.engine.registry import make_engine

        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        # PackedEngine for the Llama-family checkpoints it runs exactly, HFEngine otherwise (logged)
        self.engine: Engine = engine or make_engine(model, tokenizer, max_batch_tokens=max_batch_tokens)
        self.truncation: TruncationPolicy = truncation
        self.config = config or JudgeConfig()
        self.abstain_threshold = abstain_threshold

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
        abstain_threshold: float | None = None,
        **model_kwargs: Any,
    ) -> Judge:
        """Load any Hugging Face causal LM as a judge (a local folder, a hub id, a .gguf file, or
        ``None`` for the embedded SmolLM2 demo judge). Safetensors are preferred, torch files
        load with ``weights_only=True``, and remote code runs only with ``trust_remote_code``.
        A ``judge.json`` beside the weights (calibration, vision tower) is applied; a local Hugging Face
        vision-language model folder (``AutoModelForImageTextToText``, LLaVA-style) loads as a vision judge.

        ``abstain_threshold`` defaults to 0.5, and to 1.0 (never abstain on grammar mass) for the
        demo judge, which is not trained to write verdicts: its distributions are then conditional
        on the verdict grammar, and ``p(grammar)`` says how little mass that is."""
        from judgelm.engine.loading import DEMO_NAME, load_model_and_tokenizer

        config = JudgeConfig.locate(name_or_path, revision)  # local folder or hub repo (offline-safe)
        if config is not None and config.vision:
            from judgelm.engine.loading import resolve_device, resolve_dtype
            from judgelm.vision import load_vision_judge

            dev = resolve_device(device)
            model, tokenizer = load_vision_judge(name_or_path, device=dev, dtype=resolve_dtype(dtype, dev))
            name = name_or_path
        elif name_or_path and _is_hf_vision_model(name_or_path):  # a local LLaVA-style HF folder
            from judgelm.vision import load_hf_vision_judge

            model, tokenizer = load_hf_vision_judge(name_or_path, device=device, dtype=dtype)
            name = name_or_path
        else:
            model, tokenizer, name = load_model_and_tokenizer(
                name_or_path,
                device=device,
                dtype=dtype,
                trust_remote_code=trust_remote_code,
                revision=revision,
                gguf_file=gguf_file,
                **model_kwargs,
            )
        if abstain_threshold is None:
            abstain_threshold = 1.0 if name == DEMO_NAME else DEFAULT_ABSTAIN_THRESHOLD
        return cls(
            model,
            tokenizer,
            name=name,
            truncation=truncation,
            max_batch_tokens=max_batch_tokens,
            config=config,
            abstain_threshold=abstain_threshold,
        )

    @classmethod
    def from_endpoint(
        cls,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        tokenizer: Any = None,
        logprobs: Literal["auto", "echo", "top_k", "none"] = "auto",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        requests_per_minute: float | None = None,
        context_length: int | None = None,
        truncation: TruncationPolicy = "answers",
        abstain_threshold: float = DEFAULT_ABSTAIN_THRESHOLD,
        config: JudgeConfig | None = None,
    ) -> Judge:
        """A judge whose model runs behind any OpenAI-compatible server (vLLM, SGLang, TGI,
        llama.cpp's server, ``judgelm serve``, a hosted API): ``base_url`` like
        ``http://host:8000/v1``, ``model`` the name the server knows.

        Prompts are rendered and token-counted here, with ``tokenizer`` (a tokenizer, or a name or
        folder to load one from), else the tokenizer of ``model`` when its files are on this
        machine (a folder, or the Hugging Face cache); a server's own tokenizer is not used (the
        verdict grammar needs the vocabulary). Verdicts are read from prompt log-probabilities
        where the server returns them (``echo``: exact, the local judge's distributions), else
        from top-k log-probabilities (approximate; ``Verdict.provenance.unseen_mass``), else from
        text (``logprobs="auto"`` probes once; see `judgelm.engine.remote`). Requests run
        ``concurrency`` at a time with ``timeout``, retried with backoff (``Retry-After`` honoured,
        4xx not retried); a sample whose request still fails abstains (``engine_error``)."""
        from judgelm.engine.registry import make_engine

        tok = _endpoint_tokenizer(model, tokenizer)
        engine = make_engine(
            model,
            tok,
            engine="openai",
            base_url=base_url,
            api_key=api_key,
            logprobs=logprobs,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            requests_per_minute=requests_per_minute,
            context_length=context_length,
        )
        engine.capabilities  # noqa: B018 (probe now: an unreachable server is one error here)
        if config is None and isinstance(tokenizer, str | None):
            config = JudgeConfig.locate(tokenizer or model)
        return cls(
            None,
            tok,
            name=model,
            engine=engine,
            truncation=truncation,
            config=config,
            abstain_threshold=abstain_threshold,
        )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Save weights (safetensors), tokenizer and ``judge.json`` so `from_pretrained` reloads
        the same judge."""
        from judgelm.engine.base import embeds_images

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if embeds_images(self.model):  # a vision judge
            from judgelm.vision import VisionJudgeModel, save_vision_judge

            if isinstance(self.model, VisionJudgeModel):  # open_clip tower + projector
                save_vision_judge(self.model, self.tokenizer, folder, config=self.config)
            else:  # a Hugging Face vision-language model with its processor
                self.model.save_pretrained(folder)
                self.config.save(folder)
            return folder
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        self.config.save(folder)
        return folder

    @property
    def calibration(self) -> Calibration:
        return Calibration.from_dict(self.config.calibration)

    @calibration.setter
    def calibration(self, value: Calibration) -> None:
        self.config = self.config.replace(calibration=value.to_dict())

    # ---- the batched call -------------------------------------------------------------------
    def judge(
        self,
        samples: Sample | Sequence[Sample],
        options: JudgeOptions | None = None,
        *,
        mode: str | None = None,
        swap: bool | None = None,
        explain: bool | None = None,
        scoring: Scoring | None = None,
        slots: SlotStrategy | None = None,
        max_new_tokens: int | None = None,
        official_parser: bool | None = None,
        truncation: TruncationPolicy | None = None,
        calibrated: bool | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_token: Callable[[int, int, int], None] | None = None,
    ) -> list[Verdict]:
        """Judge samples in one batched pass; one `Verdict` per sample, in order.

        How to judge: a `JudgeOptions` (``options``), or its fields as keywords (a keyword given
        overrides that field of ``options``; unset fields keep ``JudgeOptions()``'s defaults):

        - ``mode``: a format name for all samples (default: each sample's ``mode`` or inferred).
        - ``swap``: also judge with the candidates re-ordered (reversed for pairs, rotated for N)
          and average; ``Verdict.consistent`` / ``inconsistency`` tell whether the orders agreed.
        - ``explain``: also let the judge write its explanation (generation); otherwise text
          generation stops at the first newline like the reference "fast eval".
        - ``scoring``: ``"logits"`` reads verdict distributions from the logits, ``"text"`` parses
          generated text; ``"auto"`` is logits when the engine supports it.
        - ``slots``: for logit scoring of several answers, ``"joint"`` (exact joint distribution),
          ``"greedy"`` (each slot given the most probable earlier ones), ``"auto"`` (joint when
          at most 400 verdict lines).
        - ``official_parser``: (text scoring) read scores exactly like the format's own code
          (`judgelm.formats.parse_official`; a failure still abstains, never counts as a tie).
        - ``truncation``: over-long prompts (default: the judge's ``truncation``).
        - ``calibrated``: apply the judge's fitted calibration (logit scoring).

        Explain-first formats (``prometheus_*``) always generate the judge's feedback first (up to
        ``max_new_tokens``, default 512); logit scoring then reads the result slot after it.

        ``on_progress(n)`` is called as batches of ``n`` samples finish. ``on_token(sample, order,
        token)`` streams the generated text (explanations, text scoring): every new token id of
        order ``order`` (an index into ``provenance.orders``) of ``samples[sample]``, as the engine
        chooses it (rows interleave; called on the thread that runs the model). A sample that cannot be
        judged (wrong shape, too long under ``truncation="error"``, an unreadable verdict) gets an
        abstained verdict with a reason; it never raises for those.
        """
        opts = self._options(
            options,
            mode=mode,
            swap=swap,
            explain=explain,
            scoring=scoring,
            slots=slots,
            max_new_tokens=max_new_tokens,
            official_parser=official_parser,
            truncation=truncation,
            calibrated=calibrated,
        )
        jobs = self._prepare_all(samples, opts)
        self._run(jobs, opts, on_progress, on_token)
        return [j.verdict for j in jobs]  # type: ignore[misc]

    def stream(
        self,
        samples: Sample | Sequence[Sample],
        options: JudgeOptions | None = None,
        *,
        max_chunk: int = 64,
        chunk_seconds: float = 2.0,
        on_progress: Callable[[int], None] | None = None,
        **option_fields: Any,
    ) -> Iterator[tuple[int, Verdict]]:
        """Judge like `judge` (same options, as ``options`` or keywords), yielding ``(index,
        verdict)`` as verdicts are made, in input order.

        Samples go through in chunks (`ChunkSizer`): the first is one sample, so the first verdict
        comes as soon as one sample is judged; each later chunk holds as many samples as take about
        ``chunk_seconds`` at the speed seen so far (at most ``max_chunk``, at most twice the last
        chunk). On a GPU chunks double up to ``max_chunk`` (throughput); on a CPU they stay a few
        samples (latency; on a CPU a chunk of one judges as fast per sample as a chunk of seven,
        benchmarks/RESULTS.md). Leaving the loop early (an error, Ctrl-C) loses at most the chunk
        in flight; what was yielded is done."""
        opts = self._options(options, **option_fields)
        jobs = self._prepare_all(samples, opts)
        sizer = ChunkSizer(max_chunk, chunk_seconds)
        start = 0
        while start < len(jobs):
            chunk = jobs[start : start + sizer.size]
            judged, began = sum(j.verdict is None for j in chunk), time.perf_counter()
            self._run(chunk, opts, on_progress)
            sizer.record(judged, time.perf_counter() - began)
            for k, job in enumerate(chunk):
                assert job.verdict is not None
                yield start + k, job.verdict
            start += len(chunk)

    def _options(self, options: JudgeOptions | None, **given: Any) -> JudgeOptions:
        """``options`` with the fields given as keywords (not None) replaced."""
        unknown = set(given) - set(JudgeOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown judging option(s): {', '.join(sorted(unknown))}")
        return (options or JudgeOptions()).replace(**{k: v for k, v in given.items() if v is not None})

    def _prepare_all(self, samples: Sample | Sequence[Sample], opts: JudgeOptions) -> list[_Job]:
        policy = opts.truncation or self.truncation
        return [
            self._prepare(s, opts.mode, opts.swap, opts.explain, opts.max_new_tokens, policy, index=i)
            for i, s in enumerate(as_samples(samples))
        ]

    def _run(
        self,
        jobs: Sequence[_Job],
        opts: JudgeOptions,
        on_progress: Callable[[int], None] | None,
        on_token: Callable[[int, int, int], None] | None = None,
    ) -> None:
        """Judge every job not refused already, setting its ``verdict``."""
        kind = self._resolve_scoring(opts.scoring)
        live = [j for j in jobs if j.verdict is None]
        if live and kind == "logits":
            self._run_logits(live, opts.slots, on_progress, opts.max_new_tokens, on_token)
        pending = [j for j in live if not j.texts]  # explain-first logit scoring generated already
        if pending and (kind == "text" or opts.explain):
            progress = None if kind == "logits" else on_progress
            self._run_generation(pending, opts.explain, opts.max_new_tokens, progress, on_token)
        calibration = self.calibration if opts.calibrated else Calibration()
        for job in live:
            if job.failure is not None:
                job.verdict = self._failed(job, kind)
            elif kind == "logits":
                job.verdict = self._logit_verdict(job, opts.explain, calibration)
            else:
                job.verdict = self._text_verdict(job, opts.official_parser, opts.explain)

    def raw_scores(
        self, samples: Sequence[Sample], *, mode: str | None = None, swap: bool = False, slots: SlotStrategy = "auto"
    ) -> list[tuple[tuple[Any, ...], tuple[tuple[int, ...], ...]] | None]:
        """Uncalibrated verdict distributions (`PromptScores` per order) and the orders, per
        sample (``None`` for samples that cannot be judged); what calibration is fitted on."""
        jobs = [self._prepare(s, mode, swap, False, None, self.truncation) for s in samples]
        live = [j for j in jobs if j.verdict is None]
        if live:
            self._run_logits(live, slots, None)
        out: list[tuple[tuple[Any, ...], tuple[tuple[int, ...], ...]] | None] = []
        for j in jobs:
            read = [(r, e.prompt.order) for r, e in zip(j.scores, j.encoded, strict=True) if r is not None]
            out.append(
                None if j.verdict is not None or not read else (tuple(r for r, _ in read), tuple(o for _, o in read))
            )
        return out

    def encode(
        self, sample: Sample, *, mode: str | None = None, swap: bool = False, explain: bool = False
    ) -> tuple[EncodedPrompt, ...]:
        """The prompts (text, token ids, truncation) this judge would read for ``sample``, one per
        order; raises `InvalidSampleError` / `PromptTooLongError` instead of abstaining."""
        fmt = get_format(mode or infer_mode(sample))
        sample = self._with_defaults(sample)
        budget = self._prompt_budget(explain or fmt.explains_first, None, fmt.n_candidates(sample) + 1)
        return tuple(
            fit_prompt(fmt, sample, o, self.tokenizer, budget, self.truncation) for o in fmt.orders(sample, swap)
        )

    # ---- internals ----------------------------------------------------------------------------
    def _resolve_scoring(self, scoring: Scoring) -> Literal["logits", "text"]:
        can = self.engine.capabilities.logits
        if scoring == "logits" and not can:
            raise ValueError("this judge's engine cannot read logits; use scoring='text'")
        return "logits" if scoring == "logits" or (scoring == "auto" and can) else "text"

    def _prompt_budget(self, explain: bool, max_new_tokens: int | None, n_scores: int) -> int:
        reserve = max_new_tokens or (DEFAULT_EXPLAIN_TOKENS if explain else _SCORE_LINE_TOKENS_PER_SCORE * n_scores + 4)
        context = self.engine.facts.context_length
        return max(context - min(reserve, context // 2), 1)

    def _prepare(
        self,
        sample: Sample,
        mode: str | None,
        swap: bool,
        explain: bool,
        max_new_tokens: int | None,
        policy: TruncationPolicy,
        *,
        index: int = 0,
    ) -> _Job:
        job = _Job(sample, index)
        name = mode or infer_mode(sample)
        try:
            strict_json.check_text(sample.to_dict())  # text the tokenizer (and any output) cannot take
            sample = self._with_defaults(sample)
            job.format = get_format(name)
            orders = job.format.orders(sample, swap)
            explain = explain or job.format.explains_first
            budget = self._prompt_budget(explain, max_new_tokens, job.format.n_candidates(sample) + 1)
            job.encoded = tuple(fit_prompt(job.format, sample, o, self.tokenizer, budget, policy) for o in orders)
            if job.encoded[0].prompt.images or self.engine.capabilities.images:
                self._check_image_slots(sample, job.encoded)
                if job.encoded[0].prompt.images:
                    job.images = self._load_images(job.encoded[0].prompt.images, sample.id)
        except InvalidSampleError as e:
            code = "input_error" if (e.field or "").startswith("images") else "invalid_input"
            located = e if e.record is not None or sample.id is None else e.located(sample.id)
            job.verdict = self._abstain(sample, name, code, str(located))
        except PromptTooLongError as e:
            job.verdict = self._abstain(sample, name, "too_long", str(e))
        except JudgeLMError as e:  # an unknown format name, a formatter that refuses the sample
            error = InvalidSampleError(str(e), field="mode", record=sample.id)
            job.verdict = self._abstain(sample, name, "invalid_input", str(error))
        return job

    def _with_defaults(self, sample: Sample) -> Sample:
        """The sample with the judge's own rubric and scale (``JudgeConfig``) where it has none."""
        defaults = {k: getattr(self.config, k) for k in ("rubric", "scale")}
        missing = {k: v for k, v in defaults.items() if v is not None and getattr(sample, k) is None}
        return sample.replace(**missing) if missing else sample

    def _check_image_slots(self, sample: Sample, encoded: Sequence[EncodedPrompt]) -> None:
        """Refuse (alone) a sample whose prompt holds more or fewer image placeholders than it
        has images (images given to a text format, ``<image>`` typed into a text), instead of
        letting it fail its whole batch in the model."""
        n_images = len(encoded[0].prompt.images)
        if not self.engine.capabilities.images:
            raise InvalidSampleError(
                "this judge has no vision tower; load a vision judge for image formats",
                field="images",
                record=sample.id,
            )
        from judgelm.vision.tokens import check_image_placeholders

        for e in encoded:
            check_image_placeholders(self.tokenizer, e.input_ids, n_images, sample_id=sample.id)

    def _load_images(self, images: Sequence[Any], sample_id: str | None) -> tuple[Any, ...]:
        """Pixel tensors of ``images`` (the caller has checked the judge sees images)."""
        from judgelm.modalities.image import load_image

        return tuple(
            self.model.preprocess(load_image(src, sample_id=sample_id, index=i)) for i, src in enumerate(images)
        )

    def _flat_prompts(self, jobs: Sequence[_Job]) -> tuple[list[tuple[_Job, EncodedPrompt]], list[Any] | None]:
        flat = [(j, e) for j in jobs for e in j.encoded]
        images = [list(j.images or ()) for j, _ in flat] if any(j.images for j in jobs) else None
        return flat, images

    def _run_logits(
        self,
        jobs: Sequence[_Job],
        slots: SlotStrategy,
        on_progress: Callable[[int], None] | None,
        max_new_tokens: int | None = None,
        on_token: Callable[[int, int, int], None] | None = None,
    ) -> None:
        from judgelm.scoring.scorer import score_prompts

        direct = [j for j in jobs if not (j.format and j.format.explains_first)]
        if direct:
            flat, images = self._flat_prompts(direct)
            results = score_prompts(
                self.engine, self.tokenizer, [e for _, e in flat], strategy=slots, images=images, on_batch=on_progress
            )
            for (job, _), res in zip(flat, results, strict=True):
                job.add_scores(res)
        explained = [j for j in jobs if j.format and j.format.explains_first]
        if explained:
            self._run_explained(explained, slots, on_progress, max_new_tokens or DEFAULT_EXPLAIN_TOKENS, on_token)

    def _run_explained(
        self,
        jobs: Sequence[_Job],
        slots: SlotStrategy,
        on_progress: Callable[[int], None] | None,
        max_new_tokens: int,
        on_token: Callable[[int, int, int], None] | None = None,
    ) -> None:
        """Explain-first logit scoring: generate the feedback, then read the result slot after
        the verdict marker (`judgelm.scoring.explained`)."""
        from judgelm.scoring.explained import score_explained

        # stop at the marker: the result slot is read from the logits (progress: each row once, here)
        self._run_generation(jobs, True, max_new_tokens, on_progress, on_token, to_marker=True)
        flat, _ = self._flat_prompts(jobs)
        generated = [ids for job in jobs for ids in job.generated]
        results = score_explained(
            self.engine,
            self.tokenizer,
            [e for _, e in flat],
            generated,
            max_new_tokens=max_new_tokens,
            strategy=slots,
        )
        for (job, _), res in zip(flat, results, strict=True):
            job.add_scores(res.scores, res.reason)

    def _run_generation(
        self,
        jobs: Sequence[_Job],
        explain: bool,
        max_new_tokens: int | None,
        on_progress: Callable[[int], None] | None,
        on_token: Callable[[int, int, int], None] | None = None,
        *,
        to_marker: bool = False,
    ) -> None:
        """Generate every job's continuation, one engine call per (explain-first, stop strings)
        group. Explain-first formats write their feedback before the verdict: never stop at a
        newline; each format's stop strings end the text (its template starting over), and with
        ``to_marker`` (explain-first logit scoring) so does the verdict marker."""
        groups: dict[tuple[bool, tuple[str, ...]], list[_Job]] = {}
        for job in jobs:
            assert job.format is not None
            first = job.format.explains_first
            marker = job.encoded[0].prompt.spec.marker if to_marker else None
            stops = (*job.format.stop_strings, *((marker,) if marker else ()))
            groups.setdefault((first, stops), []).append(job)
        for (first, stops), group in groups.items():
            self._generate(group, explain or first, max_new_tokens, on_progress, on_token, stops)

    def _generate(
        self,
        jobs: Sequence[_Job],
        explain: bool,
        max_new_tokens: int | None,
        on_progress: Callable[[int], None] | None,
        on_token: Callable[[int, int, int], None] | None = None,
        stop_strings: tuple[str, ...] = (),
    ) -> None:
        from judgelm.engine.base import GenerationOptions, RowFailure, cut_at_stop

        flat, images = self._flat_prompts(jobs)
        if max_new_tokens is None:
            n_scores = max(e.prompt.spec.n_scores for _, e in flat)
            max_new_tokens = DEFAULT_EXPLAIN_TOKENS if explain else _SCORE_LINE_TOKENS_PER_SCORE * n_scores + 4
        stream = None
        if on_token is not None:  # flat row -> (sample index, order index)
            rows = [(j.index, k) for j in jobs for k in range(len(j.encoded))]
            stream = lambda r, token: on_token(*rows[r], token)  # noqa: E731
        options = GenerationOptions(
            max_new_tokens, stop_at_newline=not explain, stop_strings=stop_strings, on_token=stream
        )
        outputs = self.engine.generate([e.input_ids for _, e in flat], options, images=images, on_batch=on_progress)
        for (job, _), out in zip(flat, outputs, strict=True):
            if isinstance(out, RowFailure):  # a remote request failed: the sample abstains
                job.failure = out.reason
        made = [[] if isinstance(out, RowFailure) else out for out in outputs]
        texts = self.tokenizer.batch_decode(made, skip_special_tokens=True)
        for (job, _), ids, text in zip(flat, made, texts, strict=True):
            assert job.format is not None
            job.texts.append(cut_at_stop(text, job.format.stop_strings))  # the verdict marker stays
            job.generated.append(list(ids))

    def _provenance(self, job: _Job, scoring: Literal["text", "logits"]) -> Provenance:
        assert job.format is not None
        first = job.encoded[0]
        return Provenance(
            model=self.name,
            format=job.format.name,
            template_hash=first.prompt.template_hash,
            orders=tuple(e.prompt.order for e in job.encoded),
            scoring=scoring,
            truncation=first.truncation,
            with_reference=first.prompt.with_reference,
            judgelm_version=__version__,
            score_range=first.prompt.spec.score_range,
            unseen_mass=max(
                (s.unseen_mass for s in job.scores if s is not None and s.unseen_mass is not None), default=None
            ),
        )

    def _failed(self, job: _Job, scoring: Literal["text", "logits"]) -> Verdict:
        assert job.format is not None and job.failure is not None
        prov = self._provenance(job, scoring)
        return self._abstain(
            job.sample, job.format.name, "engine_error", job.failure, provenance=prov, prompt=job.encoded[0].prompt.text
        )

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

    def _text_verdict(self, job: _Job, official: bool, explain: bool) -> Verdict:
        assert job.format is not None
        fmt = job.format
        parsed: list[ParsedJudgment] = [
            fmt.parse(t, e.prompt, official=official) for t, e in zip(job.texts, job.encoded, strict=True)
        ]
        prov = self._provenance(job, "text")
        common = {
            "text": job.texts[0],
            "order_scores": tuple(p.scores for p in parsed),
            "prompt": job.encoded[0].prompt.text,
        }
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
            explanation=ok[0].explanation if explain or fmt.explains_first else None,
            consistent=(len(winners) == 1) if len(ok) >= 2 else None,
            **common,
        )

    def _logit_verdict(self, job: _Job, explain: bool, calibration: Calibration) -> Verdict:
        from judgelm.scoring.combine import combine_orders

        assert job.format is not None
        text = job.texts[0] if job.texts else None
        explanation = None
        if text is not None and (explain or job.format.explains_first):
            explanation = job.format.parse(text, job.encoded[0].prompt).explanation
        common: dict[str, Any] = {"text": text, "explanation": explanation, "prompt": job.encoded[0].prompt.text}
        # explain-first orders whose feedback never reached the verdict marker have no scores
        read = [k for k, r in enumerate(job.scores) if r is not None]
        if not read:
            reason = next((m for m in job.missing if m), "no verdict")
            prov = self._provenance(job, "logits")
            return self._abstain(job.sample, job.format.name, "no_verdict", reason, provenance=prov, **common)
        c = combine_orders([job.scores[k] for k in read], [job.encoded[k].prompt.order for k in read], calibration)
        order_scores: list[tuple[float, ...] | None] = [None] * len(job.scores)
        for k, scores in zip(read, c.order_scores, strict=True):
            order_scores[k] = scores
        fields: dict[str, Any] = {
            "sample_id": job.sample.id,
            "format": job.format.name,
            "provenance": self._provenance(job, "logits"),
            "distributions": c.distributions,
            "preference": c.preference,
            "rank1_probs": c.rank1_probs,
            "confidence": c.confidence,
            "order_scores": tuple(order_scores),
            "consistent": c.consistent,
            "inconsistency": c.inconsistency,
            **common,
        }
        if c.outside_mass > self.abstain_threshold:
            reason = (
                f"{c.outside_mass:.0%} of the judge's probability lies outside the verdict grammar "
                f"(threshold {self.abstain_threshold:.0%})"
            )
            return Verdict(scores=None, abstained=True, reason=reason, reason_code="outside_grammar", **fields)
        return Verdict(scores=c.scores, winner=c.winner, ranking=c.ranking, **fields)

    # ---- helpers: each is one sample through `judge` ----------------------------------------
    def compare(
        self, question: str, answer_a: str, answer_b: str, *, reference: str | None = None, **kw: Any
    ) -> Verdict:
        """Which of two answers is better (pairwise)."""
        return self.judge(Sample(question, (answer_a, answer_b), reference=reference, mode="pairwise"), **kw)[0]

    def grade(
        self, question: str, answer: str, *, gold: str | None = None, reference: str | None = None, **kw: Any
    ) -> Verdict:
        """Score one answer (single); ``gold`` (or else ``reference``) anchors Assistant 1 at 10.
        Without either the answer is scored on its own (judgelm's extension, not a JudgeLM
        setting), with a warning."""
        if gold is None and reference is None:
            warnings.warn(
                "grade() without gold= or reference=: the answer is scored with nothing to compare it to "
                "(JudgeLM grades against a gold answer shown as Assistant 1 with score 10); pass gold=",
                UserWarning,
                stacklevel=2,
            )
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

    def discuss(
        self,
        about: Verdict | Discussion,
        message: str,
        *,
        max_new_tokens: int = 256,
        images: Sequence[Any] = (),
        on_token: Callable[[int], None] | None = None,
    ) -> Discussion:
        """Ask the judge a follow-up question about a verdict it gave.

        The judge sees its prompt and verdict, then Vicuna-v1.1 turns
        (``USER: ... ASSISTANT: ...</s>``), as in the JudgeLM demo (`judgelm.formats.followup`). Pass
        the returned `Discussion` back in to go on; `Discussion.reply` is the latest answer. A
        verdict read from logits is shown to the judge as its most likely score line. The reply
        ends where the judge starts the user's next turn (``USER:``) or a new judgment (the
        format's stop strings), and carries no turn markers.

        ``images``: the judged sample's images, for a verdict on an image format: a vision judge
        sees them again at their places in the prompt (a `Discussion` keeps them). ``on_token(token)``
        streams the reply's token ids as they are chosen."""
        from judgelm.engine.base import GenerationOptions, RowFailure, cut_at_stop
        from judgelm.formats.followup import NEXT_TURN, REPLY_MARKER

        if isinstance(about, Verdict):
            if about.prompt is None:
                raise ValueError("this verdict has no prompt to discuss")
            verdict_text = about.text if about.text is not None else score_line(about)
            stops = get_format(about.format).stop_strings
            about = Discussion(followup_context(about.prompt, verdict_text), images=tuple(images), stop_strings=stops)
        text = followup_prompt(about.context, about.turns, message, self.tokenizer.eos_token or "")
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        context = self.engine.facts.context_length
        if len(ids) + max_new_tokens > context:
            raise PromptTooLongError(
                f"the discussion is {len(ids)} tokens; with {max_new_tokens} new tokens it does not fit "
                f"the judge's context of {context}: start again from the verdict"
            )
        pixels = None
        if self.engine.capabilities.images:
            from judgelm.vision.tokens import check_image_placeholders

            try:
                check_image_placeholders(self.tokenizer, ids, len(about.images))
            except InvalidSampleError:
                if about.images:
                    raise
                raise InvalidSampleError(
                    "the verdict's prompt shows images: pass the sample's images (images=...) to discuss it",
                    field="images",
                ) from None
            pixels = [list(self._load_images(about.images, None))] if about.images else None
        elif about.images:
            raise InvalidSampleError("this judge has no vision tower to see the images again", field="images")
        stops = (NEXT_TURN, *about.stop_strings)
        stream = None if on_token is None else (lambda _row, token: on_token(token))
        options = GenerationOptions(max_new_tokens, stop_strings=stops, on_token=stream)
        out = self.engine.generate([ids], options, images=pixels)[0]
        if isinstance(out, RowFailure):
            raise JudgeLMError(f"the judge could not answer: {out.reason}")
        reply = cut_at_stop(self.tokenizer.decode(out, skip_special_tokens=True), stops).strip()
        reply = reply.removeprefix(REPLY_MARKER).strip()
        turns = (*about.turns, Turn("user", message), Turn("assistant", reply))
        return Discussion(about.context, turns, about.images, about.stop_strings)


def _endpoint_tokenizer(model: str, tokenizer: Any) -> Any:
    """The tokenizer of a remote judge: given, loaded from a name or folder, or the model's own
    files on this machine."""
    if tokenizer is not None and not isinstance(tokenizer, str):
        return tokenizer
    from judgelm.errors import ModelLoadError
    from judgelm.modalities.text import load_tokenizer

    try:
        return load_tokenizer(tokenizer or model)
    except (ModelLoadError, OSError, ValueError) as e:
        if tokenizer is not None:
            raise
        raise ModelLoadError(
            f"no tokenizer for {model!r} on this machine ({e}); pass tokenizer= (a folder or hub id of the "
            "model's tokenizer): remote judging renders and scores prompts with it"
        ) from None


def _is_hf_vision_model(name_or_path: str) -> bool:
    if not Path(name_or_path).is_dir() or not (Path(name_or_path) / "config.json").is_file():
        return False
    from judgelm.vision.hf_vlm import is_hf_vision_model

    return is_hf_vision_model(name_or_path)


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
