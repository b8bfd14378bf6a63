"""Training a vision judge with the text recipe's pieces: examples carry their images, image
placeholders carry no loss, gradients reach the projector, and the saved judge loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from judgelm.config import JudgeConfig
from judgelm.data.images import generate_image_records, write_image_jsonl
from judgelm.train import IGNORE_INDEX, TrainConfig
from judgelm.vision import load_vision_judge
from judgelm.vision.testing import tiny_vision_judge
from judgelm.vision.train import (
    ImageCollator,
    ImageJudgeDataset,
    VisionTrainOptions,
    load_image_records,
    train_vision_judge,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    records = generate_image_records(8, folder, seed=0, size=32)
    records[3]["images"] = ["images/does-not-exist.png"]
    return write_image_jsonl(folder / "train.jsonl", records)


def test_dataset_items_carry_images_and_placeholders_carry_no_loss(data: Path):
    model, tok = tiny_vision_judge()
    records, errors = load_image_records([data])
    assert not errors and len(records) == 8
    ds = ImageJudgeDataset(records, tok, model.preprocess, max_length=2048, p_swap=0.5, seed=0)
    assert len(ds) == 7 and len(ds.dropped_images) == 1 and "images[0]" in ds.dropped_images[0]
    item = ds[0]
    assert len(item["images"]) == 1 and item["images"][0].shape == (3, 32, 32)
    ids, labels = item["input_ids"], item["labels"]
    image_positions = [i for i, t in enumerate(ids) if t == tok.image_token_id]
    assert len(image_positions) == tok.n_image_tokens
    assert all(labels[i] == IGNORE_INDEX for i in image_positions)
    assert tok.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=True)[:1] in "29"
    batch = ImageCollator(tok.pad_token_id)([ds[0], ds[1], ds[2]])
    assert batch["input_ids"].shape == batch["labels"].shape and len(batch["images"]) == 3

    model.train()
    loss = model(**{k: v for k, v in batch.items() if k != "labels"}, labels=batch["labels"]).loss
    loss.backward()
    for part in (model.projector, model.tower, model.llm.get_input_embeddings()):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_train_vision_judge_saves_a_loadable_judge(data: Path, tmp_path: Path):
    model, tok = tiny_vision_judge(seed=2)
    before = {k: v.clone() for k, v in model.projector.state_dict().items()}
    tower_before = next(model.tower.parameters()).clone()
    cfg = TrainConfig(
        data=(str(data),),
        output_dir=str(tmp_path / "judge"),
        learning_rate=1e-3,
        max_steps=2,
        batch_size=4,
        logging_steps=1,
        use_cpu=True,
        quiet=True,
        training_args={"save_strategy": "no", "disable_tqdm": True},
    )
    result = train_vision_judge(
        model, tok, cfg, options=VisionTrainOptions(train_tower=False, vision_learning_rate=5e-3)
    )
    assert result.global_step == 2 and result.train_loss > 0
    assert any(not torch.equal(before[k], v) for k, v in model.projector.state_dict().items())
    assert torch.equal(tower_before, next(model.tower.parameters()))  # frozen tower stayed put
    config = JudgeConfig.load(tmp_path / "judge")
    assert config.vision["n_image_tokens"] == 16 and config.training["global_step"] == 2
    assert config.training["dropped_images"] == 1 and config.training["options"]["vision_learning_rate"] == 5e-3
    loaded, _ = load_vision_judge(tmp_path / "judge")
    for k, v in model.projector.state_dict().items():
        torch.testing.assert_close(loaded.projector.state_dict()[k], v)


def test_lora_training_is_merged_before_saving(data: Path, tmp_path: Path):
    pytest.importorskip("peft")
    model, tok = tiny_vision_judge(seed=3)
    cfg = TrainConfig(
        data=(str(data),),
        output_dir=str(tmp_path / "lora"),
        learning_rate=1e-2,
        max_steps=1,
        batch_size=2,
        lora_r=4,
        use_cpu=True,
        quiet=True,
        training_args={"save_strategy": "no", "disable_tqdm": True},
    )
    train_vision_judge(model, tok, cfg)
    assert type(model.llm).__name__ == "LlamaForCausalLM"  # merged, no peft wrapper left
    loaded, _ = load_vision_judge(tmp_path / "lora")
    ids = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_vision_parts_get_their_own_learning_rate():
    from judgelm.vision.train import _optimizer

    model, _ = tiny_vision_judge()
    model.tower.requires_grad_(False)
    cfg = TrainConfig(data=("x.jsonl",), output_dir="unused", learning_rate=1e-4)
    assert _optimizer(model, cfg, VisionTrainOptions()) is None
    opt = _optimizer(model, cfg, VisionTrainOptions(vision_learning_rate=1e-2))
    (llm_group, vision_group) = opt.param_groups
    assert llm_group["lr"] == 1e-4 and vision_group["lr"] == 1e-2
    assert {id(p) for p in vision_group["params"]} == {id(p) for p in model.projector.parameters()}
    assert len(llm_group["params"]) == len(list(model.llm.parameters()))


def test_answer_loss_labels_exactly_the_answer_tokens(data: Path):
    model, tok = tiny_vision_judge()
    records, _ = load_image_records([data])
    plain = ImageJudgeDataset(records, tok, model.preprocess, max_length=2048, p_swap=1.0, seed=0)
    aux = ImageJudgeDataset(records, tok, model.preprocess, max_length=2048, p_swap=1.0, seed=0, answer_loss=True)
    for i in range(len(aux)):
        a, b = plain[i], aux[i]
        assert a["input_ids"] == b["input_ids"]
        extra = [t for t, (x, y) in enumerate(zip(a["labels"], b["labels"], strict=True)) if x != y]
        assert all(a["labels"][t] == IGNORE_INDEX and b["labels"][t] == b["input_ids"][t] for t in extra)
        answers = "".join(aux.text.records[i].sample.answers)  # byte tokens: decoded text = the answers
        assert sorted(tok.decode([b["input_ids"][t] for t in extra])) == sorted(answers)
