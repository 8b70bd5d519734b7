"""This machine measured on a CPU model's code path when a lab starts, with how busy the machine was meanwhile.

    meter = Meter()                      # a lab's own: each (code path, mask) measured once, when first asked
    meter.speed("aes-256-gcm", mask)     # openssl speed 3 x 1 s, the best; /proc/stat and rusage around them
    with session():                      # every lab made inside shares one meter: one number for one run of an
        ...                              # experiment (labkit.experiments.runner opens it; the contest's k too)

A lab that emulates a CPU model asks when it is made (the scale model's plan needs the ratio to refuse what this
machine cannot give) or when its CPU condition starts; another code path asked later (a live change of TLS
suite) is measured then. The record (labkit.config.cpu_speed.Speed) goes into the lab's notes and its state
(`Lab.attach` reads it back instead of measuring), and with the emulation into every survey's record.
A busy measurement is said at WARNING.

data/run/cpu-speed.json, the cache of earlier versions, is `labkit cpu-model`'s table only (`cached`): a lab
never reads it, so a run has one ratio, its own.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import resource
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

from ...config.cpu_speed import (RUN_SECONDS, RUNS, SPEED_BYTES, Speed, cpu_times, others_cores, parse_speed,
                                 speed)
from ..host.tools import tool

log = logging.getLogger("labkit.lab")
_SHARED: contextvars.ContextVar["Meter | None"] = contextvars.ContextVar("servelab_meter", default=None)
AT_START, IN_SESSION, RECORDED = ("measured at lab start", "measured at the run's start for each of its labs",
                                  "recorded at the lab's start")


def _openssl(path: str, mask: str | None, seconds: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OPENSSL_ia32cap"}
    if mask:
        env["OPENSSL_ia32cap"] = mask
    res = subprocess.run([tool("openssl"), "speed", "-evp", path, "-seconds", str(seconds), "-bytes",
                          str(SPEED_BYTES)], capture_output=True, text=True, env=env, timeout=30 + seconds)
    return parse_speed(res.stdout)


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(path: str, mask: str | None, runs: int = RUNS, seconds: int = RUN_SECONDS, source: str = AT_START,
            *, stat: Path = Path("/proc/stat"), openssl=_openssl, children_cpu_s=_children_cpu_s) -> Speed:
    """`runs` of `openssl speed` on `path` with OPENSSL_ia32cap=`mask`, the best the figure, and the other
    processes' CPU over them (/proc/stat's busy ticks minus the openssl children's own CPU, from rusage).
    `stat`, `openssl` and `children_cpu_s` stand in for the machine in a test."""
    own = children_cpu_s()
    before = cpu_times(stat.read_text())
    rates = [openssl(path, mask, seconds) for _ in range(runs)]
    after, own = cpu_times(stat.read_text()), children_cpu_s() - own
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return replace(speed(path, mask, rates, seconds, others_cores(before, after, own, os.sysconf("SC_CLK_TCK")),
                         when), source=source)


class Meter:
    """One lab's (or one run's) measurements of this machine, one per code path and mask, each made once."""

    def __init__(self, given: Iterable[Speed] = (), source: str = AT_START):
        self.speeds = {(s.path, s.mask): s for s in given}
        self.source = source

    def speed(self, path: str, mask: str | None) -> Speed:
        """The figure for `path` under `mask`: measured now if this meter has none yet."""
        key = (path, mask or "")
        if key not in self.speeds:
            self.speeds[key] = s = measure(path, mask, source=self.source)
            log.log(logging.WARNING if s.busy else logging.INFO, s.note())
        return self.speeds[key]

    def records(self) -> list[dict]:
        return [asdict(s) for s in self.speeds.values()]

    @classmethod
    def recorded(cls, records: Iterable[dict]) -> "Meter":
        """A meter holding what a lab recorded at its start (its state's `cpu_speed`): nothing measured again
        (a lab started before the figure was recorded is measured as it is attached, and says so)."""
        return cls([Speed(**{**r, "runs_mbps": tuple(r["runs_mbps"]), "source": RECORDED}) for r in records],
                   source="measured when attached (the lab recorded none at its start)")


def current() -> Meter:
    """The meter a lab made now uses: the open session's, else a new one of its own."""
    return _SHARED.get() or Meter()


@contextlib.contextmanager
def session(meter: Meter | None = None) -> Iterator[Meter]:
    """Every lab made inside (and every `current()`) shares `meter` (a new one: measured at its first ask)."""
    token = _SHARED.set(meter or _SHARED.get() or Meter(source=IN_SESSION))
    try:
        yield _SHARED.get()
    finally:
        _SHARED.reset(token)


def cached(path: str, mask: str | None, cache: Path, remeasure: bool = False, key: str = "") -> float:
    """`labkit cpu-model`'s table: the MB/s of `measure`, remembered in `cache` under `key` (CPU, OpenSSL, mask,
    path). Never a lab's figure: a lab measures at its start."""
    data = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(cache.read_text())
    if remeasure or key not in data:
        data[key] = measure(path, mask).mbps
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(data, indent=1))
    return data[key]
