"""Training a multimodal judge with `judgelm.train`'s recipe on image+text judge records.

What is shared with text training: `JudgeDataset` (per-sample, per-epoch swap augmentation and
reference support / drop, answers-only truncation, loss only on the judgment and EOS — the
`ImageTokenizer` makes the placeholder runs part of the prompt, so they carry no loss),
`PaddedCollator`, `JudgeTrainer` (HF Trainer with the judge loss) and its JSONL log. What is
added: the images of each example (loaded and validated with `judgelm.modalities.image`,
preprocessed with the tower's transforms) ride along as ``images``, and the model's forward
writes them over the placeholders.

Trainable parts (LLaVA's stages): the projector always; LoRA adapters on the LLM when
``cfg.lora_r > 0`` (merged before saving), else the whole LLM unless ``freeze_llm``; the tower
only with ``train_tower`` (sensible for a randomly initialised tower, not for CLIP weights).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.utils.data

from judgelm.config import JudgeConfig
from judgelm.data.records import JudgeRecord, record_from_dict
from judgelm.errors import InvalidSampleError
from judgelm.io import read_samples
from judgelm.modalities.image import DEFAULT_IMAGE_LIMITS, ImageLimits, load_image
from judgelm.train.collate import PaddedCollator
from judgelm.train.config import TrainConfig, TrainResult
from judgelm.train.dataset import JudgeDataset
from judgelm.version import __version__
from judgelm.vision.model import VisionJudgeModel
from judgelm.vision.saving import save_vision_judge
from judgelm.vision.tokens import ImageTokenizer

__all__ = [
    "ImageCollator",
    "ImageJudgeDataset",
    "VisionTrainOptions",
    "load_image_records",
    "train_vision_judge",
]

log = logging.getLogger(__name__)


def load_image_records(
    paths: Iterable[str | os.PathLike[str]], *, mode: str | None = None
) -> tuple[list[JudgeRecord], list[InvalidSampleError]]:
    """Training records of native JSONL files, image paths resolved relative to each file
    (as `judgelm.io.read_samples` resolves them for judging)."""
    records: list[JudgeRecord] = []
    errors: list[InvalidSampleError] = []
    for path in paths:
        for rec in read_samples(path, mode=mode):
            if rec.error is not None or rec.sample is None:
                errors.append(rec.error or InvalidSampleError("unreadable record", record=f"{path}:{rec.line}"))
                continue
            try:
                record = record_from_dict(rec.raw, mode=mode)
            except InvalidSampleError as e:
                errors.append(e.located(f"{os.fspath(path)}:{rec.line}"))
                continue
            sample = record.sample.replace(images=rec.sample.images, id=rec.sample.id)
            records.append(JudgeRecord(sample, record.judgment, record.judgment_w_reference))
    return records, errors


@dataclass(frozen=True)
class VisionTrainOptions:
    """What trains besides the projector (see the module docstring), and how fast.

    ``vision_learning_rate``: learning rate of the projector (and tower), default the LLM's
    (``cfg.learning_rate``); LLaVA trains a fresh projector at a higher rate than the LLM.
    ``answer_loss``: also train on the tokens of the candidate answers, which for a question about
    an image are partly image-grounded ("The triangle is *yellow*"): an auxiliary, LLaVA-stage-1
    like signal for judges whose LLM is trained from scratch. Off by default (JudgeLM's loss is
    on the judgment only)."""

    train_tower: bool = False
    freeze_llm: bool = False
    vision_learning_rate: float | None = None
    answer_loss: bool = False


class ImageJudgeDataset(torch.utils.data.Dataset):
    """`JudgeDataset` examples plus their images: ``{"input_ids", "labels", "images": [[3, S, S], ...]}``.

    Records whose images do not load are dropped up front (`dropped_images` says which).
    ``answer_loss``: also put the loss on the candidate answers' tokens (an auxiliary signal, see
    `VisionTrainOptions`)."""

    def __init__(
        self,
        records: Iterable[JudgeRecord],
        tokenizer: ImageTokenizer,
        preprocess: Any,
        *,
        limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
        answer_loss: bool = False,
        **dataset_kwargs: Any,
    ):
        self.answer_loss = answer_loss
        good, self.dropped_images = [], []
        for record in records:
            try:
                for i, src in enumerate(record.sample.images):
                    load_image(src, sample_id=record.sample.id, index=i, limits=limits)
                good.append(record)
            except InvalidSampleError as e:
                self.dropped_images.append(str(e))
        self.text = JudgeDataset(good, tokenizer, **dataset_kwargs)
        self.preprocess = preprocess
        self.limits = limits

    def __len__(self) -> int:
        return len(self.text)

    def set_epoch(self, epoch: int) -> None:
        self.text.set_epoch(epoch)

    def images(self, index: int) -> list[torch.Tensor]:
        sample = self.text.records[index].sample
        return [
            self.preprocess(load_image(src, sample_id=sample.id, index=i, limits=self.limits))
            for i, src in enumerate(sample.images)
        ]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {**self.text[index], "images": self.images(index)}
        if self.answer_loss:
            item["labels"] = self._with_answer_labels(index, item["input_ids"], item["labels"])
        return item

    def _with_answer_labels(self, index: int, ids: list[int], labels: list[int]) -> list[int]:
        """``labels`` plus the ids of the shown answers' tokens (found through the offsets of the
        rendered prompt; an example whose prompt was truncated keeps its labels)."""
        ds = self.text
        view = ds.view(index)
        fmt = ds.formatter(ds.records[index])
        text = fmt.render(view.sample, view.order).text
        enc = ds.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        if list(enc["input_ids"]) != ids[: len(enc["input_ids"])]:
            return labels
        spans, k = [], 1
        while (head := f"[The Start of Assistant {k}'s Answer]\n") in text:  # every shown answer (gold too)
            start = text.index(head) + len(head)
            spans.append((start, text.index(f"\n\n[The End of Assistant {k}'s Answer]", start)))
            k += 1
        out = list(labels)
        for t, (a, b) in enumerate(enc["offset_mapping"]):
            if b > a and any(s0 <= a and b <= s1 for s0, s1 in spans):
                out[t] = ids[t]
        return out


@dataclass(frozen=True)
class ImageCollator:
    """Right-padded text (`PaddedCollator`) plus ``images``: one list of tensors per row."""

    pad_id: int

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = PaddedCollator(self.pad_id)(features)
        batch["images"] = [list(f["images"]) for f in features]
        return batch


def _set_trainable(model: VisionJudgeModel, cfg: TrainConfig, options: VisionTrainOptions) -> None:
    from judgelm.train.model import add_lora

    model.tower.requires_grad_(options.train_tower)
    model.projector.requires_grad_(True)
    if cfg.lora_r:
        model.llm = add_lora(model.llm, cfg)  # base weights frozen by peft
    else:
        model.llm.requires_grad_(not options.freeze_llm)


def _optimizer(model: VisionJudgeModel, cfg: TrainConfig, options: VisionTrainOptions) -> torch.optim.Optimizer | None:
    """AdamW with the vision parts at their own rate; ``None`` (HF Trainer's default) without one."""
    if options.vision_learning_rate is None:
        return None
    vision = [p for m in (model.tower, model.projector) for p in m.parameters() if p.requires_grad]
    ids = {id(p) for p in vision}
    llm = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": llm, "lr": cfg.learning_rate}, {"params": vision, "lr": options.vision_learning_rate}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def train_vision_judge(
    model: VisionJudgeModel,
    tokenizer: ImageTokenizer,
    cfg: TrainConfig,
    *,
    options: VisionTrainOptions | None = None,
    records: Sequence[JudgeRecord] | None = None,
) -> TrainResult:
    """Train ``model`` on ``records`` (default: read from ``cfg.data``) and save the judge to
    ``cfg.output_dir`` (`load_vision_judge` / `Judge.from_pretrained` read it back)."""
    from judgelm.train.run import _training_arguments
    from judgelm.train.trainer import JsonlLogCallback, JudgeTrainer

    options = options or VisionTrainOptions()
    if cfg.packing:
        raise ValueError("packing is not supported for image training; use padded batches")
    start = time.perf_counter()
    args = _training_arguments(cfg)
    if records is None:
        records, errors = load_image_records(cfg.data, mode=cfg.mode)
        for e in errors[:5]:
            log.warning("skipping bad record: %s", e)
    dataset = ImageJudgeDataset(
        records,
        tokenizer,
        model.preprocess,
        answer_loss=options.answer_loss,
        max_length=cfg.max_length,
        p_swap=cfg.p_swap,
        p_reference=cfg.p_reference,
        seed=cfg.seed,
        mode=cfg.mode,
        truncation=cfg.truncation,
    )
    report = dataset.text.report
    assert report is not None
    if not cfg.quiet:
        print(f"judgelm vision train: {report.summary()}; {len(dataset.dropped_images)} record(s) with bad images")
    if len(dataset) == 0:
        raise ValueError("no trainable records")
    _set_trainable(model, cfg, options)
    model.train()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = JudgeTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=ImageCollator(pad),
        optimizers=(_optimizer(model, cfg, options), None),
        callbacks=[JsonlLogCallback(Path(cfg.output_dir) / "train_log.jsonl", echo=not cfg.quiet)],
    )
    output = trainer.train(resume_from_checkpoint=True if cfg.resume_from == "latest" else cfg.resume_from)
    if cfg.lora_r:
        model.llm = model.llm.merge_and_unload()
    model.eval()
    training = {
        "recipe": "judgelm.vision.train",
        "judgelm_version": __version__,
        "config": cfg.to_dict(),
        "options": {
            "train_tower": options.train_tower,
            "freeze_llm": options.freeze_llm,
            "vision_learning_rate": options.vision_learning_rate,
            "answer_loss": options.answer_loss,
        },
        "data_report": report.to_dict(),
        "dropped_images": len(dataset.dropped_images),
        "global_step": output.global_step,
        "train_loss": output.training_loss,
    }
    if trainer.is_world_process_zero():
        save_vision_judge(model, tokenizer, cfg.output_dir, config=JudgeConfig(training=training))
    runtime = time.perf_counter() - start
    metrics = {k: float(v) for k, v in output.metrics.items() if isinstance(v, int | float)}
    return TrainResult(cfg.output_dir, output.global_step, output.training_loss, runtime, report.to_dict(), metrics)
