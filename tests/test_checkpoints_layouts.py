"""The other layouts a judge comes in (``tokenizer.json`` checkpoints Mistral- and Llama-3-style with
safetensors shards, a GGUF file with a SentencePiece vocabulary, a hub repo in the local cache),
Hugging Face loading conventions (``torch_dtype``, ``dtype="auto"``, ``device_map``, quantization)
and the errors a new user meets (a missing folder, an unreachable hub). Nothing downloads: hub
behaviour runs against a cache built in a temporary folder and an endpoint that refuses connections."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from checkpoint_layouts import (
    LLAMA3_TOKENIZER_CONFIG,
    MISTRAL_TOKENIZER_CONFIG,
    hub_cache,
    judgelm_checkpoint,
    llama3_style_tokenizer,
    llama_gguf,
    llama_sentencepiece_model,
    model_from_state_dict,
    safetensors_checkpoint,
    tiny_llama_state_dict,
)
from conftest import LLAMA_TOKENIZER
from test_checkpoints_sentencepiece import CORPUS

from judgelm import Judge
from judgelm.calibration import Calibration
from judgelm.config import JudgeConfig
from judgelm.engine import loading
from judgelm.errors import ModelLoadError

spm = pytest.importorskip("sentencepiece")  # the reference encoder (dev extra)


@pytest.fixture(scope="module")
def sp():
    return spm.SentencePieceProcessor(model_proto=llama_sentencepiece_model())


@pytest.fixture(scope="module")
def weights():
    return tiny_llama_state_dict(seed=5)


@pytest.fixture(scope="module")
def judgelm_dir(tmp_path_factory, weights) -> Path:
    return judgelm_checkpoint(tmp_path_factory.mktemp("ckpt") / "JudgeLM-tiny-v1.0", *weights)


def _same_logits(judge: Judge, reference, text: str) -> None:
    ids = torch.tensor([judge.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(judge.model(ids).logits, reference(ids).logits, atol=0, rtol=0)


# ----------------------------------------------------------------------------- other layouts


def test_mistral_style_tokenizer_json_with_safetensors_shards(tmp_path, sp):
    """tokenizer.json + tokenizer.model, ``LlamaTokenizer`` with ``legacy: true`` (Mistral-7B-v0.1):
    transformers 5 loads it with a Metaspace pre-tokenizer, and the legacy-space guard restores
    SentencePiece's ids."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=64)  # fmt: skip
    model = MistralForCausalLM(config).eval()
    files = {
        "tokenizer.json": (LLAMA_TOKENIZER / "tokenizer.json").read_text(encoding="utf-8"),
        "tokenizer.model": llama_sentencepiece_model(),
        "tokenizer_config.json": json.dumps(MISTRAL_TOKENIZER_CONFIG),
    }
    folder = safetensors_checkpoint(tmp_path / "mistral", model, files)
    judge = Judge.from_pretrained(str(folder), device="cpu")
    for text in CORPUS:
        assert judge.tokenizer(text)["input_ids"] == [1, *sp.encode(text)], text
    _same_logits(judge, model, CORPUS[1])


def test_llama3_style_tokenizer_json_is_used_as_written(tmp_path):
    """A byte-level BPE tokenizer.json (``PreTrainedTokenizerFast``): judgelm must not touch it; the
    ids are those of the `tokenizers` library reading the same file."""
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    backend = llama3_style_tokenizer(CORPUS * 3)
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64, "rope_theta": 500000.0}  # fmt: skip
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=backend.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rope_scaling=rope,
                         bos_token_id=backend.token_to_id("<|begin_of_text|>"),
                         eos_token_id=backend.token_to_id("<|end_of_text|>"))  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    files = {"tokenizer.json": backend.to_str(), "tokenizer_config.json": json.dumps(LLAMA3_TOKENIZER_CONFIG)}
    folder = safetensors_checkpoint(tmp_path / "llama3", model, files)
    judge = Judge.from_pretrained(str(folder), device="cpu")
    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in CORPUS:
        assert judge.tokenizer(text)["input_ids"] == reference.encode(text).ids, text
    assert judge.tokenizer.bos_token == "<|begin_of_text|>"
    _same_logits(judge, model, CORPUS[1])


def test_gguf_with_a_sentencepiece_vocabulary(tmp_path, weights, sp):
    """llama.cpp's LLaMA GGUF (tokenizer.ggml.model = "llama"): transformers 5 reads its vocabulary
    with a Metaspace that drops the dummy prefix before a leading space; judgelm converts the
    pieces and scores itself, like a ``tokenizer.model``."""
    config, state = weights
    path = llama_gguf(tmp_path / "tiny-judge.gguf", config, state)
    judge = Judge.from_pretrained(str(path), device="cpu")
    for text in CORPUS:
        assert judge.tokenizer(text)["input_ids"] == [1, *sp.encode(text)], text
    assert judge.model.dtype == torch.float32
    _same_logits(judge, model_from_state_dict(config, state, torch.float32), CORPUS[1])


# ----------------------------------------------------------------------------- HF conventions


def test_torch_dtype_is_honoured_or_refused(judgelm_dir):
    judge = Judge.from_pretrained(str(judgelm_dir), device="cpu", torch_dtype=torch.bfloat16)
    assert judge.model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="disagree"):
        Judge.from_pretrained(str(judgelm_dir), device="cpu", dtype="fp32", torch_dtype=torch.bfloat16)
    same = Judge.from_pretrained(str(judgelm_dir), device="cpu", dtype="bf16", torch_dtype=torch.bfloat16)
    assert same.model.dtype == torch.bfloat16


def test_auto_dtype_is_the_checkpoints_where_the_device_runs_it_well(judgelm_dir, monkeypatch):
    for native, want in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda native=native: native)
        assert Judge.from_pretrained(str(judgelm_dir), device="cpu", dtype="auto").model.dtype == want
    cuda = torch.device("cuda")
    for bf16_gpu, checkpoint, want in [
        (True, torch.bfloat16, torch.bfloat16),
        (False, torch.bfloat16, torch.float16),  # e.g. a V100
        (True, torch.float16, torch.float16),
        (True, torch.float32, torch.float32),
        (True, None, torch.bfloat16),
        (False, None, torch.float32),
    ]:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16_gpu=bf16_gpu: bf16_gpu)
        assert loading.resolve_dtype("auto", cuda, checkpoint) == want
        assert loading.resolve_dtype(None, cuda, checkpoint) == want
    assert loading.resolve_dtype("fp16", torch.device("cpu"), torch.bfloat16) == torch.float16  # asked is asked
    with pytest.raises(ValueError, match="unknown dtype"):
        loading.resolve_dtype("float13", torch.device("cpu"))


def test_device_map_is_passed_through(judgelm_dir, monkeypatch):
    """(JudgeLM-33B in bf16 is 66 GB: ``device_map="auto"`` shards it over GPUs or offloads it.)"""
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    real, seen = AutoModelForCausalLM.from_pretrained, []
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: seen.append(k) or real(*a, **k))
    monkeypatch.setattr(LlamaForCausalLM, "to", lambda *a, **k: pytest.fail("a device_map placed it already"))
    judge = Judge.from_pretrained(str(judgelm_dir), dtype="fp32", device_map={"": "cpu"})
    assert seen[0]["device_map"] == {"": "cpu"} and judge.model.device.type == "cpu"
    with pytest.raises(ValueError, match="not both"):
        Judge.from_pretrained(str(judgelm_dir), device="cpu", device_map="cpu")


def test_quantized_loading_reaches_transformers(judgelm_dir, monkeypatch):
    """bitsandbytes needs CUDA, so this checks the hand-over only: the config transformers
    receives, and that a model transformers placed is not moved again."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    seen = []

    class Placed(torch.nn.Module):
        hf_device_map: ClassVar[dict[str, int]] = {"": 0}

        def to(self, *a, **k):
            raise AssertionError("a quantized model placed by transformers must not be moved")

    def fake(*args, **kwargs):
        seen.append(kwargs)
        return Placed()

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake)
    loading.load_model_and_tokenizer(str(judgelm_dir), load_in_8bit=True)
    loading.load_model_and_tokenizer(str(judgelm_dir), quantization_config=BitsAndBytesConfig(load_in_4bit=True))
    assert seen[0]["quantization_config"].load_in_8bit and "load_in_8bit" not in seen[0]
    assert seen[1]["quantization_config"].load_in_4bit
    with pytest.raises(ValueError, match="not both"):
        loading.load_model_and_tokenizer(
            str(judgelm_dir), load_in_8bit=True, quantization_config=BitsAndBytesConfig(load_in_8bit=True)
        )


# ----------------------------------------------------------------------------- the hub, offline


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache and a hub endpoint that refuses connections (port 9, discard)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return cache


def test_a_hub_repo_in_the_cache_loads_offline_with_its_judge_json(hub, judgelm_dir, monkeypatch, sp):
    from huggingface_hub import constants

    folder = hub.parent / "with-judge-json"
    shutil.copytree(judgelm_dir, folder)
    JudgeConfig(calibration=Calibration(temperature=1.7).to_dict()).save(folder)
    hub_cache(hub, "BAAI/JudgeLM-tiny-v1.0", folder)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert JudgeConfig.locate("BAAI/JudgeLM-tiny-v1.0").calibration["temperature"] == 1.7
    judge = Judge.from_pretrained("BAAI/JudgeLM-tiny-v1.0", device="cpu")
    assert judge.calibration.temperature == 1.7  # judge.json read for a hub id, not only for folders
    assert judge.tokenizer(CORPUS[1])["input_ids"] == [1, *sp.encode(CORPUS[1])]  # tokenizer.model via the hub
    assert JudgeConfig.locate("BAAI/not-in-the-cache") is None  # a missing judge.json is not an error


def test_unreachable_hub_fails_fast_with_one_clear_line(hub, monkeypatch, tmp_path, capsys, judgelm_dir):
    from huggingface_hub import constants

    from judgelm.cli import main

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        Judge.from_pretrained("BAAI/JudgeLM-7B-v1.0")
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert "cannot reach the Hugging Face Hub at http://127.0.0.1:9" in message and "HF_HUB_OFFLINE=1" in message
    assert "local folder" in message and "\n" not in message
    assert elapsed < 5, elapsed  # one refused connection, no retries (was ~49 s of retries)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "q", "answers": ["a", "b"]}) + "\n")
    assert main(["judge", str(src), "--model", "BAAI/JudgeLM-7B-v1.0", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("judgelm: error: cannot reach the Hugging Face Hub"), lines
    # with the repo already in the cache, the same call loads from it
    hub_cache(hub, "BAAI/JudgeLM-tiny-v1.0", judgelm_dir)
    judge = Judge.from_pretrained("BAAI/JudgeLM-tiny-v1.0", device="cpu")
    assert judge.model.config.vocab_size == 32000


def test_a_missing_folder_is_named_as_such(tmp_path, capsys):
    from judgelm.cli import main

    for name in ("./no/such/folder", "no/such/folder", str(tmp_path / "nothing-here"), "model.gguf"):
        with pytest.raises(ModelLoadError, match=f"no such folder or file: {name}"):
            Judge.from_pretrained(name)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "q", "answers": ["a", "b"]}) + "\n")
    assert main(["judge", str(src), "--model", "./no/such/folder", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "judgelm: error: no such folder or file: ./no/such/folder"
