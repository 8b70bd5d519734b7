"""The loop disk (the VM's, a compute node's), its cgroup limits and the FUSE delay, measured on real devices (needs root;
the pure parts first need nothing).

Every number asserted here is measured: device and cgroup counters, wall time of real reads,
CPU time of a real busy loop. Each test ends what it made (loop devices, mounts, FUSE processes,
cgroups, files) by their own ids, also when it fails. Global names carry `servelab-wtstorage` or
`servelab/wtstorage-...` so they never meet another lab on this machine. Run with `-s` to see the
measured numbers.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

import labkit
from labkit.lab.host import cgroups
from labkit.lab.host.cgroups import Cgroup, IoLimits
from labkit.lab.conditions.delayfs import DelayMount
from labkit.lab.host.loopdisk import LoopDisk, drop_cache, parse_block_stat
from labkit.lab.host.mounts import MountError, mount_at
from tests.load import skip_for_load

MiB = 2**20
LAB = "wtstorage-it"                                # cgroups: servelab/wtstorage-it/<member>
BASE = Path("/var/tmp/servelab-wtstorage-it")       # backing files and mountpoints of these tests
REPO = Path(labkit.__file__).resolve().parent.parent     # the labkit under test, for child processes


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (loop devices, mounts, FUSE, cgroups)"
    for tool in ("losetup", "mkfs.ext4", "fusermount3"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return f"{tool} is not installed (make setup)"
    if not Path("/dev/fuse").exists():
        return "/dev/fuse is missing"
    if importlib.util.find_spec("mfusepy") is None:
        return "mfusepy is not installed (make setup)"
    return None


WHY = _why_not()


def needs_root(test):
    """Marks a test that uses real devices: skipped without root or tools, except in CI, where a
    missing tool must fail the run instead (as tests/conftest.py does for the lab)."""
    test = pytest.mark.integration(test)
    return pytest.mark.skipif(WHY is not None and not os.environ.get("CI"), reason=WHY or "")(test)


def say(what: str) -> None:
    print(f"\nmeasured: {what}", flush=True)


def write_file(path: Path, size: int) -> Path:
    """A file of random-looking bytes, on disk (fsync) and cold."""
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            f.write(i.to_bytes(8, "little") + block[8:])
        f.flush()
        os.fsync(f.fileno())
    drop_cache(path)
    return path


def read_all(path: Path, bs: int = MiB) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(bs):
            n += len(chunk)
    return n


def loops_and_mounts() -> str:
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    return out + Path("/proc/mounts").read_text()


def assert_gone(rec: dict) -> None:
    seen = loops_and_mounts()
    assert rec["backing"] not in seen, "a loop device still uses the backing file"
    assert f" {rec['mountpoint']} " not in seen, "the mountpoint is still mounted"
    assert not Path(rec["backing"]).exists()
    assert not Path(rec["mountpoint"]).exists()


@pytest.fixture(scope="module")
def base():
    """BASE, with whatever a killed earlier run left there ended first (by its recorded ids)."""
    BASE.mkdir(parents=True, exist_ok=True)
    for name in ("servelab-wtstorage-disk", "servelab-wtstorage-t1", "servelab-wtstorage-t2"):
        LoopDisk.cleanup_recorded({"backing": str(BASE / f"{name}.img"), "mountpoint": str(BASE / name)})
    DelayMount.cleanup_recorded({"mountpoint": str(BASE / "fuse")})
    cgroups.remove_lab(LAB)
    yield BASE
    cgroups.remove_lab(LAB)
    try:
        BASE.rmdir()                    # empty when every test ended what it made
    except OSError as e:
        pytest.fail(f"{BASE} still holds {sorted(os.listdir(BASE))}: {e.strerror}")


@pytest.fixture(scope="module")
def disk(base):
    with LoopDisk(base, 512 * MiB, base / "servelab-wtstorage-disk", name="servelab-wtstorage-disk") as d:
        yield d


@pytest.fixture
def group():
    """Cgroups made by one test, each removed at its end (their processes ended by pid)."""
    made: list[Cgroup] = []

    def make(member: str) -> Cgroup:
        g = Cgroup(LAB, member)
        made.append(g)
        return g.create()
    yield make
    for g in made:
        g.remove()


@pytest.fixture
def procs():
    """Child processes of one test, killed by their own pid at its end."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(5)
        for pipe in (p.stdin, p.stdout, p.stderr):
            if pipe:
                pipe.close()


# ---------------------------------------------------------------- pure parts (no root)

def test_block_stat_counts_sectors_as_bytes_and_requests():
    line = "     258        0   264436      120      132      40   330552      510        0      300      630\n"
    c = parse_block_stat(line)
    assert (c.bytes_read, c.ops_read, c.bytes_written, c.ops_written) == (264436 * 512, 258, 330552 * 512, 132)
    with pytest.raises(MountError, match="loopdisk.stat: 'x' is not a block device stat line"):
        parse_block_stat("x")


def test_mount_at_finds_the_last_mount_on_a_path():
    mounts = [SimpleNamespace(device="/dev/loop3", mountpoint="/var/tmp/a b", fstype="ext4", opts="rw"),
              SimpleNamespace(device="servelab-delayfs", mountpoint="/var/tmp/a b", fstype="fuse.servelab-delayfs",
                              opts="rw")]                  # as psutil.disk_partitions(all=True) gives them
    assert mount_at(mounts, "/var/tmp/a b") == ("servelab-delayfs", "fuse.servelab-delayfs")
    assert mount_at(mounts, "/var/tmp/a") is None


@pytest.mark.parametrize("kwargs,message", [
    ({"size": 10 * MiB}, r"loopdisk\.size: 10485760 must be a multiple of 4096 bytes, at least 16777216"),
    ({"size": 64 * MiB + 1}, r"loopdisk\.size: 67108865 must be"),
    ({"name": "../etc"}, r"loopdisk\.name: '\.\./etc' is not a name"),
])
def test_disk_settings_are_checked_before_anything_is_made(tmp_path, kwargs, message):
    with pytest.raises(MountError, match=message):
        LoopDisk(tmp_path, **{"size": 64 * MiB, "mountpoint": tmp_path / "m", **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_delay_settings_are_checked(tmp_path):
    with pytest.raises(MountError, match=r"delayfs\.delay_ms: -1 is outside 0\.\.10000"):
        DelayMount(tmp_path, tmp_path / "m", delay_ms=-1)
    with pytest.raises(MountError, match=r"delayfs\.max_read: 1000 must be a multiple of 4096"):
        DelayMount(tmp_path, tmp_path / "m", delay_ms=2, max_read=1000)


def test_drop_cache_leaves_the_file_as_it_was(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10_000)
    drop_cache(f)
    assert f.read_bytes() == b"x" * 10_000


# ---------------------------------------------------------------- 1. up and down, leaving nothing

@needs_root
def test_disk_comes_up_and_goes_leaving_nothing(base):
    d = LoopDisk(base, 64 * MiB, base / "servelab-wtstorage-t1", name="servelab-wtstorage-t1")
    with d:
        rec = d.record()
        seen = loops_and_mounts()
        assert rec["backing"] in seen and f"{d.device} {rec['mountpoint']} ext4 " in seen
        assert Path(f"/sys/block/{Path(d.device).name}/loop/dio").read_text().strip() == "1"
        assert os.stat(rec["backing"]).st_blocks * 512 < 64 * MiB     # sparse
    assert_gone(rec)

    with pytest.raises(RuntimeError, match="inside the with block"):
        with LoopDisk(base, 64 * MiB, base / "servelab-wtstorage-t1", name="servelab-wtstorage-t1") as d:
            rec = d.record()
            (d.mountpoint / "x").write_bytes(b"x")
            raise RuntimeError("inside the with block")
    assert_gone(rec)


@needs_root
def test_a_disk_left_by_a_killed_owner_is_ended_from_its_record(base, procs):
    code = ("import json, sys, time\nfrom labkit.lab.host.loopdisk import LoopDisk\n"
            "d = LoopDisk(sys.argv[1], 64 << 20, sys.argv[2], name='servelab-wtstorage-t2').up()\n"
            "print(json.dumps(d.record()), flush=True)\ntime.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-c", code, str(base), str(base / "servelab-wtstorage-t2")],
                         stdout=subprocess.PIPE, text=True, env=env)
    procs.append(p)
    rec = json.loads(p.stdout.readline())
    p.kill()
    p.wait(5)
    try:
        assert rec["backing"] in loops_and_mounts()        # its owner is dead, the disk is not
    finally:
        done = LoopDisk.cleanup_recorded(rec)
    assert done[:2] == [f"umount {rec['mountpoint']}", f"losetup -d {rec['device']}"]
    assert_gone(rec)


# ---------------------------------------------------------------- 2. cold reads reach the device

@needs_root
def test_cold_read_shows_in_the_device_counters_and_a_warm_one_does_not(disk):
    f = write_file(disk.mountpoint / "cold.bin", 32 * MiB)
    s0 = disk.stat()
    assert read_all(f) == 32 * MiB
    cold = disk.stat() - s0
    s1 = disk.stat()
    read_all(f)
    warm = disk.stat() - s1
    say(f"cold read of 32 MiB: {cold.bytes_read / MiB:.1f} MiB read from {disk.device} in {cold.ops_read} "
        f"requests; warm re-read: {warm.bytes_read} bytes")
    assert 32 * MiB <= cold.bytes_read <= 33 * MiB
    assert warm.bytes_read == 0 and warm.ops_read == 0


# ---------------------------------------------------------------- 3. blkio read limit

@needs_root
@pytest.mark.parametrize("how", ["O_DIRECT", "buffered after drop_cache"])
def test_blkio_read_limit_caps_a_cold_sequential_read(disk, group, procs, how):
    limit = 40 * MiB
    f = disk.mountpoint / "limited.bin"
    if not f.exists():
        write_file(f, 64 * MiB)
    drop_cache(f)
    t0 = time.monotonic()
    read_all(f)
    free = 64 * MiB / (time.monotonic() - t0)         # the same cold read, not limited
    drop_cache(f)

    g = group("reader")
    g.limit_io(disk.dev_id, IoLimits(read_bps=limit))
    dd = f"exec dd if={f} of=/dev/null bs=1M" + (" iflag=direct" if how == "O_DIRECT" else "")
    p = subprocess.Popen(["sh", "-c", f"read go; {dd}"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(p)
    g.add(p.pid)                       # in the group before it reads a byte
    io0 = g.io(disk.dev_id)
    t0 = time.monotonic()
    p.communicate(b"go\n", timeout=30)
    took = time.monotonic() - t0
    io = g.io(disk.dev_id) - io0
    rate = io.bytes_read / took
    say(f"blkio read_bps={limit / MiB:.0f} MiB/s, {how}: {io.bytes_read / MiB:.1f} MiB in {took:.2f} s "
        f"= {rate / MiB:.1f} MiB/s ({rate / limit:.0%} of the limit; unlimited: {free / MiB:.0f} MiB/s)")
    assert p.returncode == 0
    assert io.bytes_read >= 64 * MiB
    assert 0.85 * limit <= rate <= 1.15 * limit
    assert free > 2 * limit            # so it is the limit that holds it back, not the disk


# ---------------------------------------------------------------- 4. CPU limit

@needs_root
def test_cpu_limit_of_half_a_cpu_caps_a_busy_loop_pinned_to_one_cpu(group, procs):
    g = group("busy")
    g.set_cpus(0.5)
    last = (os.cpu_count() or 1) - 1
    g.pin([last])
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    procs.append(p)
    g.add(p.pid)
    ps = psutil.Process(p.pid)
    assert ps.cpu_affinity() == [last]          # the cpuset holds it to that CPU

    def share():
        u0, c0, t0 = g.cpu_usage_ns(), ps.cpu_times(), time.monotonic()
        time.sleep(2.0)                # the interval measured over, not a stand-in for work
        u1, c1, t1 = g.cpu_usage_ns(), ps.cpu_times(), time.monotonic()
        return (u1 - u0) / 1e9 / (t1 - t0), (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
    g.set_cpus(None)
    free, _ = share()                  # what that CPU gives a busy loop right now (other load takes some)
    g.set_cpus(0.5)
    by_cgroup, by_psutil = share()
    say(f"cpus=0.5: busy loop used {by_cgroup:.1%} of a core (cpuacct), {by_psutil:.1%} (psutil); "
        f"unlimited on the same CPU: {free:.1%}")
    if free < 0.7:
        skip_for_load(f"other load leaves this CPU only {free:.0%} of a core: a 50% cap cannot be told apart")
    assert 0.425 <= by_cgroup <= 0.575
    assert 0.425 <= by_psutil <= 0.575


# ---------------------------------------------------------------- 5. FUSE delay per request

def _files(disk: LoopDisk, n: int, size: int, prefix: str = "f") -> tuple[Path, list[str]]:
    src = disk.mountpoint / "fuse-src"
    src.mkdir(exist_ok=True)
    names = [f"{prefix}{i}.bin" for i in range(n)]
    for name in names:
        if not (src / name).exists():
            write_file(src / name, size)
    return src, names


def _cold_reads(mount: DelayMount, src: Path, names: list[str]) -> float:
    """Aggregate MB/s of reading `names` through the mount, all at once, each file cold."""
    for name in names:
        drop_cache(src / name)                  # the file on the loop file system
        drop_cache(mount.mountpoint / name)     # and FUSE's own page cache of it
    got = [0] * len(names)

    def one(i: int) -> None:
        got[i] = read_all(mount.mountpoint / names[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(names))]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    assert got == [(src / n).stat().st_size for n in names]
    return sum(got) / took / 1e6


@needs_root
def test_fuse_passthrough_is_faithful_and_fast_without_delay(disk, base):
    src, names = _files(disk, 8, 16 * MiB)
    _, one = _files(disk, 1, 64 * MiB, prefix="one")
    names += one
    with DelayMount(src, base / "fuse", delay_ms=0) as m:
        single = _cold_reads(m, src, one)
        parallel = _cold_reads(m, src, names[:8])
        digest = hashlib.sha256((m.mountpoint / names[0]).read_bytes()).hexdigest()
        (m.mountpoint / "written.bin").write_bytes(b"through fuse" * 1000)
        (m.mountpoint / "d").mkdir()
        (m.mountpoint / "written.bin").rename(m.mountpoint / "d" / "moved.bin")
        (m.mountpoint / "link").symlink_to("d/moved.bin")
        assert (m.mountpoint / "link").read_bytes() == b"through fuse" * 1000
        os.chmod(m.mountpoint / "link", 0o600)
        os.chown(m.mountpoint / "d", 1, -1)
        assert sorted(os.listdir(m.mountpoint)) == sorted([*names, "d", "link"])
        (m.mountpoint / "link").unlink()
        rec = m.record()
    say(f"FUSE passthrough, no delay, max_read 1 MiB: one cold reader (64 MiB) {single:.0f} MB/s, "
        f"8 in parallel (8 x 16 MiB) {parallel:.0f} MB/s")
    assert digest == hashlib.sha256((src / names[0]).read_bytes()).hexdigest()
    assert (src / "d" / "moved.bin").read_bytes() == b"through fuse" * 1000
    assert (src / "d" / "moved.bin").stat().st_mode & 0o777 == 0o600 and (src / "d").stat().st_uid == 1
    assert not (src / "link").exists()
    assert f" {rec['mountpoint']} " not in Path("/proc/mounts").read_text()
    assert not psutil.pid_exists(rec["pid"]) and not Path(rec["mountpoint"]).exists()
    assert single > 100


@needs_root
def test_a_delay_mount_whose_process_was_killed_is_ended_from_its_record(disk, base):
    src, _ = _files(disk, 1, MiB)
    m = DelayMount(src, base / "fuse", delay_ms=1).start()
    try:
        rec = m.record()
        os.kill(rec["pid"], 9)
        m.proc.wait(5)                  # its mount is left behind, dead ("not connected")
        assert f" {rec['mountpoint']} fuse.servelab-delayfs " in Path("/proc/mounts").read_text()
        done = DelayMount.cleanup_recorded(rec)
    finally:
        m.stop()
    assert done == [f"fusermount3 -u {rec['mountpoint']}", f"rmdir {rec['mountpoint']}"]
    assert f" {rec['mountpoint']} " not in Path("/proc/mounts").read_text()


@needs_root
def test_fuse_delay_slows_one_stream_and_parallel_streams_add_up(disk, base):
    src, names = _files(disk, 8, 16 * MiB)
    _, one = _files(disk, 1, 64 * MiB, prefix="one")   # long enough to time without delay too
    request = 128 * 1024               # 2 ms per 128 KiB request
    with DelayMount(src, base / "fuse", delay_ms=0, max_read=request) as m:
        undelayed = _cold_reads(m, src, one)
    with DelayMount(src, base / "fuse", delay_ms=2, max_read=request) as m:
        single = _cold_reads(m, src, one)
        parallel = _cold_reads(m, src, names)
    say(f"FUSE, 128 KiB requests: one cold reader (64 MiB) {undelayed:.0f} MB/s without delay, "
        f"{single:.0f} MB/s with 2 ms; 8 readers (8 x 16 MiB) with 2 ms {parallel:.0f} MB/s "
        f"({parallel / single:.1f}x one)")
    assert single < undelayed / 3
    assert parallel >= 3 * single
