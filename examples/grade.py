"""Grade one answer against a gold answer (JudgeLM's `### Response:10` mode)."""

import sys

from judgelm import Judge

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
verdict = judge.grade("Convert 5 kilometres to metres.", "5 kilometres is 500 metres.", gold="5,000 metres.")
print(verdict)  # "graded 4.22; confidence 0.19", or why the judge abstained
