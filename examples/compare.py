"""Which of two answers is better? `python examples/compare.py [MODEL]` (default: the demo judge)."""

import sys

from judgelm import Judge

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
verdict = judge.compare(
    "What is the capital of Australia?",
    "The capital of Australia is Canberra.",
    "Sydney is the capital of Australia.",
    reference="Canberra",
)
print(verdict)  # winner, scores (3 significant digits), P(1 better / tie / 2 better), confidence
