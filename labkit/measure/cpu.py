"""CPU per service process while something runs, sampled with psutil."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil


class CpuSampler:
    """`with CpuSampler(lambda: {"nginx": [procs...]}) as s: ...` then `s.summary()`.

    Per service: `cpu_max_proc` is the busiest single process (100 = one core pegged),
    `cpu_total` all its processes together, each the mean over the samples (or over those
    taken within `between`, a (start, end) on the wall clock, e.g. the span of a storm's pulls).
    """

    def __init__(self, processes: Callable[[], dict[str, list[psutil.Process]]], interval: float = 0.2):
        self._processes = processes
        self.interval = interval
        self._stop = threading.Event()
        self._samples: dict[str, list[tuple[float, float, float]]] = {}   # (wall time, max, total)
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        procs = self._processes()
        for ps in procs.values():
            for p in ps:
                try:
                    p.cpu_percent(None)
                except psutil.NoSuchProcess:
                    pass
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
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

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
                             "cpu_total": round(sum(s[2] for s in samples) / len(samples), 1)}
        return out
