"""Question families whose answer is computable, so every judgment built on them is verifiable.

Each family draws a `Problem` from a seeded RNG: the question, the true answer, a reference
answer in words, plausible wrong answers, and one partly right answer with the teacher's note on
what is wrong with it. Families are plain functions registered in `FAMILIES`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FAMILIES", "Problem", "draw_problem"]


@dataclass(frozen=True)
class Problem:
    """One question with a computable answer.

    - ``truth``: the canonical answer (``"85"``, ``"3, 7, 19"``, ``"Thursday"``).
    - ``reference``: a reference answer as a teacher would write it (``"47 + 38 = 85."``).
    - ``wrong``: distinct plausible wrong answers (never equal to ``truth``).
    - ``partial``: a partly right answer; ``partial_note`` says what is wrong with it.
    """

    family: str
    question: str
    truth: str
    reference: str
    wrong: tuple[str, ...]
    partial: str
    partial_note: str


def _distinct(candidates: list[str], truth: str, k: int = 3) -> tuple[str, ...]:
    out: list[str] = []
    for c in candidates:
        if c != truth and c not in out:
            out.append(c)
    return tuple(out[:k])


def _near_misses(rng: random.Random, value: int, spread: int) -> list[int]:
    """Wrong values a careless solver would give: off by one, by ten, by a slip of a digit."""
    cands = [
        value + 1,
        value - 1,
        value + 10,
        value - 10,
        value + rng.randint(2, spread),
        value - rng.randint(2, spread),
    ]
    rng.shuffle(cands)
    return [c for c in cands if c >= 0]


def arithmetic(rng: random.Random) -> Problem:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(3, 29), rng.randint(3, 19)
        value, sym = a * b, "×"
    else:
        a, b = rng.randint(10, 499), rng.randint(10, 499)
        if op == "-" and b > a:
            a, b = b, a
        value, sym = (a + b if op == "+" else a - b), op
    truth = str(value)
    wrong = _distinct([str(v) for v in _near_misses(rng, value, 30)], truth)
    # Partly right: the working is shown and correct up to a slip in the last step.
    partial = f"{a} {sym} {b} = {value}, or maybe {wrong[0]}; I am not sure which."
    return Problem(
        "arithmetic",
        f"What is {a} {sym} {b}?",
        truth,
        f"{a} {sym} {b} = {value}.",
        wrong,
        partial,
        f"wavers between {value} and {wrong[0]}",
    )


_UNITS = (
    ("meters", "centimeters", 100),
    ("kilometers", "meters", 1000),
    ("kilograms", "grams", 1000),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("feet", "inches", 12),
    ("days", "hours", 24),
    ("liters", "milliliters", 1000),
)


def unit_conversion(rng: random.Random) -> Problem:
    big, small, factor = rng.choice(_UNITS)
    amount = rng.randint(2, 40)
    value = amount * factor
    truth = f"{value} {small}"
    wrong_values = [amount * f for _, _, f in _UNITS if f != factor] + _near_misses(rng, value, factor)
    rng.shuffle(wrong_values)
    wrong = _distinct([f"{v} {small}" for v in wrong_values], truth)
    other = next(u for b, u, _ in _UNITS if u != small)
    return Problem(
        "unit_conversion",
        f"How many {small} are there in {amount} {big}?",
        truth,
        f"One of the {big} is {factor} {small}, so {amount} {big} are {value} {small}.",
        wrong,
        f"{value} {other}",
        f"has the right number but the wrong unit ({other} instead of {small})",
    )


def sorting(rng: random.Random) -> Problem:
    n = rng.randint(4, 6)
    numbers = rng.sample(range(1, 100), n)
    ordered = sorted(numbers)
    truth = ", ".join(map(str, ordered))
    descending = ", ".join(map(str, reversed(ordered)))
    shuffled = numbers[:]
    while shuffled == ordered:
        rng.shuffle(shuffled)
    i = rng.randrange(n - 1)
    almost = ordered[:]
    almost[i], almost[i + 1] = almost[i + 1], almost[i]
    return Problem(
        "sorting",
        f"Sort these numbers from smallest to largest: {', '.join(map(str, numbers))}.",
        truth,
        f"From smallest to largest: {truth}.",
        _distinct([descending, ", ".join(map(str, shuffled))], truth),
        ", ".join(map(str, almost)),
        f"puts {almost[i]} and {almost[i + 1]} in the wrong order",
    )


_WORDS = (
    "strawberry",
    "banana",
    "committee",
    "mississippi",
    "excellence",
    "bookkeeper",
    "parallel",
    "occurrence",
    "assessment",
    "referee",
    "balloon",
    "coffee",
    "engineering",
    "possession",
    "successful",
    "tattoo",
    "letter",
    "address",
    "millennium",
    "necessary",
)


def letter_count(rng: random.Random) -> Problem:
    word = rng.choice(_WORDS)
    letter = rng.choice(sorted(set(word)))
    value = word.count(letter)
    truth = str(value)
    wrong = _distinct([str(v) for v in (value + 1, value - 1, value + 2, len(word)) if v >= 0], truth)
    return Problem(
        "letter_count",
        f'How many times does the letter "{letter}" appear in the word "{word}"?',
        truth,
        f'The letter "{letter}" appears {value} time{"s" if value != 1 else ""} in "{word}".',
        wrong,
        f"{value} or {wrong[0]}, depending on how you count",
        f"wavers between {value} and {wrong[0]}",
    )


_ITEMS = (
    "apples",
    "pears",
    "kiwis",
    "plums",
    "lemons",
    "mangoes",
    "grapes",
    "cherries",
    "limes",
    "figs",
)


def table_lookup(rng: random.Random) -> Problem:
    items = rng.sample(_ITEMS, 5)
    prices = rng.sample(range(2, 60), 5)
    rows = "\n".join(f"| {it} | {p} |" for it, p in zip(items, prices, strict=True))
    k = rng.randrange(5)
    truth = str(prices[k])
    neighbour = prices[(k + 1) % 5]
    wrong = _distinct([str(neighbour), *(str(p) for p in prices), str(prices[k] + 1)], truth)
    return Problem(
        "table_lookup",
        f"Here is a price list (in cents):\n| item | price |\n|---|---|\n{rows}\nWhat is the price of {items[k]}?",
        truth,
        f"The table lists {items[k]} at {prices[k]} cents.",
        wrong,
        f"{truth} dollars",
        "reads the right number but gives it in dollars instead of cents",
    )


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def weekday(rng: random.Random) -> Problem:
    start, shift = rng.randrange(7), rng.randint(2, 30)
    value = _DAYS[(start + shift) % 7]
    wrong = _distinct([_DAYS[(start + shift + d) % 7] for d in (1, -1, 2, 3)], value)
    return Problem(
        "weekday",
        f"If today is {_DAYS[start]}, what day of the week will it be in {shift} days?",
        value,
        f"{shift} days is {shift // 7} weeks and {shift % 7} days, so it will be {value}.",
        wrong,
        f"{value} or {wrong[0]}",
        f"wavers between {value} and {wrong[0]}",
    )


FAMILIES: dict[str, Callable[[random.Random], Problem]] = {
    "arithmetic": arithmetic,
    "unit_conversion": unit_conversion,
    "sorting": sorting,
    "letter_count": letter_count,
    "table_lookup": table_lookup,
    "weekday": weekday,
}


def draw_problem(rng: random.Random, families: tuple[str, ...] = tuple(FAMILIES)) -> Problem:
    return FAMILIES[rng.choice(families)](rng)
