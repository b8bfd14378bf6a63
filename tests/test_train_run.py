"""End to end: train() and the CLI learn, save a loadable judge, resume, and run on two processes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from judgelm import Judge
from judgelm.cli import train_cmd
from judgelm.data.records import record_from_dict
from judgelm.data.synthetic import SyntheticConfig, generate, write_jsonl
from judgelm.train import TrainConfig, train
from judgelm.train.collate import PaddedCollator
from judgelm.train.dataset import JudgeDataset
from judgelm.train.trainer import judge_loss

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a few busy cores OpenMP threads
    that wait for each other make steps several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train-data") / "train.jsonl"
    write_jsonl(path, generate(24, seed=5, config=SyntheticConfig(brief=True, position_bias=0.8)))
    return path


def small(data: Path, out: Path, model: Path, **kw) -> TrainConfig:
    base = dict(
        data=(str(data),),
        output_dir=str(out),
        model=str(model),
        max_length=512,
        batch_size=4,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        logging_steps=1,
        quiet=True,
        use_cpu=True,
        bf16=False,
    )
    return TrainConfig(**{**base, **kw})


def batch_loss(model, tokenizer, data: Path) -> float:
    recs = [record_from_dict(json.loads(line)) for line in data.read_text().splitlines()[:8]]
    ds = JudgeDataset(recs, tokenizer, max_length=512, p_swap=0.0, p_reference=0.0)
    with torch.no_grad():
        loss, n, _ = judge_loss(model.eval(), PaddedCollator(0)([ds[i] for i in range(len(ds))]))
    return float(loss / n)


NO_CHECKPOINTS = {"save_strategy": "no"}  # the final judge is still saved


def test_training_lowers_the_loss_and_saves_a_judge(tmp_path, data, tiny_model_dir, tiny_model, llama_tokenizer):
    result = train(
        small(data, tmp_path / "judge", tiny_model_dir, max_steps=8, packing=True, training_args=NO_CHECKPOINTS)
    )
    assert result.global_step == 8
    judge = Judge.from_pretrained(result.output_dir, device="cpu")
    before = batch_loss(tiny_model, llama_tokenizer, data)
    after = batch_loss(judge.model, judge.tokenizer, data)
    assert after < before - 1.0, (before, after)
    training = judge.config.training
    assert training["formats"] == ["pairwise"] and training["config"]["packing"] is True
    assert training["data_report"]["kept"] == 24 and training["global_step"] == 8
    assert judge.model.config._attn_implementation != "judgelm_packed"  # loads anywhere
    assert (Path(result.output_dir) / "model.safetensors").is_file()
    log = [json.loads(line) for line in (Path(result.output_dir) / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log if "loss" in row] == list(range(1, 9))
    verdicts = judge.judge(
        [record_from_dict(json.loads(line)).sample for line in data.read_text().splitlines()[:2]], swap=True
    )
    assert len(verdicts) == 2 and all(len(v.order_scores) == 2 for v in verdicts)


def test_resume_from_a_checkpoint_continues_the_same_run(tmp_path, data, tiny_model_dir):
    full = train(small(data, tmp_path / "full", tiny_model_dir, max_steps=4, save_steps=2, p_swap=0.5))
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "full" / "checkpoint-2", resumed_dir / "checkpoint-2")
    resumed = train(
        small(data, resumed_dir, tiny_model_dir, max_steps=4, save_steps=2, p_swap=0.5, resume_from="latest")
    )
    assert resumed.global_step == full.global_step == 4
    steps = [json.loads(line)["step"] for line in (resumed_dir / "train_log.jsonl").read_text().splitlines()]
    assert steps[0] == 3  # it picked up after the checkpoint, not from the start
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(resumed_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)


def test_lora_saves_a_merged_judge(tmp_path, data, tiny_model_dir):
    out = tmp_path / "lora"
    train(
        small(
            data,
            out,
            tiny_model_dir,
            max_steps=2,
            lora_r=4,
            lora_target_modules=("q_proj", "v_proj"),
            training_args=NO_CHECKPOINTS,
        )
    )
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "adapter_config.json").exists()  # the root is a full model
    judge = Judge.from_pretrained(str(out), device="cpu")
    assert not any("lora" in name for name, _ in judge.model.named_parameters())


def test_cli_parser_builds_the_config():
    parser = argparse.ArgumentParser(prog="judgelm")
    sub = parser.add_subparsers(dest="command")
    train_cmd.add_parser(sub, "train")
    args = parser.parse_args(
        [
            "train",
            "a.jsonl",
            "b.jsonl",
            "-o",
            "out",
            "--model",
            "m",
            "--p-swap",
            "0",
            "--p-reference",
            "1",
            "--lora-r",
            "8",
            "--lora-targets",
            "q_proj,v_proj",
            "--packing",
            "--no-bf16",
            "--resume",
            "latest",
            "--fsdp",
            "full_shard auto_wrap",
            "--training-arg",
            'optim="adamw_torch_fused"',
            "--epochs",
            "1.5",
        ]
    )
    cfg = train_cmd.config_from_args(args)
    assert cfg.data == ("a.jsonl", "b.jsonl") and cfg.output_dir == "out" and cfg.model == "m"
    assert (cfg.p_swap, cfg.p_reference, cfg.lora_r, cfg.packing, cfg.bf16) == (0.0, 1.0, 8, True, False)
    assert cfg.lora_target_modules == ("q_proj", "v_proj") and cfg.resume_from == "latest"
    assert cfg.fsdp == "full_shard auto_wrap" and cfg.training_args == {"optim": "adamw_torch_fused"}
    assert cfg.epochs == 1.5
    with pytest.raises(ValueError):
        TrainConfig(data=("a",), output_dir="o", p_swap=2.0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_with_gloo_train_and_save(tmp_path, data, tiny_model_dir):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "judgelm.train",
        str(data),
        "-o",
        str(out),
        "--model",
        str(tiny_model_dir),
        "--max-steps",
        "3",
        "--batch-size",
        "2",
        "--cpu",
        "--ddp-backend",
        "gloo",
        "--save-steps",
        "3",
        "--logging-steps",
        "1",
        "--max-length",
        "512",
        "--quiet",
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [row for row in log if "loss" in row]
    assert len(steps) == 3
    assert all(row["world_size"] == 2 for row in log)  # two ranks really took part ...
    assert steps[0]["epoch"] == pytest.approx(2 * 2 / 24)  # ... each with 2 samples per step
    judge = Judge.from_pretrained(str(out), device="cpu")
    assert judge.config.training["global_step"] == 3


def _from_scratch_folder(path: Path, tokenizer) -> Path:
    """What ``--from-scratch`` starts from: a config.json (a 1-layer Llama) and the tokenizer."""
    from transformers import LlamaConfig

    LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_cli_end_to_end_from_scratch_keeps_good_records_and_names_bad_ones(tmp_path, llama_tokenizer, capsys):
    from judgelm.cli import main

    good = generate(10, seed=9, config=SyntheticConfig(brief=True))
    lines = [json.dumps(r) for r in good]
    lines.insert(2, "{not json")  # line 3
    lines.insert(5, json.dumps({**good[0], "question_id": "q-int", "text": 7}))  # line 6: a bad field
    lines.append(json.dumps({**good[1], "question_id": "q-one", "text": "8\nonly one score", "text_w_reference": None}))
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(lines) + "\n")
    model = _from_scratch_folder(tmp_path / "init", llama_tokenizer)
    out = tmp_path / "judge"
    argv = ["train", str(data), "-o", str(out), "--model", str(model), "--from-scratch", "--max-steps", "2"]
    argv += ["--batch-size", "4", "--lr", "3e-3", "--max-length", "512", "--cpu", "--no-bf16", "--quiet"]
    assert main([*argv, "--training-arg", 'save_strategy="no"']) == 0
    err = capsys.readouterr().err
    assert "mixed.jsonl:3: not valid JSON" in err
    assert "mixed.jsonl:6 (id q-int), field 'text': must be a string" in err
    assert "2 bad record(s) skipped" in err
    assert "record q-one, plain judgment: the judgment's first line '8' has 1 scores" in err
    assert "10/11 records kept" in err  # the others all train

    judge = Judge.from_pretrained(str(out), device="cpu")
    training = judge.config.training
    assert training["from_scratch"] is True and training["global_step"] == 2
    assert training["data_report"]["kept"] == 10 and training["data_report"]["dropped"] == {
        "plain_invalid": 1,
        "records": 1,
    }
    samples = [record_from_dict(r).sample for r in good[:2]]
    verdicts = judge.judge(samples, swap=True, scoring="text", max_new_tokens=8)
    assert [v.sample_id for v in verdicts] == [r["question_id"] for r in good[:2]]

    # nothing trainable: a clear error and exit status 2, no traceback
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text(lines[2] + "\n")
    assert main(["train", str(only_bad), "-o", str(tmp_path / "none"), "--model", str(model), "--from-scratch"]) == 2
    assert "judgelm train: error: no trainable records" in capsys.readouterr().err


def test_every_epoch_redraws_the_views(data, llama_tokenizer):
    from types import SimpleNamespace

    from judgelm.train.trainer import DatasetEpochCallback

    recs = [record_from_dict(json.loads(line)) for line in data.read_text().splitlines()]
    ds = JudgeDataset(recs, llama_tokenizer, max_length=512, p_swap=0.5, p_reference=0.5, scan=False)
    callback = DatasetEpochCallback(ds)
    views = {}
    for epoch in (0.0, 1.0, 2.0, 1.5):  # 1.5: a run resumed in the middle of its second epoch
        callback.on_epoch_begin(None, SimpleNamespace(epoch=epoch), None)
        views[epoch] = [ds.view(i) for i in range(len(ds))]
    assert ds.epoch == 1 and views[1.5] == views[1.0]
    assert views[0.0] != views[1.0] != views[2.0]
