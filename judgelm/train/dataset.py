"""`JudgeDataset`: training records -> token ids and labels, one fresh view per sample per epoch.

Stored records are never changed: each ``__getitem__`` draws the view (swap, reference) from
``(seed, epoch, index)`` and encodes it. HF Trainer / accelerate call `set_epoch` on the dataset
before every epoch, in every process. `scan` checks every record once up front: judgments that
do not fit their format are dropped, and the report says how many samples truncation shortens
or cannot save.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch.utils.data

from judgelm.data.records import JudgeRecord
from judgelm.errors import FormatError, InvalidSampleError, PromptTooLongError
from judgelm.formats import get_format, infer_mode
from judgelm.formats.base import Formatter
from judgelm.modalities.text import TruncationPolicy
from judgelm.swap import identity
from judgelm.train.augment import TrainingView, draw_view
from judgelm.train.encode import EncodedExample, encode_example, full_judgment

__all__ = ["DataReport", "JudgeDataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataReport:
    """What `JudgeDataset.scan` found (counts per record view, in the record's own order)."""

    records: int
    kept: int
    views: dict[str, int]  # "plain" / "with_reference": views available to train on
    truncated: dict[str, int]  # views whose answers truncation shortens
    dropped: dict[str, int]  # reason -> records dropped
    boundary_fallbacks: int
    formats: dict[str, int]
    tokens_mean: float
    tokens_max: int
    target_tokens_mean: float
    examples: tuple[str, ...] = field(default=())  # the first few drop reasons, for the log

    def summary(self) -> str:
        trunc = sum(self.truncated.values())
        dropped = sum(self.dropped.values())
        parts = [
            f"{self.kept}/{self.records} records kept",
            f"views {self.views}",
            f"truncation shortens the answers of {trunc} sample view(s) {self.truncated}",
            f"dropped {dropped} {self.dropped}" if dropped else "dropped 0",
            f"tokens mean {self.tokens_mean:.0f} max {self.tokens_max}, target mean {self.target_tokens_mean:.0f}",
        ]
        if self.boundary_fallbacks:
            parts.append(f"{self.boundary_fallbacks} view(s) tokenized prompt and target apart (merge)")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "examples"}


def _view_name(with_reference: bool) -> str:
    return "with_reference" if with_reference else "plain"


class JudgeDataset(torch.utils.data.Dataset):
    """A map-style dataset of training examples (``{"input_ids": [...], "labels": [...]}``).

    - ``p_swap``: probability of showing a sample's answers swapped (a random permutation for
      N answers), with its judgment rewritten to match.
    - ``p_reference``: probability of the with-reference prompt and judgment, for records that
      have both (reference support / drop); 0 trains on plain views only, 1 on references only.
    - ``mode``: one format for every record (default: each sample's mode, or inferred).
    """

    def __init__(
        self,
        records: Iterable[JudgeRecord],
        tokenizer: Any,
        *,
        max_length: int = 2048,
        p_swap: float = 0.5,
        p_reference: float = 0.5,
        seed: int = 0,
        mode: str | None = None,
        truncation: TruncationPolicy = "answers",
        scan: bool = True,
    ) -> None:
        for name, p in (("p_swap", p_swap), ("p_reference", p_reference)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.p_swap = p_swap
        self.p_reference = p_reference
        self.seed = seed
        self.mode = mode
        self.truncation: TruncationPolicy = truncation
        self.epoch = 0
        self.records: list[JudgeRecord] = list(records)
        self.report: DataReport | None = self.scan() if scan else None

    # ---- the torch Dataset protocol -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Called by HF Trainer / accelerate before each epoch: the views change with it."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        ex = self.example(index)
        return {"input_ids": list(ex.input_ids), "labels": list(ex.labels)}

    # ---- views and examples ---------------------------------------------------------------
    def formatter(self, record: JudgeRecord) -> Formatter:
        return get_format(self.mode or infer_mode(record.sample))

    def view(self, index: int, epoch: int | None = None) -> TrainingView:
        record = self.records[index]
        return draw_view(
            record,
            self.formatter(record),
            seed=self.seed,
            epoch=self.epoch if epoch is None else epoch,
            index=index,
            p_swap=self.p_swap,
            p_reference=self.p_reference,
        )

    def example(self, index: int, epoch: int | None = None) -> EncodedExample:
        view = self.view(index, epoch)
        fmt = self.formatter(self.records[index])
        try:
            return self._encode(fmt, view, view.order)
        except PromptTooLongError:
            # `scan` proved the record's own order fits; a permutation can tokenize a few
            # tokens longer, so fall back to the checked order rather than fail the run.
            log.debug("record %d does not fit in order %s; using its own order", index, view.order)
            return self._encode(fmt, view, identity(len(view.order)))

    def _encode(self, fmt: Formatter, view: TrainingView, order: Sequence[int]) -> EncodedExample:
        return encode_example(
            self.tokenizer,
            fmt,
            view.sample,
            order,
            view.judgment,
            max_length=self.max_length,
            truncation=self.truncation,
        )

    # ---- the up-front check -----------------------------------------------------------------
    def scan(self) -> DataReport:
        """Check every record's views once (in the record's order): drop records none of whose
        views can be trained on, drop single views that cannot, and count truncation."""
        kept: list[JudgeRecord] = []
        views: Counter[str] = Counter()
        truncated: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        formats: Counter[str] = Counter()
        examples: list[str] = []
        fallbacks = 0
        lengths: list[int] = []
        targets: list[int] = []
        for record in self.records:
            usable: dict[bool, str | None] = {
                False: record.judgment,
                True: record.judgment_w_reference,
            }
            try:
                fmt = self.formatter(record)
            except FormatError as e:
                dropped["unknown_format"] += 1
                if len(examples) < 5:
                    examples.append(f"record {record.sample.id}: {e}")
                continue
            for with_ref in record.views:
                sample = record.sample_for(with_ref)
                try:
                    spec = fmt.render(sample).spec
                    full_judgment(record.judgment_for(with_ref), spec)
                    ex = encode_example(
                        self.tokenizer,
                        fmt,
                        sample,
                        identity(fmt.n_candidates(sample)),
                        record.judgment_for(with_ref),
                        max_length=self.max_length,
                        truncation=self.truncation,
                    )
                except (FormatError, InvalidSampleError, PromptTooLongError) as e:
                    reason = "too_long" if isinstance(e, PromptTooLongError) else "invalid"
                    dropped[f"{_view_name(with_ref)}_{reason}"] += 1
                    if len(examples) < 5:
                        which = "with-reference judgment" if with_ref else "plain judgment"
                        examples.append(f"record {record.sample.id}, {which}: {e}")
                    usable[with_ref] = None
                    continue
                views[_view_name(with_ref)] += 1
                truncated[_view_name(with_ref)] += bool(ex.truncation)
                fallbacks += ex.boundary_fallback
                lengths.append(len(ex.input_ids))
                targets.append(ex.target_tokens)
            if usable[False] is None and usable[True] is None:
                dropped["records"] += 1
                continue
            formats[fmt.name] += 1
            if (usable[False], usable[True]) != (record.judgment, record.judgment_w_reference):
                record = JudgeRecord(record.sample, usable[False], usable[True])
            kept.append(record)
        report = DataReport(
            records=len(self.records),
            kept=len(kept),
            views=dict(views),
            truncated=dict(truncated),
            dropped=dict(dropped),
            boundary_fallbacks=fallbacks,
            formats=dict(formats),
            tokens_mean=sum(lengths) / len(lengths) if lengths else 0.0,
            tokens_max=max(lengths, default=0),
            target_tokens_mean=sum(targets) / len(targets) if targets else 0.0,
            examples=tuple(examples[:5]),
        )
        self.records = kept
        return report
