"""The Prometheus 2 and PandaLM checkpoint layouts, as tiny folders built here, load and read the
token ids their own stacks feed the model.

- Prometheus 2 (``prometheus-eval/prometheus-7b-v2.0``, Mistral-7B-Instruct based): a
  ``tokenizer.json`` (SentencePiece-BPE, byte fallback, legacy normalizer) with a Mistral chat
  template. prometheus-eval's offline path gives vLLM the fastchat "mistral" string, which vLLM
  tokenizes with BOS: judgelm feeds exactly ``BOS + tokenize(prompt)``, never the chat template.
- PandaLM-7B (``WeOpenML/PandaLM-7B-v1``, LLaMA-1): ``[PAD]`` added as id 32000 (vocab 32001) and
  ``bos_token``/``eos_token``/``unk_token`` all ``</s>`` — set by PandaLM's training code
  (``pandalm/core/nets.py``, ``DEFAULT_BOS_TOKEN = "</s>"``) and saved with the weights by its
  trainer, and set again by ``pandalm_inference.py``. Its slow LlamaTokenizer prepends
  ``bos_token_id``: PandaLM read prompts starting with id 2, so judgelm does too. (The released
  folder has a SentencePiece ``tokenizer.model``; the ``tokenizer.json`` here is the same LLaMA
  vocabulary, from ``shared/assets/llama-tokenizer``.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from judgelm import Judge, Sample
from judgelm.formats import get_format

LLAMA = Path(__file__).parent / "assets" / "llama-tokenizer"
# Mistral-7B-Instruct-v0.2's chat template: user/assistant only (a system message is refused)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


def _tiny(config_cls, folder: Path, vocab: int, **extra) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    config = config_cls(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        **extra,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder, safe_serialization=True)


def _tokenizer_files(folder: Path, config: dict, special: dict) -> None:
    shutil.copy(LLAMA / "tokenizer.json", folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")


@pytest.fixture(scope="module")
def prometheus_dir(tmp_path_factory) -> Path:
    from transformers import MistralConfig

    folder = tmp_path_factory.mktemp("prometheus-7b-v2.0")
    _tiny(MistralConfig, folder, 32000, sliding_window=None)
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": True,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "model_max_length": 32768,
        "chat_template": MISTRAL_TEMPLATE,
    }
    _tokenizer_files(folder, config, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    return folder


def _pandalm_dir(root: Path, tokenizer_class: str) -> Path:
    from transformers import LlamaConfig

    folder = root / f"PandaLM-7B-v1-{tokenizer_class}"
    folder.mkdir()
    _tiny(LlamaConfig, folder, 32001, pad_token_id=0)
    pad = {
        "content": "[PAD]",
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": True,
    }
    base = json.loads((LLAMA / "tokenizer_config.json").read_text())
    config = {
        **{k: base[k] for k in ("add_bos_token", "add_eos_token", "clean_up_tokenization_spaces")},
        "added_tokens_decoder": {**base["added_tokens_decoder"], "32000": pad},
        "tokenizer_class": tokenizer_class,
        "bos_token": "</s>",
        "eos_token": "</s>",
        "unk_token": "</s>",
        "pad_token": "[PAD]",
        "model_max_length": 2048,
    }
    _tokenizer_files(
        folder, config, {"bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>", "pad_token": "[PAD]"}
    )
    return folder


@pytest.fixture(scope="module", params=["LlamaTokenizer", "PreTrainedTokenizerFast"])
def pandalm_dir(request, tmp_path_factory) -> Path:
    return _pandalm_dir(tmp_path_factory.mktemp("pandalm"), request.param)


def test_prometheus_layout_reads_bos_plus_the_offline_prompt(prometheus_dir):
    judge = Judge.from_pretrained(str(prometheus_dir))
    raw = Tokenizer.from_file(str(prometheus_dir / "tokenizer.json"))
    for mode, answers in (("prometheus_absolute", ("  4\t",)), ("prometheus_relative", ("4", "Café 🙂\r\n"))):
        sample = Sample("What is 2+2?\n", answers, reference="4", mode=mode)
        (encoded,) = judge.encode(sample)
        assert list(encoded.input_ids) == raw.encode(encoded.prompt.text).ids  # BOS 1 + the text, as vLLM
        assert encoded.input_ids[0] == 1 and encoded.prompt.text.endswith("###Feedback:  [/INST]")
    # the checkpoint's chat template has no system role: the API path needs its own server-side
    # template; the offline path never uses it
    with pytest.raises(Exception, match="roles"):
        judge.tokenizer.apply_chat_template(encoded.prompt.chat(), tokenize=False)
    v = judge.judge([Sample("q", ("a",), mode="prometheus_absolute")], scoring="logits", max_new_tokens=8)[0]
    assert v.abstained and v.reason_code == "no_verdict" and "max_new_tokens=8" in v.reason  # random weights


def test_pandalm_layout_prepends_its_declared_bos(pandalm_dir):
    judge = Judge.from_pretrained(str(pandalm_dir))
    raw = Tokenizer.from_file(str(pandalm_dir / "tokenizer.json"))
    assert judge.tokenizer.bos_token == "</s>" and judge.tokenizer.pad_token_id == 32000
    sample = Sample("Translate:\n", ("  <s>bonjour </s> ", "hello"), input="bonjour\r\n", mode="pandalm")
    (encoded,) = judge.encode(sample)
    assert encoded.input_ids[0] == 2  # </s>, as PandaLM's LlamaTokenizer prepends
    assert list(encoded.input_ids[1:]) == raw.encode(encoded.prompt.text, add_special_tokens=False).ids
    assert encoded.prompt.text.endswith("### Evaluation:\n") and "<s>" not in encoded.prompt.text
    judge.abstain_threshold = 1.0
    v = judge.judge([sample], scoring="logits", swap=True)[0]
    assert not v.abstained and v.distributions[0].values == (0.0, 0.5, 1.0)
    assert v.preference.first + v.preference.tie + v.preference.second == pytest.approx(1.0, abs=1e-6)


def test_judgelm_tokenizers_keep_bos_one(llama_tokenizer):
    ids = llama_tokenizer(get_format("pairwise").render(Sample("q", ("a", "b"))).text)["input_ids"]
    assert ids[0] == 1
