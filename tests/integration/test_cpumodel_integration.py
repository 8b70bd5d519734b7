"""The server's CPU as the seed's (root; -s shows the numbers): OpenSSL in the lab's own nginx told the
Opteron 6174's features is measurably slower; a process held to the model's core runs at 1/ratio of this
machine's speed (CFS), within 15%; each nginx worker has a core of its own."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from labkit.config import cpu_models
from labkit.config.presets import preset
from labkit.lab.host.cgroups import features
from labkit.lab.conditions.cpu_emulation import CoreModel, Emulation
from labkit.lab.conditions.speed_meter import Meter
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at

pytestmark = pytest.mark.integration
MiB = 2**20
HTTPS = preset("sregistry-2018-10-https").changed(nginx={"worker_processes": 2})


def say(what: str) -> None:
    print(f"\nmeasured: {what}", flush=True)


@pytest.fixture(scope="module")
def lab():
    with Lab("ly-cpumodel", settings=HTTPS, image_size=32 * MiB, quiet=True) as lab:
        yield lab


def _tls_pull(lab, runs=2) -> float:
    return max(pull_at(lab, "nginx (tls)", verify="length").mbps for _ in range(runs))


def test_the_masked_openssl_is_measurably_slower_in_the_labs_own_nginx(lab):
    host = _tls_pull(lab)
    lab.apply(HTTPS.changed(cpu={"model": "opteron-6174", "model_speed": "native"}))
    try:
        masked = _tls_pull(lab)
        environ = Path(f"/proc/{lab.instances('uwsgi')[0].pid}/environ").read_bytes().split(b"\0")
        info = lab.cpu.info()
    finally:
        lab.apply(HTTPS)
    say(f"nginx over TLS ({info['suite']}), one pull at nginx: host {host:.1f} MB/s, Opteron 6174 features "
        f"({info['mask']}) {masked:.1f} MB/s: {host / masked:.2f}x slower")
    assert f"OPENSSL_ia32cap={info['mask']}".encode() in environ       # uwsgi's (nginx rewrites its own)
    assert info["path"] == "aes-256-gcm" and info["emulate"] is False
    assert host > 1.5 * masked


def test_each_process_has_the_models_core_and_new_workers_get_theirs(lab):
    lab.apply(HTTPS.changed(cpu={"model": "opteron-6174"}))
    try:
        ratio = lab.cpu.ratio
        if ratio <= 1:
            pytest.skip("this machine is no faster than the model on its path: nothing to slow")
        workers = [p.pid for p in lab.instances("nginx")[0].processes()]
        for pid in workers:
            cg = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":cpu:" in line
                      or ":cpu," in line)
            assert f"core-nginx-{pid}" in cg, cg
        quota = int(lab.cpu.core_groups()[workers[-1]].path("cpu").joinpath("cpu.cfs_quota_us").read_text())
        assert quota == round(100_000 / ratio, -1) or abs(quota - 100_000 / ratio) <= 100
        lab.apply(HTTPS.changed(cpu={"model": "opteron-6174"}, nginx={"worker_processes": 3}))     # a reload
        lab.before_pull()
        new = [p.pid for p in lab.instances("nginx")[0].processes() if p.pid not in workers]
        assert new and all(pid in lab.cpu.core_groups() for pid in new)
        say(f"ratio {ratio:.2f}: every nginx process in its own group at {quota / 1000:.1f} ms per 100 ms; "
            f"{len(new)} new after a reload, placed")
    finally:
        lab.apply(HTTPS)
    assert not lab.cpu.core_groups()


SPIN = """
import sys, time
end = time.monotonic() + float(sys.argv[1]); n = 0
c0, w0 = time.process_time(), time.monotonic()
while time.monotonic() < end:
    for _ in range(10000): n += 1
print(n, time.process_time() - c0, time.monotonic() - w0, flush=True)
"""


def _spin(seconds: float, place=None) -> tuple[float, float]:
    """(iterations per wall second, iterations per CPU second) of a CPU-bound loop, by its own clocks."""
    p = subprocess.Popen([sys.executable, "-c", SPIN, str(seconds)], stdout=subprocess.PIPE, text=True)
    if place:
        place(p.pid)
    out, _ = p.communicate(timeout=seconds + 30)
    n, cpu, wall = map(float, out.split())
    return n / wall, n / cpu


def test_the_cfs_emulation_runs_a_cpu_bound_loop_at_the_target_ratio():
    feats = features()
    if not feats.cpu_quota:
        pytest.skip("no CFS quota here: " + "; ".join(feats.missing))
    m = cpu_models.model("opteron-6174")
    target = 2.6                                  # the Opteron's aes-256-gcm ratio here is about this
    emu = Emulation("opteron-6174", "", (), (), "aes-256-gcm", "", "test", m.mbps("aes-256-gcm"),
                    m.mbps("aes-256-gcm") * target, target, True)
    core = CoreModel("ly-cfs", feats, [], Meter())
    core.emu, core.threads = emu, {"nginx": 1}
    try:
        slowed, across = [], []
        for _ in range(3):
            _, free_per_cpu = _spin(2.0)
            held_per_wall, held_per_cpu = _spin(3.0, lambda pid: core.place("nginx", [pid]))
            slowed.append(held_per_cpu / held_per_wall)       # the loop's own speed over what the quota lets through
            across.append(free_per_cpu / held_per_wall)       # against a free run before it (machine noise too)
        slowed.sort()
        say(f"CPU-bound loop held to 1/{target} of a core: slowed {', '.join(f'{r:.2f}' for r in slowed)}x by "
            f"its own clocks (median {slowed[1]:.2f}, target {target}); against a free run: "
            f"{', '.join(f'{r:.2f}' for r in sorted(across))}x (2 shared vCPUs: the loop's speed per CPU-second "
            "itself moves ~20% with the neighbours' load)")
        assert abs(slowed[1] / target - 1) <= 0.15
        assert abs(sorted(across)[1] / target - 1) <= 0.35
    finally:
        core.prune()
        core.remove()
