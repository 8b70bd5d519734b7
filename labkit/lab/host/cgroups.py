"""CPU and block-I/O limits per service with Linux cgroups, v1 or v2, as Docker would set them.

A real VM gives each service a `cpus:` quota, maybe a cpuset, and its disk a throughput or IOPS
ceiling. The lab reproduces them with the kernel's own controllers, so that a process in the group
is slowed the way the real one is, and reads the same counters a real host would show.

Each lab member gets one group `servelab/<lab>/<member>`: on cgroup v1 one directory in each of the
cpu, cpuacct, cpuset and blkio hierarchies (they may be co-mounted); on v2 one directory in the
unified tree, with cpu, cpuset and io enabled in `cgroup.subtree_control` on the way down.

The pure parts (validating and rendering values, parsing mount and counter files, judging which
features are usable) come first and touch no file; `features()` and `Cgroup` do the reading and
writing. Settings are named in errors as `cpu.cpus`, `cpuset.cpus`, `blkio.device`,
`blkio.read_bps`, `blkio.write_bps`, `blkio.read_iops`, `blkio.write_iops`.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import psutil

from ...errors import LabkitError
from .names import check_name
from .process import terminate

CFS_PERIOD_US = 100_000          # Docker's period: `cpus: 0.5` is 50 ms of CPU every 100 ms
TOP = "servelab"                 # every group of every lab lives under this directory
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "blkio")
V2_CONTROLLERS = ("cpu", "cpuset", "io")
_DEVICE = re.compile(r"(\d+):(\d+)")


class CgroupError(LabkitError, RuntimeError):
    """A setting that is invalid or could not be applied; the message names the setting."""


# ---------------------------------------------------------------- pure: values and validation

def cfs_quota_us(cpus: float, ncpus: int, period_us: int = CFS_PERIOD_US) -> int:
    """Docker's `cpus:` as a CFS quota in µs per `period_us`, after checking 0.01 <= cpus <= ncpus."""
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not 0.01 <= cpus <= ncpus:
        raise CgroupError(f"cpu.cpus: {cpus!r} is outside 0.01..{ncpus}")
    return round(cpus * period_us)


def render_cpu_max(cpus: float | None, ncpus: int, period_us: int = CFS_PERIOD_US) -> str:
    """The line for v2's cpu.max: `<quota> <period>`, or `max <period>` for no limit (None)."""
    quota = "max" if cpus is None else str(cfs_quota_us(cpus, ncpus, period_us))
    return f"{quota} {period_us}"


def parse_cpu_list(text: str) -> list[int]:
    """`0-2,5` -> [0, 1, 2, 5]; the format of cpuset.cpus and /sys/devices/system/cpu/online."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise CgroupError(f"cpuset.cpus: {text.strip()!r} is not a CPU list like 0-2,5")
        out.update(range(int(m[1]), int(m[2] if m[2] is not None else m[1]) + 1))
    return sorted(out)


def render_cpu_list(cpus: str | Iterable[int], ncpus: int) -> str:
    """CPUs (a list or a `0-2,5` string) as cpuset.cpus wants them, each checked to be 0..ncpus-1."""
    ids = parse_cpu_list(cpus) if isinstance(cpus, str) else sorted(set(cpus))
    if not ids:
        raise CgroupError("cpuset.cpus: no CPU given")
    for c in ids:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < ncpus:
            raise CgroupError(f"cpuset.cpus: CPU {c!r} is outside 0..{ncpus - 1}")
    runs: list[list[int]] = []
    for c in ids:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def parse_device(device: str) -> str:
    """A block device as "MAJ:MIN" (what blkio and io files key on), checked."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device.strip()):
        raise CgroupError(f"blkio.device: {device!r} is not MAJ:MIN (e.g. 7:0; see LoopDisk.dev_id)")
    return device.strip()


@dataclass(frozen=True)
class IoLimits:
    """Block I/O ceilings on one device; None is no limit. Bytes or operations per second."""
    read_bps: int | None = None
    write_bps: int | None = None
    read_iops: int | None = None
    write_iops: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise CgroupError(f"blkio.{f.name}: {v!r} must be a positive whole number or None")


_V1_FILES = {"read_bps": "blkio.throttle.read_bps_device", "write_bps": "blkio.throttle.write_bps_device",
             "read_iops": "blkio.throttle.read_iops_device", "write_iops": "blkio.throttle.write_iops_device"}
_V2_KEYS = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops", "write_iops": "wiops"}


def render_blkio_v1(device: str, limits: IoLimits) -> dict[str, str]:
    """Limit name -> line for its v1 throttle file (see _V1_FILES); 0 removes a rule, so None is 0."""
    dev = parse_device(device)
    return {key: f"{dev} {getattr(limits, key) or 0}" for key in _V1_FILES}


def render_io_max(device: str, limits: IoLimits) -> str:
    """v2's io.max line, e.g. `7:0 rbps=41943040 wbps=max riops=max wiops=max`."""
    dev = parse_device(device)
    return dev + "".join(f" {k}={getattr(limits, a) or 'max'}" for a, k in _V2_KEYS.items())


# ---------------------------------------------------------------- pure: counters

@dataclass(frozen=True)
class IoCounters:
    """What a group read and wrote on one device; `after - before` gives the part in between."""
    bytes_read: int = 0
    bytes_written: int = 0
    ops_read: int = 0
    ops_written: int = 0

    def __sub__(self, other: IoCounters) -> IoCounters:
        return IoCounters(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


def parse_blkio_v1(text: str, device: str) -> tuple[int, int]:
    """(Read, Write) for `device` in blkio.throttle.io_service_bytes or io_serviced; 0 if absent."""
    dev = parse_device(device)
    got = {"Read": 0, "Write": 0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == dev and parts[1] in got:
            got[parts[1]] = int(parts[2])
    return got["Read"], got["Write"]


def parse_io_stat(text: str, device: str) -> IoCounters:
    """v2's io.stat line for `device` (`7:0 rbytes=.. wbytes=.. rios=.. wios=..`); zeros if absent."""
    dev = parse_device(device)
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == dev:
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            return IoCounters(int(kv.get("rbytes", 0)), int(kv.get("wbytes", 0)),
                              int(kv.get("rios", 0)), int(kv.get("wios", 0)))
    return IoCounters()


def parse_cpu_stat_usage_ns(text: str) -> int:
    """CPU time used, in ns, from v2's cpu.stat (`usage_usec N`)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) * 1000
    raise CgroupError("cpu.stat: no usage_usec line")


def parse_throttling(text: str) -> tuple[int, int]:
    """(CFS periods, periods throttled) from cpu.stat (v1 and v2 both: `nr_periods N`, `nr_throttled N`)."""
    kv = dict(line.split(None, 1) for line in text.splitlines() if len(line.split()) == 2)
    return int(kv.get("nr_periods", 0)), int(kv.get("nr_throttled", 0))


# ---------------------------------------------------------------- pure: what the machine offers

def parse_mounts(mounts: Iterable) -> tuple[dict[str, Path], Path | None]:
    """From the mount table (psutil.disk_partitions(all=True): mountpoint, fstype, opts): v1 controller
    -> its hierarchy's mount, and the cgroup2 mount (or None)."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for m in mounts:
        if m.fstype == "cgroup":
            for c in m.opts.split(","):
                if c in V1_CONTROLLERS:
                    v1.setdefault(c, Path(m.mountpoint))
        elif m.fstype == "cgroup2" and v2 is None:
            v2 = Path(m.mountpoint)
    return v1, v2


@dataclass(frozen=True)
class Features:
    """Which cgroup version is in use, where each controller lives, and what is usable."""
    version: int | None                       # 1, 2, or None when no cgroup is mounted
    roots: dict[str, Path] = field(default_factory=dict)   # cpu/cpuacct/cpuset/blkio -> hierarchy
    cpu_quota: bool = False
    cpu_usage: bool = False
    cpuset: bool = False
    io_limit: bool = False
    io_stats: bool = False
    missing: list[str] = field(default_factory=list)        # one sentence for each thing not usable


_V1_NEEDS = {  # feature -> (controller, file that proves it, what is lost without it)
    "cpu_quota": ("cpu", "cpu.cfs_quota_us", "no CPU limit (cpus:)"),
    "cpu_usage": ("cpuacct", "cpuacct.usage", "no CPU usage counter per group"),
    "cpuset": ("cpuset", "cpuset.cpus", "no pinning to CPUs (cpuset:)"),
    "io_limit": ("blkio", "blkio.throttle.read_bps_device", "no block I/O limits"),
    "io_stats": ("blkio", "blkio.throttle.io_service_bytes", "no block I/O counters per group"),
}
_V2_NEEDS = {"cpu_quota": ("cpu", "no CPU limit (cpus:)"), "cpuset": ("cpuset", "no pinning to CPUs (cpuset:)"),
             "io_limit": ("io", "no block I/O limits"), "io_stats": ("io", "no block I/O counters per group")}


def assess(v1: dict[str, Path], v2: Path | None, v2_controllers: set[str],
           usable: Callable[[Path], bool]) -> Features:
    """Judge the features from the mounts; `usable(path)` says a control file exists and is writable.

    v1 wins when any controller we need is mounted as v1 (a hybrid machine keeps them there).
    """
    if any(c in v1 for c in V1_CONTROLLERS):
        ok: dict[str, bool] = {}
        missing = []
        for feat, (ctrl, probe, loss) in _V1_NEEDS.items():
            ok[feat] = ctrl in v1 and usable(v1[ctrl] / probe)
            if not ok[feat]:
                why = (f"the {ctrl} controller is not mounted" if ctrl not in v1
                       else f"{v1[ctrl] / probe} is missing or not writable")
                missing.append(f"cgroup v1: {why}: {loss}")
        return Features(1, {c: v1[c] for c in V1_CONTROLLERS if c in v1}, missing=missing, **ok)
    if v2 is not None:
        if not usable(v2 / "cgroup.subtree_control"):
            return Features(2, missing=[f"cgroup v2 at {v2} is not writable: no CPU or block I/O limits"])
        ok = {feat: ctrl in v2_controllers for feat, (ctrl, _) in _V2_NEEDS.items()}
        missing = [f"cgroup v2: the {ctrl} controller is not offered in {v2}/cgroup.controllers: {loss}"
                   for feat, (ctrl, loss) in _V2_NEEDS.items() if not ok[feat]]
        return Features(2, {c: v2 for c in V1_CONTROLLERS}, cpu_usage=True, missing=missing, **ok)
    return Features(None, missing=["no cgroup file system is mounted: no CPU or block I/O limits"])


# ---------------------------------------------------------------- side effects

def _usable(path: Path) -> bool:
    return path.exists() and os.access(path, os.W_OK)


def features() -> Features:
    """What this machine offers, read now; never raises for a missing feature."""
    try:
        v1, v2 = parse_mounts(psutil.disk_partitions(all=True))
    except OSError as e:
        return Features(None, missing=[f"cannot read the mount table ({e.strerror}): no CPU or block I/O limits"])
    try:
        ctrls = set((v2 / "cgroup.controllers").read_text().split()) if v2 else set()
    except OSError:
        ctrls = set()
    return assess(v1, v2, ctrls, _usable)


def _write(path: Path, value: str, setting: str) -> None:
    try:
        path.write_text(value + "\n")
    except OSError as e:
        raise CgroupError(f"{setting}: writing {value!r} to {path} failed: {e.strerror}") from None


def _procs(group: Path) -> set[int]:
    try:
        return {int(p) for p in (group / "cgroup.procs").read_text().split()}
    except FileNotFoundError:
        return set()


def _empty_group(group: Path, grace: float, timeout: float) -> None:
    """End the processes listed in this group's own cgroup.procs (TERM, then KILL), by pid, until it
    holds none (one may have forked meanwhile)."""
    if os.getpid() in _procs(group):
        raise CgroupError(f"{group} holds this very process; move it out before removing the group")
    deadline = time.monotonic() + timeout
    while pids := _procs(group):
        if time.monotonic() > deadline:
            raise CgroupError(f"{group}: processes {sorted(pids)} did not end within {timeout:.0f} s")
        procs = []
        for pid in pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        terminate(procs, grace=grace)


def remove_tree(group: Path, grace: float = 1.0, timeout: float = 10.0) -> list[Path]:
    """Remove a group and every group below it, children first, ending their processes by pid."""
    if not group.is_dir():
        return []
    removed = []
    below = sorted((Path(d) for d, _, _ in os.walk(group)), key=lambda p: len(p.parts), reverse=True)
    for d in below:
        _empty_group(d, grace, timeout)
        try:
            d.rmdir()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise CgroupError(f"cannot remove {d}: {e.strerror}") from None
        removed.append(d)
    return removed


def remove_lab(lab: str, feats: Features | None = None) -> list[Path]:
    """Remove every group under `servelab/<lab>/` in every hierarchy (a stale lab, on next start)."""
    feats = feats or features()
    check_name(lab, "cgroup.lab", CgroupError)
    removed: list[Path] = []
    for root in dict.fromkeys(feats.roots.values()):
        removed += remove_tree(root / TOP / lab)
    return removed


def lab_group(lab: str, feats: Features, cpus: float | None) -> Path:
    """The CPU quota of the lab's own group `servelab/<lab>` (every group of the lab is below it): `cpus` of
    this machine's cores for all of them together, None to lift it. Made if absent (cpu hierarchy only)."""
    check_name(lab, "cgroup.lab", CgroupError)
    if "cpu" not in feats.roots or not feats.cpu_quota:
        raise CgroupError("cgroup: no CPU quota here: " + "; ".join(feats.missing))
    root = feats.roots["cpu"]
    d = root / TOP / lab
    if cpus is None and not d.is_dir():
        return d
    for parent, child in ((root, root / TOP), (root / TOP, d)):
        if feats.version == 2:     # the cpu controller reaches a group only if enabled above it
            _write(parent / "cgroup.subtree_control", "+cpu", "cgroup.subtree_control")
        child.mkdir(exist_ok=True)
    if feats.version == 2:
        _write(d / "cpu.max", render_cpu_max(cpus, os.cpu_count() or 1), "machine.vcpus")
        return d
    _write(d / "cpu.cfs_period_us", str(CFS_PERIOD_US), "machine.vcpus")
    _write(d / "cpu.cfs_quota_us", str(-1 if cpus is None else cfs_quota_us(cpus, os.cpu_count() or 1)),
           "machine.vcpus")
    return d


def parse_quota(text: str) -> bool:
    """Whether a group's CPU quota file says it is capped (v1 cpu.cfs_quota_us: not -1; v2 cpu.max: not max)."""
    words = text.split()
    return bool(words) and words[0] not in ("max", "-1")


def capped(group: Path, version: int | None) -> bool:
    """Whether `group` (a directory of the cpu hierarchy, or any on v2) holds a CPU quota of its own."""
    f = group / ("cpu.max" if version == 2 else "cpu.cfs_quota_us")
    try:
        return parse_quota(f.read_text())
    except OSError:
        return False


def joiner(procs_files: Iterable[Path]) -> Callable[[], None] | None:
    """A `preexec_fn` that moves the new process into groups before it execs (so a master's
    workers are born inside); None when there is nothing to join."""
    files = [os.fsencode(f) for f in procs_files]
    if not files:
        return None

    def join() -> None:
        pid = str(os.getpid()).encode()
        for f in files:
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
    return join


class Cgroup:
    """One group `servelab/<lab>/<member>` across the controllers that are usable here.

    `with Cgroup("main", "nginx") as g: g.set_cpus(0.5); g.add(pid)` creates it and, on exit,
    ends the processes it holds (by pid) and removes it.

    `controllers` keeps the group to some hierarchies (v1: e.g. ("blkio",) for a disk's group
    next to per-service CPU groups; a process can be in one group per hierarchy). On v2 there is
    one tree, so every group spans every controller and the argument changes nothing.
    """

    def __init__(self, lab: str, member: str, feats: Features | None = None,
                 controllers: tuple[str, ...] | None = None):
        self.lab = check_name(lab, "cgroup.lab", CgroupError)
        self.member = check_name(member, "cgroup.member", CgroupError)
        self.feats = feats or features()
        if self.feats.version is None:
            raise CgroupError("cgroup: " + "; ".join(self.feats.missing))
        unknown = set(controllers or ()) - set(V1_CONTROLLERS)
        if unknown:
            raise CgroupError(f"cgroup.controllers: {sorted(unknown)} not among {', '.join(V1_CONTROLLERS)}")
        self.controllers = tuple(c for c in (controllers or V1_CONTROLLERS) if c in self.feats.roots)
        self.ncpus = os.cpu_count() or 1

    def path(self, controller: str) -> Path:
        """This group's directory in the hierarchy of `controller` (cpu, cpuacct, cpuset, blkio)."""
        if controller not in self.feats.roots:
            raise CgroupError(f"cgroup: the {controller} controller is not usable here: "
                              + "; ".join(self.feats.missing))
        if controller not in self.controllers:
            raise CgroupError(f"cgroup: group {self.member} is not in the {controller} hierarchy")
        return self.feats.roots[controller] / TOP / self.lab / self.member

    @property
    def dirs(self) -> list[Path]:
        """The distinct directories of this group (co-mounted controllers share one; v2 has one)."""
        return list(dict.fromkeys(self.path(c) for c in self.controllers))

    def procs_files(self) -> list[Path]:
        """The cgroup.procs files a process writes its own pid to, to join (e.g. before it execs)."""
        return [d / "cgroup.procs" for d in self.dirs]

    def _need(self, feature: str, setting: str) -> None:
        if not getattr(self.feats, feature):
            raise CgroupError(f"{setting}: not usable here: " + "; ".join(self.feats.missing))

    def create(self) -> Cgroup:
        """Make the directories, each level ready to hold processes (cpusets filled, v2 delegation)."""
        for root in dict.fromkeys(self.feats.roots[c] for c in self.controllers):
            offered = set()
            if self.feats.version == 2:
                offered = set((root / "cgroup.controllers").read_text().split()) & set(V2_CONTROLLERS)
            parent = root
            for d in (root / TOP, root / TOP / self.lab, root / TOP / self.lab / self.member):
                for c in sorted(offered):       # v2: a controller reaches a group only if enabled above
                    _write(parent / "cgroup.subtree_control", f"+{c}", "cgroup.subtree_control")
                d.mkdir(exist_ok=True)
                if self.feats.version == 1 and root == self.feats.roots.get("cpuset"):
                    for f in ("cpuset.cpus", "cpuset.mems"):   # v1 starts them empty: no task could join
                        if not (d / f).read_text().strip():
                            _write(d / f, (parent / f).read_text().strip(), f)
                parent = d
        return self

    def set_cpus(self, cpus: float | None) -> None:
        """Docker's `cpus:` (e.g. 0.5 is half a core), None for no limit."""
        self._need("cpu_quota", "cpu.cpus")
        d = self.path("cpu")
        if self.feats.version == 2:
            _write(d / "cpu.max", render_cpu_max(cpus, self.ncpus), "cpu.cpus")
            return
        quota = -1 if cpus is None else cfs_quota_us(cpus, self.ncpus)
        _write(d / "cpu.cfs_period_us", str(CFS_PERIOD_US), "cpu.cpus")
        _write(d / "cpu.cfs_quota_us", str(quota), "cpu.cpus")

    def pin(self, cpus: str | Iterable[int]) -> None:
        """Keep the group on these CPUs (Docker's `cpuset:`); memory nodes copied from the parent."""
        self._need("cpuset", "cpuset.cpus")
        value = render_cpu_list(cpus, self.ncpus)
        d = self.path("cpuset")
        _write(d / "cpuset.mems", (d.parent / "cpuset.mems").read_text().strip(), "cpuset.mems")
        _write(d / "cpuset.cpus", value, "cpuset.cpus")

    def limit_io(self, device: str, limits: IoLimits) -> None:
        """Set all four ceilings on `device` ("MAJ:MIN"); the ones left None are lifted."""
        self._need("io_limit", "blkio.device")
        d = self.path("blkio")
        if self.feats.version == 2:
            _write(d / "io.max", render_io_max(device, limits), "blkio.device")
            return
        for key, line in render_blkio_v1(device, limits).items():
            _write(d / _V1_FILES[key], line, f"blkio.{key}")

    def add(self, pid: int) -> None:
        """Move a process (all its threads) into the group, in every hierarchy."""
        for d in self.dirs:
            _write(d / "cgroup.procs", str(pid), "cgroup.procs")

    def pids(self) -> set[int]:
        """Processes in this group itself (not in groups below it)."""
        return set().union(*(_procs(d) for d in self.dirs))

    def io(self, device: str) -> IoCounters:
        """Bytes and operations this group read and wrote on `device` since it was made."""
        self._need("io_stats", "blkio.device")
        d = self.path("blkio")
        if self.feats.version == 2:
            return parse_io_stat((d / "io.stat").read_text(), device)
        b = parse_blkio_v1((d / "blkio.throttle.io_service_bytes").read_text(), device)
        n = parse_blkio_v1((d / "blkio.throttle.io_serviced").read_text(), device)
        return IoCounters(b[0], b[1], n[0], n[1])

    def cpu_usage_ns(self) -> int:
        """CPU time the group's processes used, in ns."""
        self._need("cpu_usage", "cpu.usage")
        if self.feats.version == 2:
            return parse_cpu_stat_usage_ns((self.path("cpu") / "cpu.stat").read_text())
        return int((self.path("cpuacct") / "cpuacct.usage").read_text())

    def throttling(self) -> tuple[int, int]:
        """(CFS periods, periods in which the quota ran out) since the group was made."""
        self._need("cpu_quota", "cpu.cpus")
        return parse_throttling((self.path("cpu") / "cpu.stat").read_text())

    def remove(self) -> list[Path]:
        """End the processes listed in this group (by pid) and remove it, children first.

        The lab's directory goes too once no member is left in it (a busy one is left alone), unless it
        holds the lab's own CPU cap (`lab_group`): that one is the lab's to lift, and ends with the lab
        (`remove_lab`). Removing it with its last member made the next member's group come back under a
        fresh lab directory without the cap (its quota file reading -1: tests/integration/
        test_dilation_integration.py)."""
        removed = [p for d in self.dirs for p in remove_tree(d)]
        for d in self.dirs:
            if capped(d.parent, self.feats.version):
                continue
            try:
                d.parent.rmdir()
                removed.append(d.parent)
            except OSError:
                pass
        return removed

    def __enter__(self) -> Cgroup:
        try:
            return self.create()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *exc) -> None:
        self.remove()
