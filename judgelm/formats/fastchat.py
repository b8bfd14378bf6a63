"""fastchat's "mistral" conversation template, the way prometheus-eval's offline path uses it.

``PrometheusEval._get_conversation_prompt`` (prometheus-eval 0.1.20, ``prometheus_eval/judge.py``)
fills ``get_conv_template("mistral")`` with the system message and the user message, appends an
empty assistant turn and calls ``get_prompt()``; ``VLLM.completions`` (``prometheus_eval/vllm.py``)
then ``strip()``s the string before vLLM tokenizes it (BOS added by the tokenizer). The template
(FastChat ``fastchat/conversation.py``, identical in fschat 0.2.36 and the ``fastchat`` 0.1.0
package prometheus-eval pins): ``system_template="[INST] {system_message}\\n"``,
``roles=("[INST]", "[/INST]")``, ``SeparatorStyle.LLAMA2``, ``sep=" "``, ``sep2="</s>"``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["mistral_prompt"]

_ROLES = ("[INST]", "[/INST]")
_SEPS = (" ", "</s>")


def mistral_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """The stripped offline prompt for ``(role, content)`` messages (system, then user/assistant
    turns), ending with the open assistant tag, exactly as fastchat + prometheus-eval build it."""
    system = ""
    turns: list[str | None] = []
    for role, content in messages:
        if role == "system":
            system = content  # set_system_message: the last one wins
        elif role == "user":
            turns.append(content)  # judge.py appends user messages only
    turns.append(None)  # conv.append_message(conv.roles[1], None)
    # SeparatorStyle.LLAMA2 branch of Conversation.get_prompt
    out = f"[INST] {system}\n" if system else "[INST] "
    for i, message in enumerate(turns):
        tag = _ROLES[i % 2]
        if message:
            out += message + " " if i == 0 else tag + " " + message + _SEPS[i % 2]
        else:
            out += tag
    return out.strip()  # vllm.py: prompts = [prompt.strip() for prompt in prompts]
