"""The published JudgeLM checkpoints' layout (BAAI/JudgeLM-7B/13B/33B-v1.0): a SentencePiece
``tokenizer.model`` without ``tokenizer.json``, sharded pickle weights with stale ``inv_freq``
buffers. It loads with judgelm's declared dependencies only, its token ids are SentencePiece's own
(``[1] + sp.encode(prompt)``, the reference forcing BOS = 1), and its weights are the shards'.

The reference encoder is the `sentencepiece` package (dev extra) run on the same file; the file is
built in-process from the vendored LLaMA tokenizer (see checkpoint_layouts.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from checkpoint_layouts import (
    judgelm_checkpoint,
    llama_sentencepiece_model,
    model_from_state_dict,
    tiny_llama_state_dict,
)
from conftest import LLAMA_TOKENIZER

from judgelm import Sample, Turn, get_format
from judgelm.modalities.spm import UnsupportedSentencePiece, sentencepiece_bpe
from judgelm.modalities.spm_proto import ModelType, PieceType, ProtoError, read_model

spm = pytest.importorskip("sentencepiece")  # the reference (dev extra); judgelm itself never imports it

ROOT = Path(__file__).resolve().parents[1]
CODE = 'def judge(a, b):\n    if a > b:\n        return "A"\n\telse:\n\t\treturn "B"  # tab\n'
TEXTS = [
    "\n    return x",
    CODE,
    "  leading spaces",
    "trailing spaces   ",
    "double  spaces  inside  ",
    " ",
    "",
    "tabs\tand\t\ttabs",
    "windows\r\nline\r\nends\r\n",
    "emoji 🦙🙂👍🏽 and ZWJ 👨‍👩‍👧",
    "中文文本，日本語のテキスト，한국어",
    "digits 1234567890 3.14159 -42 1e10 8 9\n10 10\n",
    "### Response:8 9\n",
    " grabbed",
    "x" * 300 + "     " + "y",
]


def golden_prompts() -> list[str]:
    """Every judging mode's prompt around code, whitespace-heavy and non-Latin answers."""
    answers = (CODE, "  It is 4.\n\nReally  4 ", "四 🙂\r\n", "10")
    chat = (
        (Turn("user", "Write code."), Turn("assistant", CODE)),
        (Turn("user", "Write code."), Turn("assistant", "  pass\n")),
    )
    samples = {
        "pairwise": Sample("What is 2+2?\n", answers[:2], reference="4 (four)"),
        "single": Sample("Grade:  ", answers[1:2], gold=answers[0]),
        "multi": Sample("Rank\tthese.", answers),
        "mmvet": Sample("What is shown?", ("a cat",), reference="cat<OR>kitten"),
        "chat": Sample(conversations=chat),
    }
    return [get_format(mode).render(s).text for mode, s in samples.items()]


CORPUS = TEXTS + golden_prompts()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return llama_sentencepiece_model()


@pytest.fixture(scope="module")
def sp(model_bytes):
    return spm.SentencePieceProcessor(model_proto=model_bytes)


@pytest.fixture(scope="module")
def weights():
    return tiny_llama_state_dict(seed=3)


@pytest.fixture(scope="module")
def judgelm_dir(tmp_path_factory, weights) -> Path:
    return judgelm_checkpoint(tmp_path_factory.mktemp("ckpt") / "JudgeLM-tiny-v1.0", *weights)


def test_the_fixture_model_encodes_like_the_tokenizer_json(sp):
    """The hand-built ``tokenizer.model`` is a faithful SentencePiece twin of the vendored files."""
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(LLAMA_TOKENIZER / "tokenizer.json"))
    for text in CORPUS:
        assert sp.encode(text) == reference.encode(text, add_special_tokens=False).ids, text


def test_reader_gets_pieces_and_specs(model_bytes):
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = read_model(model_bytes)
    proto = pb.ModelProto.FromString(model_bytes)
    assert len(model.pieces) == len(proto.pieces) == 32000
    for ours, theirs in zip(model.pieces, proto.pieces, strict=True):
        assert (ours.piece, ours.score, int(ours.type)) == (theirs.piece, theirs.score, theirs.type)
    assert model.pieces[259].piece == "▁▁" and model.pieces[3].type == PieceType.BYTE
    t, n = model.trainer, model.normalizer
    assert (t.model_type, t.byte_fallback, t.unk_id, t.bos_id, t.eos_id, t.pad_id) == (ModelType.BPE, True, 0, 1, 2, -1)
    assert (n.name, n.add_dummy_prefix, n.remove_extra_whitespaces, n.escape_whitespaces) == ("identity", 1, 0, 1)
    with pytest.raises(ProtoError):
        read_model(model_bytes[:1000])  # cut inside a piece
    with pytest.raises(ProtoError):
        read_model(b"\x0f\xff garbage")


def test_whitespace_pieces_with_equal_scores_break_ties_like_sentencepiece():
    """Meta's file gives every ``▁▁…`` piece the same score (-1e9); SentencePiece then merges the
    leftmost pair first. The converted merges must pick the same pieces on whitespace runs."""
    data = llama_sentencepiece_model(whitespace_ties=True)
    ours = sentencepiece_bpe(read_model(data), add_bos=False)
    sp = spm.SentencePieceProcessor(model_proto=data)
    rng = random.Random(0)
    parts = [" ", " ", "  ", "    ", "\n", "\t", "x", "return", "b ", " 1"]
    texts = ["".join(rng.choice(parts) for _ in range(rng.randint(1, 40))) for _ in range(1500)]
    assert [ours.encode(t).ids for t in texts] == [sp.encode(t) for t in texts]


def test_unsupported_models_are_refused_not_approximated(model_bytes):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto.FromString(model_bytes)
    proto.normalizer_spec.remove_extra_whitespaces = True
    with pytest.raises(UnsupportedSentencePiece, match="remove_extra_whitespaces"):
        sentencepiece_bpe(read_model(proto.SerializeToString()))
    proto = pb.ModelProto.FromString(model_bytes)
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    with pytest.raises(UnsupportedSentencePiece, match="UNIGRAM"):
        sentencepiece_bpe(read_model(proto.SerializeToString()))


# Run in a fresh interpreter where `sentencepiece`, `tiktoken` and `google.protobuf` cannot be
# imported (hidden from every import finder), as on a machine with judgelm's declared deps only.
DECLARED_DEPS_ONLY = r"""
import json, sys
HIDDEN = ("sentencepiece", "tiktoken", "google")

class Hide:
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return self.inner.find_spec(name, path, target)
    def __getattr__(self, name):
        return getattr(self.inner, name)

sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
for name in HIDDEN:
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is still importable")

from judgelm import Judge
judge = Judge.from_pretrained(sys.argv[1], device="cpu", dtype="fp32")
texts = json.loads(sys.stdin.read())
tok = judge.tokenizer
print(json.dumps({
    "ids": [tok(t)["input_ids"] for t in texts],
    "decoded": [tok.decode(tok(t)["input_ids"], skip_special_tokens=True) for t in texts],
    "special": [tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token, tok.pad_token_id],
    "max_length": tok.model_max_length,
    "padding_side": tok.padding_side,
    "hidden": [m for m in ("sentencepiece", "tiktoken", "google.protobuf") if m in sys.modules],
}))
"""


def test_judgelm_layout_loads_with_declared_deps_and_encodes_like_sentencepiece(judgelm_dir, sp):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", DECLARED_DEPS_ONLY, str(judgelm_dir)],
        input=json.dumps(CORPUS),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["hidden"] == []
    for text, ids in zip(CORPUS, out["ids"], strict=True):
        assert ids == [1, *sp.encode(text)], text
    assert out["decoded"] == CORPUS  # round trip, spaces and bytes included
    assert out["special"] == ["<s>", "</s>", "<unk>", "<unk>", 0]  # pad = <unk>, as special_tokens_map says
    assert out["max_length"] == 2048 and out["padding_side"] == "right"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_are_the_shards(judgelm_dir, weights, dtype):
    """Every tensor comes from the two pickle shards (loaded with weights_only); the 4.28-era
    ``rotary_emb.inv_freq`` buffers are ignored; logits equal a model built from the state dict."""
    from judgelm import Judge

    config, state = weights
    judge = Judge.from_pretrained(str(judgelm_dir), device="cpu", dtype=dtype)
    assert judge.model.dtype == dtype
    loaded = judge.model.state_dict()
    assert set(loaded) == set(state)  # no inv_freq, nothing missing
    for key, value in state.items():  # saved as bf16 (like the published weights), loaded as `dtype`
        assert torch.equal(loaded[key], value.to(torch.bfloat16).to(dtype)), key
    reference = model_from_state_dict(config, {k: v.to(torch.bfloat16) for k, v in state.items()}, dtype)
    ids = torch.tensor([judge.tokenizer(CORPUS[1])["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(judge.model(ids).logits, reference(ids).logits, atol=0, rtol=0)


def test_an_unsupported_model_falls_back_to_transformers(tmp_path, model_bytes, monkeypatch, caplog):
    """A SentencePiece model judgelm would not reproduce exactly goes to transformers' reader
    (which needs the `sentencepiece` package); without it, the error says so."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    from transformers import AutoTokenizer

    from judgelm.errors import ModelLoadError
    from judgelm.modalities.text import load_tokenizer

    proto = pb.ModelProto.FromString(model_bytes)
    proto.normalizer_spec.remove_extra_whitespaces = True
    (tmp_path / "tokenizer.model").write_bytes(proto.SerializeToString())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    with caplog.at_level("INFO", logger="judgelm.modalities.text"):
        tok = load_tokenizer(str(tmp_path))
    assert "remove_extra_whitespaces; using transformers' SentencePiece reader" in caplog.text
    assert 15043 in tok("Hello world")["input_ids"]  # "▁Hello": the file was read

    def without_sentencepiece(*args, **kwargs):
        raise ValueError("`tiktoken` is required to read a `tiktoken` file.\nInstall it.")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", without_sentencepiece)
    with pytest.raises(ModelLoadError, match="not a SentencePiece model with remove_extra_whitespaces; transformers"):
        load_tokenizer(str(tmp_path))
