"""Compare two assistants' multi-turn conversations with the same user (the `chat` format)."""

import sys

from judgelm import Judge, Turn

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
user = ["I have 3 apples.", "I eat one. How many are left?"]
a = [
    Turn("user", user[0]),
    Turn("assistant", "Nice!"),
    Turn("user", user[1]),
    Turn("assistant", "You have 2 apples left."),
]
b = [Turn("user", user[0]), Turn("assistant", "Great."), Turn("user", user[1]), Turn("assistant", "You have 4 apples.")]
print(judge.compare_chats(a, b))
