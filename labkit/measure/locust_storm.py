"""Pull storms on Locust: a master and one worker per compute node, run in the lab or on a real cluster.

    run = measure_storm(lab, StormSpec(users=40, pulls=200))   # in the lab: workers in the compute namespaces
    run.records          # every pull as the locustfile reports it (labkit.experiments.storm.run_storm tabulates them)

In the lab the master runs in the first compute node's namespace, bound to its address, and
each worker in its own compute node's namespace: the Locust traffic and the pulls never
leave the lab. On a cluster, `run_master` and `run_worker` start the same locustfile
(labkit/measure/locustfile.py) on the hosts they are run on. Every process is started as the
leader of its own process group and ended by its own id, also when the storm fails.
"""
from __future__ import annotations

import json
import logging
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING


from ..errors import LabError, SettingsError
from ..lab.host.process import Process
from ..records import StormRun, Verify
from ..clients.registry_api import base_url
from ..clients.kinds import OWN_BY_API
from .cpu import CpuSampler
from .pull_at import disk_mb

if TYPE_CHECKING:
    from ..lab.lab import Lab

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
MASTER_PORT = 5557          # Locust's own default
STARTUP_S = 60.0            # workers to start and connect, on a busy 2-core machine
log = logging.getLogger("labkit.storm")


MAX_USERS, MAX_PULLS, MAX_SPAWN_RATE = 1024, 100_000, 10_000


@dataclass(frozen=True)
class StormSpec:
    """What a storm does: users, spawn rate (default: all at once), and a pull count or a run time, or both."""
    users: int = 40
    pulls: int = 0                   # 0: until run_s ends
    run_s: float | None = None
    spawn_rate: float | None = None
    verify: Verify = "sha256"
    sha256: str = ""                 # the image's; "" = the manifest's version (oci: the manifest's digest, hex)
    timeout: float = 30.0            # idle timeout of one read
    deadline: float = 300.0          # longest one pull may take
    start_together: bool = True      # the first round starts at once, like pull_at's barrier
    follow_hosts: bool = False       # an image URL or a redirect naming another host is followed there
    insecure: bool = False           # https: the certificate is NOT checked (said in the storm's meta)
    api: str = ""                    # "oci": each pull speaks the OCI distribution API (labkit.clients.oci);
                                     # "": the lab's registry.kind says (REGISTRY_API), sregistry for --master
    platform: str = "linux/amd64"    # oci: the image chosen from an index
    layers_at_once: int = 6          # oci: layers fetched at once per pull (containers/image's default)
    keep_alive: bool = True          # oci: a pull's requests share keep-alive connections (labkit.clients.pool)

    def check(self) -> "StormSpec":
        problems = []
        if not 1 <= self.users <= MAX_USERS:
            problems.append(f"users {self.users} is outside 1..{MAX_USERS}")
        if not 0 <= self.pulls <= MAX_PULLS:
            problems.append(f"pulls {self.pulls} is outside 0..{MAX_PULLS}")
        if self.run_s is not None and not 1 <= self.run_s <= 86_400:
            problems.append(f"run time {self.run_s} s is outside 1..86400")
        if not self.pulls and self.run_s is None:
            problems.append("give a pull count or a run time (a storm is bounded)")
        if self.spawn_rate is not None and not 0 < self.spawn_rate <= MAX_SPAWN_RATE:
            problems.append(f"spawn rate {self.spawn_rate} is outside (0, {MAX_SPAWN_RATE}]")
        if self.verify not in ("sha256", "length"):
            problems.append(f"verify {self.verify!r}: use sha256 or length")
        if not (0 < self.timeout <= 3600 and 0 < self.deadline <= 86_400):
            problems.append(f"pull timeout {self.timeout} / deadline {self.deadline} out of range")
        if self.api not in ("", "sregistry", "oci"):
            problems.append(f"api {self.api!r}: use sregistry or oci")
        if not 1 <= self.layers_at_once <= 32:
            problems.append(f"layers at once {self.layers_at_once} is outside 1..32")
        if problems:
            raise SettingsError("storm: " + "; ".join(problems))
        return self

    def bound_s(self) -> float:
        """The longest the whole storm may take: its run time, or its rounds of pulls at their deadline."""
        rounds = math.ceil(self.pulls / self.users) if self.pulls else 0
        limit = min(self.run_s or math.inf, rounds * self.deadline or math.inf)
        return limit + self.deadline + STARTUP_S

    def locust_args(self, host_url: str, image: str, cacert: str | None = None) -> list[str]:
        """The master's options for this storm (workers get them from the master); `cacert`: an https
        registry's CA file (the same path on every worker)."""
        rate = self.spawn_rate or self.users
        run_s = self.run_s if self.run_s is not None else self.bound_s() - STARTUP_S
        args = ["--headless", "--only-summary", "-u", str(self.users), "-r", f"{rate:g}", "-t", f"{math.ceil(run_s)}s",
                "--stop-timeout", f"{self.deadline:g}", "-H", host_url, "--image", image, "--pulls", str(self.pulls),
                "--verify", self.verify, "--pull-timeout", f"{self.timeout:g}", "--pull-deadline", f"{self.deadline:g}"]
        if self.sha256:
            args += ["--sha256", self.sha256]
        if cacert:
            args += ["--cacert", cacert]
        if not self.start_together:
            args.append("--no-start-line")
        if self.api == "oci":
            args += ["--api", "oci", "--platform", self.platform, "--layers-at-once", str(self.layers_at_once),
                     *["--no-keep-alive"] * (not self.keep_alive)]
        return args + ["--follow-hosts"] * self.follow_hosts + ["--insecure"] * self.insecure


# the API each registry.kind serves: a storm on the lab speaks it (labkit.lab.programs.distribution serves /v2/)
REGISTRY_API = {"sregistry": "sregistry", "distribution": "oci"}


def refusals(settings, api: str = "") -> list[str]:
    """Settings a storm cannot honour: its users pull with labkit's own client and discard the bytes, in the
    API the lab's registry serves (`api`: the one asked for, "" to take the lab's)."""
    c, kind = settings.client, settings.registry.kind
    own = OWN_BY_API[REGISTRY_API[kind]].name          # labkit's own client for the API the lab serves
    return ([f"client.kind {c.kind!r}: a storm's users pull with labkit's client (set client.kind={own})"]
            if c.kind != own else []) + (
           [f"client.dest {c.dest!r}: a storm's users discard what they pull (set client.dest=memory)"]
            if c.dest != "memory" else []) + (
           [f"--api {api}: the lab's registry.kind {kind!r} serves the {REGISTRY_API[kind]} API (leave --api out, "
            f"or bring up a lab with registry.kind={next(k for k, a in REGISTRY_API.items() if a == api)})"]
            if api and api != REGISTRY_API[kind] else [])


def lab_target(lab: Lab, spec: StormSpec) -> tuple[StormSpec, str, int]:
    """The storm as the lab's registry serves it: (the spec with its API and the digest every pull must end
    with, the image to pull, its bytes). sregistry: the catalog's image, checked by its sha256; an OCI registry:
    the image the lab pushed, its manifest checked against the pushed digest and each layer against its own."""
    if REGISTRY_API[lab.settings.registry.kind] == "sregistry":
        return replace(spec, api="sregistry"), lab.image.uri, lab.image.size
    img = next((svc.image for svc in lab.services.values() if getattr(svc, "image", None) is not None), None)
    if img is None:
        raise LabError(f"storm: lab '{lab.name}' has an OCI registry but no image pushed into it")
    return (replace(spec, api="oci", sha256=spec.sha256 or img.manifest_digest.split(":", 1)[1]), img.ref, img.size)


class LocustProcess(Process):
    """`python -m locust -f locustfile.py ...` in a namespace (or here), with labkit importable and its node named."""

    def __init__(self, name: str, node: str, ns: str | None, log_file: Path, args: list[str],
                 ready_at: tuple[str, int] | None = None):
        super().__init__(name, node, ns, log_file, ready_at)
        self.args = args

    def argv(self) -> list[str]:
        labkit_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [labkit_root, os.environ.get("PYTHONPATH")]))
        return ["env", f"PYTHONPATH={path}", f"LABKIT_NODE={self.node}",
                sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *self.args]


def _read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait(master: LocustProcess, bound_s: float) -> None:
    """Until the master ends by itself (all pulls reported, or its run time over), within `bound_s`."""
    deadline = time.monotonic() + bound_s
    while master.alive():
        if time.monotonic() > deadline:
            raise LabError(f"storm: the Locust master still runs after {bound_s:.0f} s; ended. "
                           f"Its log:\n{master.log_tail()}")
        time.sleep(0.2)


def _run(master: LocustProcess, workers: list[LocustProcess], spec: StormSpec, records: Path,
         cpu_of=None) -> tuple[dict, CpuSampler]:
    """Start the master, then the workers; wait for the storm; end every process by its own id."""
    started: list[LocustProcess] = []
    sampler = CpuSampler(cpu_of or dict, interval=0.2)
    try:
        master.start()
        started.append(master)
        master.wait_ready(STARTUP_S)
        for w in workers:
            w.start()
            started.append(w)
        t0 = time.monotonic()
        with sampler:
            _wait(master, spec.bound_s())
        wall = time.monotonic() - t0
        code = master.proc.poll()
        lost = [w.node for w in workers if w.proc.poll() not in (None, 0)]   # ended on their own, not by quit
    finally:
        for proc in reversed(started):
            proc.stop()
    if code not in (0, 1):           # 1: Locust's own "some requests failed"; the records say which
        raise LabError(f"storm: the Locust master exited with {code}:\n{master.log_tail()}")
    if lost:
        log.warning("storm: the workers on %s ended before the storm did", ", ".join(lost))
    return ({"wall_s": round(wall, 1), "master_exit": code, "records": str(records),
             "workers": [w.node for w in workers], "workers_lost": lost}, sampler)


def _storm(records: Path, spec: StormSpec, point: str, meta: dict, sampler: CpuSampler) -> StormRun:
    """The storm from its records; each service's CPU taken while the pulls ran (not while Locust started)."""
    pulls = _read_records(records)
    missing = max(0, spec.pulls - len(pulls)) if spec.pulls and not spec.run_s else 0
    if missing:
        log.warning("storm: %d of %d pulls were never reported (see the Locust logs)", missing, spec.pulls)
    window = (float(min(r["start"] for r in pulls)), float(max(r["end"] for r in pulls))) if pulls else None
    meta["busiest"], meta["busiest_cpu"] = sampler.busiest(window)
    return StormRun(pulls, spec, point, missing, meta, sampler.summary(window))


def measure_storm(lab: Lab, spec: StormSpec) -> StormRun:
    """A storm on the lab: the master in the first compute node's namespace, a worker in every compute node's."""
    spec.check()
    if problems := refusals(lab.settings, spec.api):
        raise SettingsError("storm: " + "; ".join(problems))
    lab.require_running()
    spec, image, image_bytes = lab_target(lab, spec)
    p = lab.plan
    ends = p.compute_endpoints()
    if not ends:
        raise LabError("storm: the lab's path declares no compute node")
    master_node, master_ns, host, port = ends[0]
    trust = lab.trust_at(p.path.client_vantage)     # https, the lab's CA
    bind = p.ip(master_node)
    mport = MASTER_PORT if p.namespaced else _free_port()
    run = lab.run_dir / "storm" / time.strftime("%Y%m%d-%H%M%S")
    run.mkdir(parents=True, exist_ok=True)
    records = run / "pulls.jsonl"
    master = LocustProcess("locust-master", master_node, master_ns, run / "master.log",
                           ["--master", "--master-bind-host", bind, "--master-bind-port", str(mport),
                            "--expect-workers", str(len(ends)), "--expect-workers-max-wait", f"{STARTUP_S:g}",
                            "--records", str(records), *spec.locust_args(
                                base_url(host, port, trust), image, trust.cafile if trust else None)],
                           ready_at=(bind, mport))
    workers = [LocustProcess(f"locust-worker@{node}", node, ns, run / f"worker-{node}.log",
                             ["--worker", "--master-host", bind, "--master-port", str(mport)])
               for node, ns, _, _ in ends]
    lab.before_pull()                  # storage.cache=cold: the image leaves the page cache (once, not per pull)
    disk0 = lab.disk_counters()
    meta, sampler = _run(master, workers, spec, records, lab.processes)
    disk1 = lab.disk_counters()
    meta.update(disk_MB=disk_mb({k: disk1[k] - disk0[k] for k in disk1 if k in disk0}, p.path), lab=lab.name,
                image_bytes=image_bytes, api=spec.api, image=image, compute_nodes=len(ends), host=f"{host}:{port}",
                settings=lab.settings.model_dump(mode="json"))
    return _storm(records, spec, p.path.client_vantage.name, meta, sampler)


def measure_master(url: str, image: str, spec: StormSpec, workers: int, out_dir: Path,
                   bind: str = "*", port: int = MASTER_PORT, cacert: str | None = None) -> StormRun:
    """The master of a storm on a real cluster: waits for `workers` workers (`run_worker` on each compute node)."""
    spec.check()
    if not 1 <= workers <= 10_000:
        raise SettingsError(f"storm: --workers {workers} is outside 1..10000")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-pulls.jsonl"
    master = LocustProcess("locust-master", socket.gethostname(), None, out_dir / "locust-master.log",
                           ["--master", "--master-bind-host", bind, "--master-bind-port", str(port),
                            "--expect-workers", str(workers), "--expect-workers-max-wait", f"{STARTUP_S:g}",
                            "--records", str(records), *spec.locust_args(url, image, cacert)],
                           ready_at=("*", port))
    meta, sampler = _run(master, [], spec, records)
    meta.update(url=url, image=image, expected_workers=workers, follow_hosts=spec.follow_hosts,
                insecure=spec.insecure)
    return _storm(records, spec, url, meta, sampler)


def run_worker(master_host: str, port: int = MASTER_PORT, node: str | None = None,
               log_dir: Path = Path(".")) -> int:
    """One worker on this host, until the master ends the storm; ended by its own id on Ctrl-C. Its exit code."""
    worker = LocustProcess("locust-worker", node or socket.gethostname(), None, Path(log_dir) / "locust-worker.log",
                           ["--worker", "--master-host", master_host, "--master-port", str(port)])
    try:
        worker.start()
        worker.proc.wait()
        return worker.proc.returncode
    finally:
        worker.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
