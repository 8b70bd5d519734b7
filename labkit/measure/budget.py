"""A storm's pull budget, kept by the Locust master: every pull starts with a ticket from it.

Users on every worker ask the master for a ticket before each pull; the master grants one
while the budget lasts (numbered 1..pulls) and refuses after, so a storm makes exactly
`pulls` pulls however the users are spread over workers. With `start_together` the first
tickets are held until every user has asked (or the start line times out), so the first
round of pulls starts at once, as `pull_at(parallel=N)` does with its barrier.

Pure: no Locust, no sockets; the locustfile sends what `claim`/`flush` return.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

Grant = tuple[Hashable, int | None]          # (who asked, ticket number or None: no more pulls)


@dataclass
class Budget:
    pulls: int                               # 0: no limit (the run time ends the storm)
    users: int                               # how many users the start line waits for
    start_together: bool = True
    issued: int = 0
    done: int = 0
    waiting: list = field(default_factory=list)
    started: bool = False

    def __post_init__(self) -> None:
        if self.pulls < 0 or self.users < 1:
            raise ValueError(f"budget: pulls {self.pulls} must be >= 0 and users {self.users} >= 1")
        self.started = self.started or not self.start_together

    def _grant(self, who: Hashable) -> Grant:
        if self.pulls and self.issued >= self.pulls:
            return who, None
        self.issued += 1
        return who, self.issued

    def claim(self, who: Hashable) -> list[Grant]:
        """`who` asks for a ticket; the grants to send now (none while the start line holds them)."""
        if self.started:
            return [self._grant(who)]
        self.waiting.append(who)
        return self.flush() if len(self.waiting) >= self.users else []

    def flush(self) -> list[Grant]:
        """Open the start line: a grant (or refusal) for everyone waiting."""
        self.started = True
        out = [self._grant(w) for w in self.waiting]
        self.waiting.clear()
        return out

    def finish(self) -> bool:
        """One granted pull has reported; True once every pull of a limited budget has."""
        self.done += 1
        return bool(self.pulls) and self.done >= self.pulls
