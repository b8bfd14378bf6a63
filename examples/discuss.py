"""Ask the judge why: a follow-up conversation about a verdict it gave."""

import sys

from judgelm import Judge

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
print("judging, with an explanation ...", flush=True)
verdict = judge.compare("What is 12 * 12?", "144", "124", explain=True)
print("verdict:", verdict)
print("explanation:", verdict.explanation or "(none)")
talk = verdict
for question in ("Why did you prefer that answer?", "Would a reference answer change your mind?"):
    print(f"you: {question}", flush=True)
    talk = judge.discuss(talk, question, max_new_tokens=64)
    print("judge:", talk.reply)
