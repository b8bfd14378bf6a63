"""Helpers for testing code that uses judgelm, without downloading anything.

- `byte_tokenizer()`: a real Hugging Face fast tokenizer built in memory (one token per byte).
- `tiny_llama(tokenizer)`: a randomly initialised 2-layer Llama for that tokenizer.
- `scripted_judge(respond)`: a `Judge` whose "model" answers with the text you script, so tests
  can pin how verdicts are parsed, combined and written.
- `BigramLM`: a causal LM with hand-set next-token probabilities (exact verdict distributions).
- `packed_hf_hidden(model, prompts)`: an HF model's own forward, run packed through judgelm's
  attention (a peer and a cross-check for the packed engine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from judgelm.judge import Judge

__all__ = [
    "BigramLM",
    "ScriptedEngine",
    "byte_tokenizer",
    "packed_hf_hidden",
    "scripted_judge",
    "tiny_judge",
    "tiny_llama",
]


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

    It implements the `judgelm.engine.Engine` protocol for text only (``capabilities.logits`` is
    False: `Judge` parses text): continuation ids without the prompt, cut after the first newline
    when ``stop_at_newline``, after the first of ``stop_strings`` and after any
    ``stop_token_ids``, at most ``max_new_tokens``, EOS appended when the text ends, every token
    given to ``on_token``.
    """

    def __init__(
        self,
        tokenizer: Any,
        respond: Callable[[str], str] | str,
        *,
        context_length: int = 2048,
        reason: str = "scripted replies",
    ):
        from judgelm.engine.base import Capabilities, ModelFacts

        self.tokenizer = tokenizer
        self.respond = (lambda _: respond) if isinstance(respond, str) else respond
        eos = tokenizer.eos_token_id
        self.facts = ModelFacts(
            pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
            eos_ids=frozenset({eos}),
            context_length=context_length,
            tokenizer=tokenizer,
        )
        self.capabilities = Capabilities(logits=False, images=False)
        self.reason = reason
        self.prompts: list[str] = []  # every prompt seen, for assertions

    def batches(self, prompts: Sequence[Sequence[int]], extra_per_item: int) -> list[list[int]]:
        return [list(range(len(prompts)))]

    def prefill(self, prompts: Sequence[Sequence[int]], *, images: Any = None) -> Any:
        raise NotImplementedError("a scripted engine writes text only (capabilities.logits is False)")

    def tree_step(self, state: Any, trees: Sequence[Any]) -> list[Any]:
        raise NotImplementedError("a scripted engine writes text only (capabilities.logits is False)")

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: Any,
        *,
        images: Any = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        out = []
        for index, ids in enumerate(prompts):
            ids = list(ids)
            if ids and ids[0] == self.tokenizer.bos_token_id:
                ids = ids[1:]  # keep other special tokens (an EOS inside a discussion) visible
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            self.prompts.append(text)
            reply = self.respond(text)
            ends = [reply.index(s) + len(s) for s in options.stop_strings if s in reply]
            if options.stop_at_newline and "\n" in reply:
                ends.append(reply.index("\n") + 1)
            stopped = bool(ends)  # on a newline or a stop string: no EOS after it
            reply = reply[: min(ends)] if ends else reply
            new = list(self.tokenizer(reply, add_special_tokens=False)["input_ids"])
            if not stopped:
                new.append(self.tokenizer.eos_token_id)
            cut = next((k + 1 for k, t in enumerate(new) if t in options.stop_token_ids), len(new))
            new = new[: min(cut, options.max_new_tokens)]
            if options.on_token is not None:
                for token in new:
                    options.on_token(index, token)
            out.append(new)
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


_NEVER = -1e9  # log-probability of an impossible token (finite: one-hot @ W must not hit 0 * inf)


class BigramLM:
    """A causal LM with hand-set next-token probabilities that depend only on the current token.

    ``rules[token][next_token] = probability``; the rest of each row's mass is spread evenly over
    the other tokens (so the stated probabilities are exact), and tokens without a rule predict
    uniformly. Use it to pin exact verdict distributions in tests:

    >>> tok = byte_tokenizer()
    >>> colon, eight, nine = (tok.convert_tokens_to_ids(c) for c in ":89")
    >>> lm = BigramLM(len(tok), {colon: {eight: 0.6, nine: 0.4}})
    """

    def __new__(cls, vocab_size: int, rules: dict[int, dict[int, float]], *, max_positions: int = 4096) -> Any:
        import math
        from types import SimpleNamespace

        import torch
        from torch import nn
        from transformers import LlamaConfig

        contexts = {tok: k + 1 for k, tok in enumerate(sorted(rules))}  # context 0 = "no rule"
        weight = torch.full((vocab_size, len(contexts) + 1), -math.log(vocab_size))
        for tok, nexts in rules.items():
            col = contexts[tok]
            rest = 1.0 - sum(nexts.values())
            if rest < -1e-9:
                raise ValueError(f"probabilities after token {tok} sum to more than 1")
            others = vocab_size - len(nexts)
            weight[:, col] = math.log(rest / others) if rest > 1e-12 and others else _NEVER
            for nxt, p in nexts.items():
                weight[nxt, col] = math.log(p) if p > 0 else _NEVER
        lookup = torch.zeros(vocab_size, dtype=torch.long)
        for tok, col in contexts.items():
            lookup[tok] = col

        class _Decoder(nn.Module):
            def forward(self, input_ids: Any = None, cache: Any = None, past_key_values: Any = None, **_: Any) -> Any:
                kv = cache if cache is not None else past_key_values
                if kv is not None:  # keep the cache length honest so callers can crop it
                    B, T = input_ids.shape
                    kv.update(torch.zeros(B, 1, T, 1), torch.zeros(B, 1, T, 1), 0)
                hidden = nn.functional.one_hot(lookup[input_ids], len(contexts) + 1).float()
                return SimpleNamespace(last_hidden_state=hidden)

        class _BigramLM(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = _Decoder()
                self.lm_head = nn.Linear(len(contexts) + 1, vocab_size, bias=False)
                self.lm_head.weight.data = weight
                self.config = LlamaConfig(
                    vocab_size=vocab_size,
                    hidden_size=4,
                    num_hidden_layers=1,
                    num_attention_heads=1,
                    num_key_value_heads=1,
                    intermediate_size=4,
                    max_position_embeddings=max_positions,
                )
                self.generation_config = SimpleNamespace(eos_token_id=None)

            def get_decoder(self) -> nn.Module:
                return self.model

            def get_output_embeddings(self) -> nn.Module:
                return self.lm_head

            def forward(self, input_ids: Any = None, logits_to_keep: int = 0, **kw: Any) -> Any:
                hidden = self.model(input_ids=input_ids, **kw).last_hidden_state
                if logits_to_keep:
                    hidden = hidden[:, -logits_to_keep:]
                return SimpleNamespace(logits=self.lm_head(hidden))

        return _BigramLM().eval()


def packed_hf_hidden(model: Any, prompts: Sequence[Sequence[int]]) -> Any:
    """Final hidden state [B, H] at each prompt's last token from ONE packed forward of the HF
    model (no padding, ``position_ids`` restarting per prompt, ``cu_seq_lens``), through
    judgelm's registered attention. The model's own attention setting is restored afterwards."""
    import itertools

    import torch

    from judgelm.engine.attention import register_transformers_attention

    name = register_transformers_attention()
    before = model.config._attn_implementation
    dev = next(model.parameters()).device
    lengths = [len(p) for p in prompts]
    ids = torch.tensor([t for p in prompts for t in p], dtype=torch.long, device=dev)[None]
    pos = torch.cat([torch.arange(n) for n in lengths]).to(dev)[None]
    cu = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device=dev)
    try:
        model.set_attn_implementation(name)
        with torch.inference_mode():
            out = model.get_decoder()(
                input_ids=ids,
                position_ids=pos,
                use_cache=False,
                cu_seq_lens_q=cu,
                cu_seq_lens_k=cu,
                max_length_q=max(lengths),
                max_length_k=max(lengths),
            ).last_hidden_state[0]  # [N, H]
    finally:
        model.set_attn_implementation(before)
    return out[cu[1:].long() - 1]
