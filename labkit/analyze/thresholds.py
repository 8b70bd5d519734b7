"""Every threshold the verdict uses, once, each with the measurement behind it (pure).

    TABLE                  # Threshold(name, where, value, unit, rule, behind), the values read from their modules
    markdown()             # the table as the README quotes it (tests/unit/test_thresholds.py keeps the two equal)

"behind" names the recorded measurement or the case that sets the line, and says so where none does:
such a threshold is provisional, a judgment that no recorded case has yet tested from both sides.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import causes, machine, noise, verdict, windows
from ..units import format_size


@dataclass(frozen=True)
class Threshold:
    name: str          # the constant's name in its module
    where: str         # labkit/analyze/<module>.py
    value: float
    unit: str
    rule: str          # what crossing it decides
    behind: str        # the measurement (record, fixture, case) behind the value, or why there is none

    def shown(self) -> str:
        v = self.value
        if self.unit == "bytes":
            return format_size(int(v))
        if self.unit == "x":
            return f"{v:g}x"
        if self.unit == "share":
            return f"{v:.0%}"
        return f"{v:g}{self.unit}"


T = Threshold
TABLE: tuple[Threshold, ...] = (
    T("FLOOR", "noise", noise.FLOOR, "share",
      "two medians closer than this (of the larger) are within noise; also where two programs' costs per byte, "
      "or the client's and the server's, count as the same",
      "data/recorded/verdict-stability-64MiB.txt: the same default survey ten times, the client 296-434 MB/s around "
      "a median of 349 (-15%/+25%); COMMON.md's +-15-20% run to run on this machine"),
    T("DISTURBED", "noise", noise.DISTURBED, "x",
      "with 3 runs or more, a run under 1/2 or over 2x the median is set aside from the spread (shown)",
      "provisional: no recorded run sets the 2x (a run six times slower while another program took the CPUs is "
      "what it is for)"),
    T("SATURATED", "machine", machine.SATURATED, "share",
      "the path's programs' CPU plus run-queue waits reaching this share of all cores fill the machine; runs on "
      "both sides of the line read as near full, the same words either side",
      "verdict-stability-64MiB.txt: the default survey's demand 161-186% against the line at 170% (2 cores), "
      "5 runs on each side: the line sits in that survey's spread, hence near full; "
      "tests/fixtures/surveys/full-machine-2018-10 (296%) is full, unshaped-dnat-2018-10 (153-157%) is not"),
    T("WAITED", "machine", machine.WAITED, "% of a core",
      "the machine busy past SATURATED on its own account also counts as full when the path's programs waited "
      "this much for a CPU",
      "provisional, no case: all 8 fixtures in tests/fixtures/surveys give the same verdict with WAITED at 0; "
      "it came with https-poster-machine-busy, whose demand (151-181%) now reads near full on its own"),
    T("CLOSE", "verdict", verdict.CLOSE, "x",
      "a second constraint whose ceiling is within this factor of the binding rate is named as next",
      "the matrix's two-link case: the nginx link at 50 MB/s binds, the WAN's 75 MB/s (1.5x) must come next "
      "(data/recorded/verdict-matrix-64MiB.txt); no recorded case sits between 2x and 3x"),
    T("SHARE", "causes", causes.SHARE, "%",
      "a connection limited by the receive window or the send buffer this share of its time is limited by it",
      "provisional: the matrix's small-receive-buffer case (tcp_rmem 8 KiB) is named window "
      "(verdict-matrix-64MiB.txt); no recorded case tests the line from both sides"),
    T("NET", "causes", causes.NET, "%",
      "a sender busy this share of its time without window or buffer limits is held by the link (cwnd, queue)",
      "provisional as a line: the matrix's three shaped links at 800mbit and the two-link case are each named link "
      "(verdict-matrix-64MiB.txt)"),
    T("RATE_MATCH", "causes", causes.RATE_MATCH, "share",
      "a link binds only when its sender delivered within this share of the path's rate",
      "provisional as a line: the shaped-link cases (100 MB/s on the link) are named link, unshaped hops carry "
      "300-2000 MB/s; no case between 70% and 130% of a link's rate"),
    T("PEGGED", "causes", causes.PEGGED, "share",
      "a program at this share of its CPU allowance (a quota, or one core) has none to spare",
      "fixture nginx-quota: nginx at 15.5-16.8% of a core under a 0.15 CPU quota (over 100% of it); the matrix's "
      "CPU-capped cases are named cpu; no case between 60% and 90%"),
    T("BUSY", "causes", causes.BUSY, "share",
      "the busiest program at half its allowance, where the pipeline points, is CPU-bound (below: the app waits)",
      "provisional: unshaped nginx runs 75-94% of a core at its own vantage point (fixtures unshaped-dnat-2018-10, "
      "full-machine-2018-10); no case tests the line from both sides"),
    T("SMALL_RCVBUF", "causes", causes.SMALL_RCVBUF, "bytes",
      "a receive buffer at or under this that never drains is the window that binds",
      "the small-receive-buffer case (8 KiB) and fixture small-windows-everywhere; the client's autotuned buffer "
      "is 0.5-0.8 MB in https-poster-client-close; provisional as a line"),
    T("FULL", "causes", causes.FULL, "%",
      "a receive buffer this full of unread data (with UNREAD bytes waiting) means the receiver does not read",
      "provisional: receivers that do not read (nginx's from uwsgi, nginx buffering to disk) are 97-98% full in "
      "every fixture, the client's 2-45%; no case near the line"),
    T("STUCK", "causes", causes.STUCK, "%",
      "a small buffer this full that stays full is a receiver that does not read, not a small window",
      "provisional: the small-buffer case's fill stays under it; no recorded case near 90%"),
    T("CLIENT_WRITTEN", "causes", causes.CLIENT_WRITTEN, "share",
      "this share of a pull's bytes on the client's device while it ran: the client waits on its disk",
      "fixture slow-client-dirty-pages: dirty pages absorb part of the pull, the rest reaches the 20 MB/s device"),
    T("UNREAD", "causes", causes.UNREAD, "bytes",
      "bytes waiting unread in a receiver's socket that count as a receiver not reading",
      "one read of the client (READ_SIZE, 1 MiB): less is a read in flight"),
    T("windows.SHARE", "windows", windows.SHARE, "share",
      "a share of a transfer's time that counts as much of the time (window analysis)",
      "as causes.SHARE; provisional"),
    T("LOSS", "windows", windows.LOSS, "share",
      "a retransmitted share of segments that counts as lossy",
      "provisional: no lossy path is recorded"),
    T("MIN_ROUNDS", "windows", windows.MIN_ROUNDS, "",
      "round trips a transfer must last before its windows say anything about buffer sizes",
      "provisional: slow start's doubling leaves the window's effect unseen for the first ~10 round trips"),
    T("WINDOW_ROOM", "windows", windows.WINDOW_ROOM, "x",
      "a window allowing this many times the rate got, at the measured round trip, did not bind",
      "provisional, as CLOSE: a factor clear of the noise FLOOR"),
)


def markdown() -> str:
    """The table as the README quotes it."""
    lines = ["| threshold | value | decides | the measurement behind it |", "|---|---|---|---|"]
    for t in TABLE:
        lines.append(f"| `{t.where}.{t.name.split('.')[-1]}` | {t.shown()} | {t.rule} | {t.behind} |")
    return "\n".join(lines)
