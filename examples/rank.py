"""Score and rank several answers in one prompt (the `multi` format)."""

import sys

from judgelm import Judge

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
answers = ["15", "13", "11 and 13 are both prime numbers between 10 and 20."]
verdict = judge.rank("Name a prime number between 10 and 20.", answers)
print(verdict)
if not verdict.abstained:
    for place, i in enumerate(verdict.ranking, start=1):
        print(f"{place}. ({verdict.scores[i]:.3g}) {answers[i]}")
