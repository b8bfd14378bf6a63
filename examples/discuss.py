"""Ask the judge why: a follow-up conversation about a verdict it gave."""

import sys

from judgelm import Judge

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
verdict = judge.compare("What is 12 * 12?", "144", "124", explain=True)
print("verdict:", verdict.text)
talk = judge.discuss(verdict, "Why did you prefer that answer?", max_new_tokens=64)
print("judge:", talk.reply)
talk = judge.discuss(talk, "Would a reference answer change your mind?", max_new_tokens=64)
print("judge:", talk.reply)
