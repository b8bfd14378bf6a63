"""Fine-tuning LLMs into judges (JudgeLM's recipe, without its defects).

>>> from judgelm.train import TrainConfig, train                       # doctest: +SKIP
>>> train(TrainConfig(data=("train.jsonl",), output_dir="my-judge",
...                   model="lmsys/vicuna-7b-v1.3"))                   # doctest: +SKIP

- Loss only on the judgment text and EOS (`encode_example`).
- Swap augmentation and reference support / drop drawn per sample per epoch from
  ``(seed, epoch, index)``, with the one swap of `judgelm.swap` (`draw_view`, `swap_view`).
- Truncation shortens answers only and is counted (`JudgeDataset.report`).
- Packing with varlen attention (`PackedCollator`; `judgelm.engine.attention`).
- HF Trainer underneath: torchrun / accelerate, FSDP or DeepSpeed, LoRA, bf16, gradient
  checkpointing, resume. The output folder loads with ``Judge.from_pretrained``.
"""

from judgelm.train.augment import TrainingView, draw_order, draw_view, swap_view
from judgelm.train.collate import PackedCollator, PaddedCollator
from judgelm.train.config import TrainConfig, TrainResult
from judgelm.train.dataset import DataReport, JudgeDataset
from judgelm.train.encode import IGNORE_INDEX, EncodedExample, encode_example, target_text

__all__ = [
    "IGNORE_INDEX",
    "DataReport",
    "EncodedExample",
    "JudgeDataset",
    "PackedCollator",
    "PaddedCollator",
    "TrainConfig",
    "TrainResult",
    "TrainingView",
    "draw_order",
    "draw_view",
    "encode_example",
    "load_records",
    "swap_view",
    "target_text",
    "train",
]


def __getattr__(name: str) -> object:  # `train` imports transformers: load it on first use
    if name in ("train", "load_records"):
        from judgelm.train import run

        return getattr(run, name)
    raise AttributeError(name)
