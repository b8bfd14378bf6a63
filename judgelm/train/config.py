"""`TrainConfig`: everything a fine-tuning run needs, and `TrainResult`: what it produced.

Defaults follow the JudgeLM recipe (spec §5): lr 2e-5, 3 epochs, cosine schedule, 3% warmup, no
weight decay, max length 2048, swap augmentation and reference support / drop at 0.5 each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TrainConfig", "TrainResult"]


@dataclass(frozen=True)
class TrainConfig:
    """A fine-tuning run.

    Data and recipe:
    - ``data``: JSONL files of training records (JudgeLM-100K or native, see `judgelm.data`).
    - ``p_swap`` / ``p_reference``: swap augmentation and reference support probabilities.
    - ``mode``: one format for every record (default: per record, inferred).
    - ``max_length``: tokens per example; longer prompts get their answers shortened.

    Model:
    - ``model``: HF id or folder, a ``.gguf`` file, or ``demo``; ``from_scratch`` builds the
      architecture from the folder's ``config.json`` with random weights (``tokenizer``: where
      the tokenizer lives when it is not beside the model).
    - ``lora_r`` > 0 trains LoRA adapters (peft) and saves the merged model.

    Optimisation and runtime: ``learning_rate``, ``epochs`` (or ``max_steps``), ``batch_size``
    (per device), ``grad_accum``, ``bf16`` (None: on when the GPU supports it),
    ``gradient_checkpointing``, ``packing`` (samples of a batch in one row, varlen attention),
    ``fsdp`` / ``fsdp_config`` / ``deepspeed`` (passed to HF Trainer), ``save_steps`` (0: a
    checkpoint per epoch), ``resume_from`` (a checkpoint folder, or ``"latest"``).
    ``training_args`` overrides any other `transformers.TrainingArguments` field.
    """

    data: tuple[str, ...]
    output_dir: str
    model: str = "demo"
    tokenizer: str | None = None
    from_scratch: bool = False
    mode: str | None = None
    p_swap: float = 0.5
    p_reference: float = 0.5
    max_length: int = 2048
    truncation: str = "answers"
    learning_rate: float = 2e-5
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 0
    bf16: bool | None = None
    load_dtype: str | None = None
    gradient_checkpointing: bool = False
    packing: bool = False
    lora_r: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: str | tuple[str, ...] = "all-linear"
    fsdp: str = ""
    fsdp_config: str | Mapping[str, Any] | None = None
    deepspeed: str | None = None
    ddp_backend: str | None = None
    save_steps: int = 0
    save_total_limit: int | None = 2
    resume_from: str | None = None
    logging_steps: int = 10
    dataloader_workers: int = 0
    use_cpu: bool = False
    quiet: bool = False
    trust_remote_code: bool = False
    training_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            object.__setattr__(self, "data", (self.data,))
        if not self.data:
            raise ValueError("TrainConfig needs at least one data file")
        for name in ("p_swap", "p_reference"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.truncation not in ("answers", "error"):
            raise ValueError("truncation must be 'answers' or 'error' (training never passes over-long prompts)")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data"] = list(self.data)
        out["training_args"] = dict(self.training_args)
        return out


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: the judge folder (`Judge.from_pretrained` loads it) and its numbers."""

    output_dir: str
    global_step: int
    train_loss: float
    runtime_s: float
    data: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
