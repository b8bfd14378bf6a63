"""Helpers for testing code that uses judgelm, without downloading anything.

- `byte_tokenizer()`: a real Hugging Face fast tokenizer built in memory (one token per byte).
- `tiny_llama(tokenizer)`: a randomly initialised 2-layer Llama for that tokenizer.
- `scripted_judge(respond)`: a `Judge` whose "model" answers with the text you script, so tests
  can pin how verdicts are parsed, combined and written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from judgelm.judge import Judge

__all__ = ["ScriptedEngine", "byte_tokenizer", "scripted_judge", "tiny_judge", "tiny_llama"]


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + ``<s>``, ``</s>``, ``<pad>``; BOS added), no files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<s>": 0, "</s>": 1, "<pad>": 2}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_llama(
    tokenizer: Any,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    max_positions: int = 2048,
    seed: int = 0,
) -> Any:
    """A random-init Llama sized for unit tests (fp32, CPU, eval mode)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # Wider logits than the default init so greedy decoding is not a flat argmax over ties.
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.5)
    return model.eval()


def tiny_judge(tokenizer: Any, **kwargs: Any) -> Judge:
    """A `Judge` on `tiny_llama` (random weights: for plumbing tests, not for verdicts)."""
    return Judge(tiny_llama(tokenizer, **kwargs), tokenizer, name="tiny-llama")


class ScriptedEngine:
    """An engine that answers each prompt with ``respond(prompt_text)`` instead of running a model.

    It honours the engine contract: continuation ids without the prompt, cut after the first
    newline when ``stop_at_newline``, at most ``max_new_tokens``, EOS appended when the text ends.
    """

    def __init__(self, tokenizer: Any, respond: Callable[[str], str] | str, *, context_length: int = 2048):
        self.tokenizer = tokenizer
        self.respond = (lambda _: respond) if isinstance(respond, str) else respond
        self.context_length = context_length
        self.prompts: list[str] = []  # every prompt seen, for assertions

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_at_newline: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        out = []
        for ids in prompts:
            ids = list(ids)
            if ids and ids[0] == self.tokenizer.bos_token_id:
                ids = ids[1:]  # keep other special tokens (an EOS inside a discussion) visible
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            self.prompts.append(text)
            reply = self.respond(text)
            if stop_at_newline and "\n" in reply:
                reply = reply[: reply.index("\n") + 1]
            new = list(self.tokenizer(reply, add_special_tokens=False)["input_ids"])
            if not (stop_at_newline and reply.endswith("\n")):
                new.append(self.tokenizer.eos_token_id)
            out.append(new[:max_new_tokens])
        if on_batch is not None:
            on_batch(len(prompts))
        return out


def scripted_judge(
    respond: Callable[[str], str] | str, tokenizer: Any | None = None, *, name: str = "scripted"
) -> Judge:
    """A `Judge` that answers every prompt with ``respond(prompt_text)`` (or a fixed string).

    >>> judge = scripted_judge("8 9\\nAssistant 2 is more precise.")
    >>> judge.compare("Q?", "a", "b").winner
    1
    """
    tokenizer = tokenizer or byte_tokenizer()
    return Judge(None, tokenizer, name=name, engine=ScriptedEngine(tokenizer, respond))
