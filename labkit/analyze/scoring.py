"""The injection matrix's score (pure): first-answer accuracy; a truth given only as the second answer is
shown apart and never counted as right.

    s = score(["first", "second", ""], names=["a", "b", "c"])
    s.right, s.second, s.cases, s.pct        # 1, 1, 3, 33.3
    s.text()                                 # "accuracy 33% (1/3 cases, first answers; target 100%); ..."
    mark("second")                           # "2nd" (the row's mark: ok, 2nd, WRONG)

A verdict whose runs allow two answers names both; naming the truth second is worth knowing (the
runs could not tell the two apart) but it is not naming the bottleneck, so it does not score.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

ANSWERS = ("first", "second", "")      # labkit.experiments.matrix.Case.answered: the truth named first, second, or not at all


@dataclass(frozen=True)
class Score:
    right: int                  # cases whose verdict named the truth as its first answer
    cases: int
    second: tuple[str, ...] = field(default=())     # cases whose truth came only as the second answer (not right)
    wrong: tuple[str, ...] = field(default=())      # cases not named at all

    @property
    def pct(self) -> float:
        return 100 * self.right / self.cases if self.cases else 0.0

    def text(self) -> str:
        out = f"accuracy {self.pct:.0f}% ({self.right}/{self.cases} cases, first answers; target 100%)"
        if self.second:
            out += (f"; {len(self.second)} more named the truth as the second answer only, not counted: "
                    + ", ".join(self.second))
        return out


def check(answer: str) -> str:
    if answer not in ANSWERS:
        raise ValueError(f"answer {answer!r}: one of 'first', 'second' or ''")
    return answer


def right(answer: str) -> bool:
    """Only the first answer counts."""
    return check(answer) == "first"


def mark(answer: str) -> str:
    """A matrix row's mark: 'ok' (first answer), '2nd' (second only: not right), 'WRONG'."""
    return {"first": "ok", "second": "2nd", "": "WRONG"}[check(answer)]


def score(answers, names=None) -> Score:
    """First-answer accuracy over `answers` (one per case, as Case.answered gives them; `names` the cases')."""
    answers = [check(a) for a in answers]
    names = list(names) if names is not None else [str(i + 1) for i in range(len(answers))]
    return Score(sum(a == "first" for a in answers), len(answers),
                 tuple(n for n, a in zip(names, answers) if a == "second"),
                 tuple(n for n, a in zip(names, answers) if a == ""))


def stripped(text: str) -> str:
    """Words with their numbers taken out ('#'), to compare two verdicts' wording run to run."""
    return re.sub(r"\d+(?:[.,]\d+)*", "#", text)
