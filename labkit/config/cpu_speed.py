"""This machine's speed on a CPU model's code path as one measurement: its runs, and how busy the machine was.

    s = speed("aes-256-gcm", mask, [104.2, 106.9, 105.5], 1, others_cores(before, after, own_s), when)
    s.mbps, s.busy                       # the best run (MB/s), and whether other processes may have skewed it
    s.note()                             # "cpu speed: aes-256-gcm ... 106.9 MB/s ...; quiet"

A lab that emulates a CPU model measures this when it starts (labkit.lab.conditions.speed_meter) and divides
by the model's published rate (cpu_models.ratio): one number per run, recorded with it. The other processes'
CPU meanwhile is read from /proc/stat (the machine's busy time: user, nice, system, irq, softirq and steal,
in clock ticks) minus the measurement's own CPU (the openssl children's rusage): what else ran while it was
measured, in cores. Pure: text and numbers in, a record out.

The figure is bytes per CPU-second of the openssl process: `openssl speed` divides by its CPU user time unless
told `-elapsed` (openssl/openssl a701db76e27ffce4c88c2f621269ca5589c984ea, apps/speed.c: `static int usertime =
1`, option "elapsed": "Measure time in real time instead of CPU user time"), so sharing a core with others does
not by itself lower it; what a busy machine changes is the speed of each CPU-second (a shared cache, a sibling
hyperthread, the clock). Measured on this 2-vCPU AMD EPYC VM (opteron-6174, aes-256-gcm masked, 3 x 1 s, best
of): quiet, the others read 0.01-0.08 cores and the ratio 3.29 (median of 11; 2.96-3.40); one CPU hog (others
1.0 core) 3.16 (3.08-3.32, 5); two hogs (others 1.2-1.6, openssl time-shared) 2.98 (2.61-3.37, 4). At lab
start (a lab with cpu.model opteron-6174, TLS on): 5 quiet starts 3.43 (3.31-3.50), others 0.01 cores; 3 starts
beside one hog 3.12 (2.63-3.16), others 1.01-1.02, each flagged busy.
BUSY_CORES = 0.5: six times what a quiet machine reads here, below one hog; above it the ratio is flagged
"busy" (a busy machine runs openssl slower per CPU-second: a lower ratio, a faster emulated core, the model
optimistic).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

BUSY_CORES = 0.5               # the other processes' CPU during the measurement above which it is flagged busy
RUNS, RUN_SECONDS = 3, 1       # openssl speed runs of this many seconds each: the best of them is the figure
SPEED_BYTES = 16384            # a full TLS record: what nginx encrypts per SSL_write of a large response
NOTE_PREFIX = "cpu speed: "

# /proc/stat's cpu line (proc(5)): user nice system idle iowait irq softirq steal guest guest_nice; guest time
# is in user already. Busy: everything but idle and iowait.
_BUSY = (0, 1, 2, 5, 6, 7)
_IDLE = (3, 4)
_STEAL = 7


@dataclass(frozen=True)
class CpuTimes:
    """/proc/stat's first line and how many CPUs it sums: busy, idle and steal clock ticks."""
    busy: int
    idle: int
    steal: int
    cpus: int

    @property
    def total(self) -> int:
        return self.busy + self.idle


def cpu_times(stat: str) -> CpuTimes:
    """The machine's CPU times from /proc/stat's text (ValueError if it has no `cpu` line)."""
    m = re.search(r"^cpu\s+([\d ]+)$", stat, re.M)
    if not m:
        raise ValueError("/proc/stat: no 'cpu' line")
    f = [int(x) for x in m.group(1).split()] + [0] * 10
    return CpuTimes(sum(f[i] for i in _BUSY), sum(f[i] for i in _IDLE), f[_STEAL],
                    max(1, len(re.findall(r"^cpu\d+\s", stat, re.M))))


@dataclass(frozen=True)
class Others:
    """What ran besides the measurement over its window, in cores (1: one core busy all along)."""
    cores: float
    steal_cores: float          # of which the hypervisor gave to other guests (steal)
    own_cores: float            # the measurement itself, as its rusage says
    window_s: float


def others_cores(before: CpuTimes, after: CpuTimes, own_s: float, hz: int = 100) -> Others:
    """The other processes' CPU between two /proc/stat samples, the measurement's own `own_s` CPU-seconds
    taken off: (busy - own) / the window, the window being the ticks elapsed over every CPU / the CPUs."""
    window = (after.total - before.total) / hz / after.cpus
    if window <= 0:
        raise ValueError(f"/proc/stat samples {before} -> {after}: no time between them")
    busy = (after.busy - before.busy) / hz
    return Others(round(max(0.0, busy - own_s) / window, 2), round((after.steal - before.steal) / hz / window, 2),
                  round(own_s / window, 2), round(window, 2))


@dataclass(frozen=True)
class Speed:
    """One measurement: `openssl speed -evp <path> -bytes 16384` with OPENSSL_ia32cap=`mask`, `runs` of
    `seconds` each, the best (`mbps`) the figure; the other processes' CPU meanwhile and the busy flag."""
    path: str
    mask: str                   # "" unmasked
    mbps: float
    runs_mbps: tuple[float, ...]
    seconds: int
    others_cores: float
    steal_cores: float
    busy: bool
    busy_above_cores: float
    when: str                   # UTC, when measured
    source: str = "measured at lab start"

    def note(self) -> str:
        state = (f"BUSY (above {self.busy_above_cores:g}): the machine was not quiet, the figure may be low "
                 "and the ratio with it" if self.busy else f"quiet (at most {self.busy_above_cores:g})")
        runs = ", ".join(f"{r:.1f}" for r in self.runs_mbps)
        return (f"{NOTE_PREFIX}{self.path} with OPENSSL_ia32cap={self.mask or 'unmasked'}: {self.mbps:.1f} MB/s, "
                f"the best of {len(self.runs_mbps)} x {self.seconds} s ({runs}), "
                f"{self.source} {self.when}; other processes meanwhile {self.others_cores:.2f} cores "
                f"(steal {self.steal_cores:.2f}): {state}")


_NOTE = re.compile(
    re.escape(NOTE_PREFIX) + r"(?P<path>\S+) with OPENSSL_ia32cap=(?P<mask>\S+): (?P<mbps>[\d.]+) MB/s, the best of \d+ x "
    r"(?P<seconds>\d+) s \((?P<runs>[^)]*)\), (?P<source>.*?) (?P<when>\S+); other processes meanwhile "
    r"(?P<others>[\d.]+) cores \(steal (?P<steal>[\d.]+)\): (?:BUSY \(above (?P<over>[\d.]+)\)|quiet \(at most "
    r"(?P<under>[\d.]+)\))")


def parse_note(line: str) -> Speed | None:
    """The record a `Speed.note()` line says (None: not such a line): how a record that keeps only its notes
    (the contest's JSON) gives its measurement back. Rounded as the note rounds."""
    m = _NOTE.search(line)
    if not m:
        return None
    g = m.groupdict()
    return Speed(g["path"], "" if g["mask"] == "unmasked" else g["mask"], float(g["mbps"]),
                 tuple(float(r) for r in g["runs"].split(", ")), int(g["seconds"]), float(g["others"]),
                 float(g["steal"]), g["over"] is not None, float(g["over"] or g["under"]), g["when"], g["source"])


def speed(path: str, mask: str | None, runs_mbps: list[float], seconds: int, others: Others, when: str,
          busy_above: float = BUSY_CORES) -> Speed:
    """The record of one measurement (ValueError when no run gave a rate)."""
    if not runs_mbps or max(runs_mbps) <= 0:
        raise ValueError(f"openssl speed {path}: no rate measured ({runs_mbps})")
    return Speed(path, mask or "", round(max(runs_mbps), 1), tuple(round(r, 1) for r in runs_mbps), seconds,
                 others.cores, others.steal_cores, others.cores > busy_above, busy_above, when)


def parse_speed(out: str) -> float:
    """MB/s from `openssl speed -evp X -bytes N`'s last line (`AES-256-GCM  108822.53k`: 1000s of bytes/s)."""
    m = re.search(r"([\d.]+)k\s*$", out.strip().splitlines()[-1]) if out.strip() else None
    if not m:
        raise ValueError(f"openssl speed: no rate in {out.strip()[-200:]!r}")
    return float(m.group(1)) * 1000 / 1e6
