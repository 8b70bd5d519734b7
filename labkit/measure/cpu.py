"""CPU per service process while something runs, sampled with psutil; how long each waited for a CPU;
the CPU seconds each used (the scheduler's account) and the machine's softirq time."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def machine_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all CPUs together (/proc/stat's first line)."""
    t = psutil.cpu_times()
    total = sum(t)
    return total - t.idle - getattr(t, "iowait", 0.0), total


def machine_busy(before: tuple[float, float], after: tuple[float, float], cpus: int) -> float:
    """The machine's busy time between two machine_times() reads, in % of one core (100 x cpus = all busy)."""
    total = after[1] - before[1]
    return round(100 * cpus * (after[0] - before[0]) / total, 1) if total > 0 else 0.0


def machine_cpus() -> int:
    """The machine's CPUs (what /proc/stat counts)."""
    return os.cpu_count() or 1


def schedstat(pid: int) -> dict[str, tuple[float, float]]:
    """Per thread of the process: seconds it ran on a CPU and waited on a run queue (/proc/<pid>/task/*/schedstat)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            on, queued, _ = task.read_text().split()
        except (OSError, ValueError):
            continue
        out[task.parent.name] = (int(on) / 1e9, int(queued) / 1e9)
    return out


def ran_s(before: dict, after: dict) -> float:
    """CPU seconds of all the process's threads between two schedstat reads (exact, unsampled)."""
    return sum(run1 - before.get(tid, (0.0, 0.0))[0] for tid, (run1, _) in after.items())


def ran(before: dict, after: dict, wall: float) -> float:
    """CPU time of all the process's threads between two schedstat reads, in % of `wall` (exact, unsampled)."""
    return 100 * ran_s(before, after) / wall


def parse_softirq(proc_stat: str, ticks_per_s: int) -> float:
    """Seconds every CPU together spent in softirq, from /proc/stat's `cpu` line (seventh value)."""
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu" and len(parts) > 7:
            return int(parts[7]) / ticks_per_s
    raise ValueError("/proc/stat: no aggregate `cpu` line with a softirq column")


def softirq_seconds() -> float | None:
    """The machine's softirq time so far (all CPUs, tick-sampled), or None where /proc/stat lacks it."""
    try:
        return parse_softirq(Path("/proc/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return None


def waited(before: dict, after: dict, wall: float) -> float:
    """The run-queue wait of the thread that wanted a CPU most (ran + waited), in % of `wall`."""
    best, wait = 0.0, 0.0
    for tid, (run1, wait1) in after.items():
        run0, wait0 = before.get(tid, (0.0, 0.0))
        if (run1 - run0) + (wait1 - wait0) > best:
            best, wait = (run1 - run0) + (wait1 - wait0), wait1 - wait0
    return 100 * wait / wall


def waited_all(before: dict, after: dict, wall: float) -> float:
    """The run-queue wait of all the process's threads together, in % of `wall` (what it wanted beyond what it ran)."""
    return 100 * sum(wait1 - before.get(tid, (0.0, 0.0))[1] for tid, (_, wait1) in after.items()) / wall


class CpuSampler:
    """`with CpuSampler(lambda: {"nginx": [procs...]}) as s: ...` then `s.summary()`.

    Per service: `cpu_max_proc` is the busiest single process (100 = one core pegged),
    `cpu_total` all its processes together, each the mean over the samples (or over those
    taken within `between`, a (start, end) on the wall clock, e.g. the span of a storm's pulls);
    `wait_max_proc` is how long the thread that wanted a CPU most (ran + waited) spent runnable but
    waiting for one (the scheduler's run-queue time, in % of the sampler's wall time): a process
    that wants a core on a busy machine runs less than 100 and waits; `wait_total` the same for all its
    threads and processes together. `cpu_sched` is all its threads'
    CPU from the scheduler's own account over the sampler's span (exact where sampling is coarse,
    e.g. under a CFS quota that lets a group run a few ms per 100 ms). `machine()`: the whole
    machine's busy time over the same span, with its CPU count, whoever ran (other work included).
    """

    def __init__(self, processes: Callable[[], dict[str, list[psutil.Process]]], interval: float = 0.2):
        self._processes = processes
        self.interval = interval
        self._stop = threading.Event()
        self._samples: dict[str, list[tuple[float, float, float]]] = {}   # (wall time, max, total)
        self._waits: dict[str, float] = {}
        self._waits_all: dict[str, float] = {}
        self._ran: dict[str, float] = {}
        self._machine: dict[str, float] = {}
        self._secs: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _begin(self) -> None:
        """The processes and their first readings, taken before what is measured starts: finding the lab's
        processes reads /proc for a tenth of a second, which in the sampling thread fell on the pulls
        themselves (their client's reads shared the GIL and a core with it)."""
        self._procs = self._processes()
        self._t0, self._m0 = time.monotonic(), machine_times()
        self._start = {p.pid: schedstat(p.pid) for ps in self._procs.values() for p in ps}
        for ps in self._procs.values():
            for p in ps:
                try:
                    p.cpu_percent(None)
                except psutil.NoSuchProcess:
                    pass

    def _run(self) -> None:
        procs, t0, m0, start = self._procs, self._t0, self._m0, self._start
        try:
            self._sample_loop(procs)
        finally:
            wall = max(time.monotonic() - t0, 1e-3)
            cpus = machine_cpus()
            self._machine = {"cpus": cpus, "busy": machine_busy(m0, machine_times(), cpus)}
            for name, ps in procs.items():
                ends = {p.pid: schedstat(p.pid) for p in ps if p.pid in start}
                waits = [waited(start[pid], end, wall) for pid, end in ends.items()]
                self._waits[name] = round(max(waits, default=0.0), 1)
                self._waits_all[name] = round(sum(waited_all(start[pid], end, wall) for pid, end in ends.items()), 1)
                self._secs[name] = sum(ran_s(start[pid], end) for pid, end in ends.items())
                self._ran[name] = round(100 * self._secs[name] / wall, 1)

    def _sample_loop(self, procs) -> None:
        while True:
            stopped = self._stop.wait(self.interval)   # the last sample covers the tail
            now = time.time()
            for name, ps in procs.items():
                vals = []
                for p in ps:
                    try:
                        vals.append(p.cpu_percent(None))
                    except psutil.NoSuchProcess:
                        pass
                if vals:
                    self._samples.setdefault(name, []).append((now, max(vals), sum(vals)))
            if stopped:
                return

    def __enter__(self) -> "CpuSampler":
        self._begin()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def machine(self) -> dict[str, float]:
        """{"cpus": N, "busy": % of one core the whole machine was busy} over the sampler's span."""
        return dict(self._machine)

    def seconds(self) -> dict[str, float]:
        """CPU seconds per service over the sampler's span, all its processes' threads (the scheduler's account)."""
        return {name: max(0.0, s) for name, s in self._secs.items()}

    def busiest(self, between: tuple[float, float] | None = None) -> tuple[str, float]:
        """The service whose busiest process used the most CPU, and that share ('' and 0 if none)."""
        cpu = self.summary(between)
        if not cpu:
            return "", 0.0
        name = max(cpu, key=lambda k: cpu[k]["cpu_max_proc"])
        return name, cpu[name]["cpu_max_proc"]

    def summary(self, between: tuple[float, float] | None = None) -> dict[str, dict[str, float]]:
        out = {}
        for name, samples in self._samples.items():
            if between:   # a sample covers the interval before it: keep those that end inside the window
                samples = [s for s in samples if between[0] < s[0] <= between[1] + self.interval]
            if samples:
                out[name] = {"cpu_max_proc": round(sum(s[1] for s in samples) / len(samples), 1),
                             "cpu_total": round(sum(s[2] for s in samples) / len(samples), 1),
                             "wait_max_proc": max(0.0, self._waits.get(name, 0.0)),
                             "wait_total": max(0.0, self._waits_all.get(name, 0.0)),
                             "cpu_sched": max(0.0, self._ran.get(name, 0.0))}
        return out
