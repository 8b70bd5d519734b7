"""What a condition of the path is: one object the Lab loops over, as Mininet's nodes and links own theirs.

A condition (the VM's storage, the server's CPU, the lab's TLS, the client's destination; a scaled
machine model would be one more) is built from the path's declaration and the lab's `Ground`, and
lives one lifecycle:

    problems(s)      what this machine cannot do of settings `s` (refused before anything starts)
    up(s, image)     make it
    adopt(s, image)  find it as another process of the same lab made it (to look and heal; never to end)
    change(step, s, crew)  apply new settings while the lab runs: one of its live-change `steps`
                     (labkit.lab.changes plans them); `crew` restarts the programs it holds
    down()           end it; one line per thing ended

and the hooks the Lab passes each program through: `joins` (the groups it joins before it execs),
`env` (what it starts with), `place` (its processes once started), and, around measuring,
`before_pull`, `processes` (its own helper processes: FUSE) and `counters` (its disk's, by `disk_role`).
Every hook has a do-nothing default: a condition says only what it does.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

from ...config.settings import LabSettings
from ...app.catalog import Image
from ..host import cgroups
from ..host.cgroups import Features, IoCounters
from .speed_meter import Meter


@dataclass
class Ground:
    """What every condition of one lab stands on: its name, run directory, image cache, whether it runs
    in namespaces (root), what this machine's cgroups offer (read once), the lab's notes and its meter of this
    machine's speed (a CPU model's: measured once per run, labkit.lab.conditions.speed_meter)."""
    lab: str
    run_dir: Path
    cache_dir: Path
    namespaced: bool
    notes: list[str]
    meter: Meter = field(default_factory=Meter)
    feats: Features = field(init=False)

    def __post_init__(self) -> None:
        self.feats = cgroups.features() if self.namespaced else \
            Features(None, missing=["loopback mode (not root): no cgroups"])

    def note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)

    def cgroups_used(self) -> None:
        """A condition made groups: what this machine's cgroups lack goes into the notes."""
        for m in self.feats.missing:
            self.note(m)


class Crew(Protocol):
    """The running programs, as a condition's live change needs them (labkit.lab.running.Running)."""

    def users(self, holds: Callable[[object], bool]) -> list:
        """The running services `holds` is true of."""
        ...

    def restarting(self, users: list, change: Callable[[], list[str]]) -> list[str]:
        """Stop `users`, do `change`, start them again (in their groups); what `change` did."""
        ...

    def replace(self, svc) -> None:
        """`svc`, running, in its groups again (its next start joins them first)."""
        ...


class Condition:
    steps: tuple[str, ...] = ()      # the live-change steps it carries out (labkit.lab.changes.STEP_ORDER)
    disk_role: str | None = None     # the disk it counts, as measure's columns name it ("vm", "compute")

    def problems(self, s: LabSettings) -> list[str]:
        return []

    def up(self, s: LabSettings, image: Image) -> list[str]:
        return []

    def adopt(self, s: LabSettings, image: Image) -> None:
        return None

    def change(self, step: str, s: LabSettings, crew: Crew) -> list[str]:
        return []

    def down(self) -> list[str]:
        return []

    def joins(self, svc) -> list[Path]:
        return []

    def env(self, svc) -> dict[str, str]:
        return {}

    def place(self, svc, pids: list[int]) -> None:
        return None

    def before_change(self, step: str, s: LabSettings) -> None:
        """Before a program's step of a live change (nginx reloading, say)."""
        return None

    def after_change(self, step: str, s: LabSettings, crew: Crew) -> list[str]:
        """After a program's step of a live change."""
        return []

    def before_pull(self, crew: Crew) -> None:
        return None

    def processes(self) -> dict[str, list[psutil.Process]]:
        return {}

    def counters(self) -> IoCounters | None:
        return None


@contextlib.contextmanager
def undone_on_failure(down: Callable[[], list[str]]) -> Iterator[None]:
    """Building a condition: on any failure its `down` first (what was made of it ended), then the error."""
    try:
        yield
    except BaseException:
        down()
        raise


def end_all(conditions: tuple[Condition, ...]) -> list[str]:
    """Every condition ended, the last made first; one that fails is said and the rest still ended (the
    lab's state has what it made: the next start ends it)."""
    done = []
    for c in reversed(conditions):
        try:
            done += c.down()
        except Exception as exc:  # noqa: BLE001 - the rest must still be ended
            done.append(f"FAILED: {exc}")
    return done
