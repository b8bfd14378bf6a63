"""Builders for the checkpoint layouts a judge comes in, made in-process from the vendored LLaMA
tokenizer (tests/assets/llama-tokenizer, a copy of shared/assets) and tiny random weights.
Nothing downloads. (No tests here; used by test_checkpoints_*.py.)

- `judgelm_checkpoint`: the layout of BAAI/JudgeLM-7B/13B/33B-v1.0 (transformers 4.28 era):
  sharded pickle ``pytorch_model-0000N-of-0000M.bin`` + ``pytorch_model.bin.index.json`` with the
  stale ``rotary_emb.inv_freq`` buffers, a SentencePiece ``tokenizer.model`` and no
  ``tokenizer.json``, the era's ``tokenizer_config.json`` / ``special_tokens_map.json`` /
  ``config.json``.
- `llama_sentencepiece_model`: that ``tokenizer.model``, built with `sentencepiece`'s own protobuf
  module from ``tokenizer.json`` so that SentencePiece encodes exactly like it: BPE, byte
  fallback, split digits, identity normalizer, dummy prefix, whitespace kept; ``<unk>`` UNKNOWN,
  ``<s>``/``</s>`` CONTROL, ``<0x..>`` BYTE with score 0; every other piece scored
  ``-(rank of the first merge that makes it)``, single characters ``-(id)``.
- `safetensors_checkpoint` (Mistral-style and Llama-3-style ``tokenizer.json`` checkpoints,
  safetensors shards) and `llama_gguf` (a GGUF file with a SentencePiece vocabulary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from conftest import LLAMA_TOKENIZER

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


def llama_sentencepiece_model(*, whitespace_ties: bool = False) -> bytes:
    """The ``tokenizer.model`` bytes (``whitespace_ties``: every ``▁▁…`` piece scores -1e9, as in
    Meta's file, so that SentencePiece breaks ties between them)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    data = json.loads((LLAMA_TOKENIZER / "tokenizer.json").read_text(encoding="utf-8"))
    first_merge: dict[str, int] = {}
    for rank, merge in enumerate(data["model"]["merges"]):
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        first_merge.setdefault(left + right, rank)
    kind = pb.ModelProto.SentencePiece
    model = pb.ModelProto()
    for piece, i in sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1]):
        p = model.pieces.add()
        p.piece = piece
        if piece == "<unk>":
            p.type, p.score = kind.UNKNOWN, 0.0
        elif piece in ("<s>", "</s>"):
            p.type, p.score = kind.CONTROL, 0.0
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            p.type, p.score = kind.BYTE, 0.0
        else:
            p.type = kind.NORMAL
            p.score = -float(first_merge.get(piece, i))
            if whitespace_ties and len(piece) > 1 and set(piece) == {"▁"}:
                p.score = -1e9
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.vocab_size = len(data["model"]["vocab"])
    spec.byte_fallback = spec.split_digits = True
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    norm = model.normalizer_spec
    norm.name = "identity"
    norm.add_dummy_prefix, norm.remove_extra_whitespaces, norm.escape_whitespaces = True, False, True
    norm.precompiled_charsmap = b""
    return model.SerializeToString()


def tiny_llama_state_dict(seed: int = 0, **config: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """(config, state dict) of a random LLaMA-1-shaped model (vocab 32000, no grouped KV heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False, **{**TINY, **config})
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # logits spread wider than the default init, so comparisons see real numbers
        model.lm_head.weight.normal_(0.0, 0.5)
        for norm in [m for name, m in model.named_modules() if name.endswith("norm")]:
            norm.weight.uniform_(0.5, 1.5)
    return cfg, {k: v.clone() for k, v in model.state_dict().items()}


def model_from_state_dict(config: Any, state: dict[str, torch.Tensor], dtype: torch.dtype) -> Any:
    """The reference: the same architecture with ``state`` loaded directly (no checkpoint files)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model.eval()


_ADDED = {"lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def _added(content: str) -> dict[str, Any]:
    return {"__type": "AddedToken", "content": content, **_ADDED}


def judgelm_checkpoint(folder: Path, config: Any, state: dict[str, torch.Tensor], *, shards: int = 2) -> Path:
    """Write ``state`` (saved as bf16, like the published weights) in the JudgeLM-v1.0 layout."""
    folder.mkdir(parents=True, exist_ok=True)
    head_dim = config.hidden_size // config.num_attention_heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    full = {k: v.to(torch.bfloat16) for k, v in state.items()}
    for i in range(config.num_hidden_layers):  # transformers 4.28 saved the rotary buffers too
        full[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq.clone()
    keys = list(full)
    per = -(-len(keys) // shards)
    weight_map = {}
    for n in range(shards):
        name = f"pytorch_model-{n + 1:05d}-of-{shards:05d}.bin"
        part = {k: full[k] for k in keys[n * per : (n + 1) * per]}
        torch.save(part, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    total = sum(v.numel() * v.element_size() for v in full.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(
        json.dumps(
            {
                "_name_or_path": "vicuna-7b-v1.3",
                "architectures": ["LlamaForCausalLM"],
                "bos_token_id": 1,
                "eos_token_id": 2,
                "hidden_act": "silu",
                "hidden_size": config.hidden_size,
                "initializer_range": 0.02,
                "intermediate_size": config.intermediate_size,
                "max_position_embeddings": 2048,
                "model_type": "llama",
                "num_attention_heads": config.num_attention_heads,
                "num_hidden_layers": config.num_hidden_layers,
                "pad_token_id": 0,
                "rms_norm_eps": config.rms_norm_eps,
                "tie_word_embeddings": False,
                "torch_dtype": "bfloat16",
                "transformers_version": "4.28.1",
                "use_cache": True,
                "vocab_size": config.vocab_size,
            },
            indent=2,
        )
    )
    (folder / "tokenizer.model").write_bytes(llama_sentencepiece_model())
    tokenizer_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": _added("<s>"),
        "clean_up_tokenization_spaces": False,
        "eos_token": _added("</s>"),
        "model_max_length": 2048,
        "pad_token": None,
        "padding_side": "right",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": _added("<unk>"),
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    special = {"bos_token": _added("<s>"), "eos_token": _added("</s>"), "unk_token": _added("<unk>")}
    special["pad_token"] = "<unk>"  # as Vicuna v1.3 / JudgeLM ship it
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (folder / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "transformers_version": "4.28.1"})
    )
    return folder


def _permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's q/k row order (convert_hf_to_gguf.py ``LlamaModel.permute``); transformers'
    GGUF reader undoes it."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_gguf(path: Path, config: Any, state: dict[str, torch.Tensor]) -> Path:
    """A GGUF file (fp32 tensors) of ``state`` with the LLaMA SentencePiece vocabulary as llama.cpp
    stores it (tokenizer.ggml.model = "llama": tokens, scores, token types)."""
    import gguf

    from judgelm.modalities.spm_proto import read_model

    spm = read_model(llama_sentencepiece_model())
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")
    w.add_token_list([p.piece for p in spm.pieces])
    w.add_token_scores([p.score for p in spm.pieces])
    w.add_token_types([int(p.type) for p in spm.pieces])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for i in range(config.num_hidden_layers):
        for hf, cpp in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{cpp}.weight"
    for key, name in names.items():
        t = state[key].float()
        if name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config.num_attention_heads if "attn_q" in name else config.num_key_value_heads
            t = _permute(t, heads)
        w.add_tensor(name, t.numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


MISTRAL_TOKENIZER_CONFIG = {  # the shape of mistralai/Mistral-7B-v0.1's file (LLaMA vocabulary)
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": True,
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "sp_model_kwargs": {},
    "spaces_between_special_tokens": False,
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
    "use_default_system_prompt": False,
}


def llama3_style_tokenizer(corpus: list[str]) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` shaped like Llama 3's ``tokenizer.json`` (the GPT-4
    split regex, ByteLevel without prefix space, ``<|begin_of_text|>`` added by the post-processor),
    trained on ``corpus`` (Llama 3's own 128k vocabulary is not vendored)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    split = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
        r"|\s+(?!\S)|\s+"
    )
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    bos = tok.token_to_id(specials[0])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{specials[0]} $A", pair=f"{specials[0]} $A {specials[0]} $B:1", special_tokens=[(specials[0], bos)]
    )
    return tok


LLAMA3_TOKENIZER_CONFIG = {
    "bos_token": "<|begin_of_text|>",
    "clean_up_tokenization_spaces": True,
    "eos_token": "<|end_of_text|>",
    "model_input_names": ["input_ids", "attention_mask"],
    "model_max_length": 131072,
    "tokenizer_class": "PreTrainedTokenizerFast",
}


def safetensors_checkpoint(folder: Path, model: Any, tokenizer_files: dict[str, str | bytes]) -> Path:
    """``model`` saved as safetensors shards (+ ``model.safetensors.index.json``) beside the given
    tokenizer files."""
    model.save_pretrained(folder, max_shard_size="100KB", safe_serialization=True)
    for name, content in tokenizer_files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    assert (folder / "model.safetensors.index.json").is_file() and len(list(folder.glob("model-*.safetensors"))) > 1
    return folder


def hub_cache(cache: Path, repo: str, folder: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> None:
    """Put ``folder``'s files in a Hugging Face cache as the snapshot of ``repo`` at ``main``."""
    import shutil

    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
