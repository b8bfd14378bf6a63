"""The README's Python block runs as written (on a tiny judge standing in for the 7B it names)."""

from __future__ import annotations

import re
from pathlib import Path

from judgelm import Judge

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_block_runs(tiny_model, llama_tokenizer, monkeypatch, capsys):
    judge = Judge(tiny_model, llama_tokenizer, abstain_threshold=1.0)  # random weights: never abstain
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    asked: list[str] = []
    monkeypatch.setattr(Judge, "from_pretrained", classmethod(lambda cls, name, **kw: asked.append(name) or judge))
    exec(compile(blocks[0], str(README), "exec"), {})
    assert asked == ["BAAI/JudgeLM-7B-v1.0"]
    printed = capsys.readouterr().out
    assert "scores" in printed and "Verdict(" not in printed
