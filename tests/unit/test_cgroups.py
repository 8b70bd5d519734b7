"""cgroups: rendering, parsing, validation and feature judging; pure, no root and no /sys writes."""
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit.lab.host import cgroups as cg
from labkit.lab.host.cgroups import CgroupError, IoCounters, IoLimits


@pytest.mark.parametrize("cpus,quota", [(0.5, 50_000), (1, 100_000), (2.0, 200_000), (0.01, 1_000)])
def test_cfs_quota_is_dockers_cpus_times_period(cpus, quota):
    assert cg.cfs_quota_us(cpus, ncpus=2) == quota


@pytest.mark.parametrize("bad", [0, -1, 0.001, 2.5, "1", True, float("nan")])
def test_cfs_quota_refuses_values_outside_the_machine(bad):
    with pytest.raises(CgroupError, match=r"^cpu\.cpus: .* is outside 0\.01\.\.2$"):
        cg.cfs_quota_us(bad, ncpus=2)


def test_cpu_max_renders_quota_or_max():
    assert cg.render_cpu_max(0.5, ncpus=2) == "50000 100000"
    assert cg.render_cpu_max(None, ncpus=2) == "max 100000"
    with pytest.raises(CgroupError, match="cpu.cpus: 3 is outside"):
        cg.render_cpu_max(3, ncpus=2)


def test_cpu_lists_parse_and_render_as_ranges():
    assert cg.parse_cpu_list("0-2,5\n") == [0, 1, 2, 5]
    assert cg.parse_cpu_list("") == []
    assert cg.render_cpu_list([3, 0, 1, 2, 5, 6], ncpus=8) == "0-3,5-6"
    assert cg.render_cpu_list("1", ncpus=2) == "1"
    with pytest.raises(CgroupError, match=r"cpuset\.cpus: CPU 2 is outside 0\.\.1"):
        cg.render_cpu_list([0, 2], ncpus=2)
    with pytest.raises(CgroupError, match=r"cpuset\.cpus: '3-1' is not a CPU list"):
        cg.render_cpu_list("3-1", ncpus=4)
    with pytest.raises(CgroupError, match="cpuset.cpus: no CPU given"):
        cg.render_cpu_list([], ncpus=4)


@pytest.mark.parametrize("bad", ["sda", "7", "7:", ":0", "7:0:1", "/dev/loop0", 7])
def test_device_must_be_major_minor(bad):
    with pytest.raises(CgroupError, match=r"^blkio\.device: .* is not MAJ:MIN"):
        cg.parse_device(bad)


def test_io_limits_are_validated_naming_the_setting():
    with pytest.raises(CgroupError, match=r"^blkio\.read_bps: -5 must be a positive whole number"):
        IoLimits(read_bps=-5)
    with pytest.raises(CgroupError, match=r"^blkio\.write_iops: 1\.5 must be"):
        IoLimits(write_iops=1.5)
    with pytest.raises(CgroupError, match=r"^blkio\.read_iops: 0 must be"):
        IoLimits(read_iops=0)


def test_blkio_v1_lines_write_zero_for_no_limit():
    lines = cg.render_blkio_v1("7:0", IoLimits(read_bps=41943040, write_iops=100))
    assert lines == {"read_bps": "7:0 41943040", "write_bps": "7:0 0",
                     "read_iops": "7:0 0", "write_iops": "7:0 100"}


def test_io_max_line_uses_max_for_no_limit():
    assert (cg.render_io_max("253:1", IoLimits(write_bps=10_000_000, read_iops=500))
            == "253:1 rbps=max wbps=10000000 riops=500 wiops=max")


V1_BYTES = """7:0 Read 67108864
7:0 Write 4096
7:0 Sync 67112960
7:0 Async 0
7:0 Discard 0
7:0 Total 67112960
8:0 Read 11
8:0 Write 22
Total 67112993
"""


def test_v1_service_bytes_are_read_for_the_device_only():
    assert cg.parse_blkio_v1(V1_BYTES, "7:0") == (67108864, 4096)
    assert cg.parse_blkio_v1(V1_BYTES, "8:0") == (11, 22)
    assert cg.parse_blkio_v1("Total 0\n", "7:0") == (0, 0)


def test_v2_io_stat_and_counter_deltas():
    text = "8:0 rbytes=90112 wbytes=0 rios=3 wios=0 dbytes=0 dios=0\n7:1 rbytes=4096 wbytes=8192 rios=1 wios=2\n"
    assert cg.parse_io_stat(text, "7:1") == IoCounters(4096, 8192, 1, 2)
    assert cg.parse_io_stat(text, "7:9") == IoCounters()
    assert IoCounters(10, 20, 3, 4) - IoCounters(1, 2, 1, 1) == IoCounters(9, 18, 2, 3)


def test_v2_cpu_stat_usage_in_ns():
    assert cg.parse_cpu_stat_usage_ns("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n") == 1_500_000
    with pytest.raises(CgroupError, match="cpu.stat: no usage_usec"):
        cg.parse_cpu_stat_usage_ns("user_usec 1\n")


HYBRID = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
UNIFIED = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"


def mounts(text: str) -> list:
    """/proc/mounts lines as psutil.disk_partitions(all=True) gives them (device, mountpoint, fstype, opts)."""
    return [SimpleNamespace(device=f[0], mountpoint=f[1], fstype=f[2], opts=f[3])
            for f in (line.split() for line in text.splitlines()) if len(f) >= 4]


def test_mounts_parse_v1_comounts_and_the_v2_mount():
    v1, v2 = cg.parse_mounts(mounts(HYBRID))
    assert v1 == {"cpu": Path("/sys/fs/cgroup/cpu,cpuacct"), "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),
                  "cpuset": Path("/sys/fs/cgroup/cpuset"), "blkio": Path("/sys/fs/cgroup/blkio")}
    assert v2 == Path("/sys/fs/cgroup/unified")


def test_hybrid_machine_uses_v1_and_names_what_is_missing():
    v1, v2 = cg.parse_mounts(mounts(HYBRID))
    f = cg.assess(v1, v2, {"hugetlb"}, usable=lambda p: p.name != "blkio.throttle.read_bps_device")
    assert f.version == 1
    assert (f.cpu_quota, f.cpu_usage, f.cpuset, f.io_limit, f.io_stats) == (True, True, True, False, True)
    assert f.missing == ["cgroup v1: /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device is missing "
                         "or not writable: no block I/O limits"]
    assert f.roots["cpu"] == f.roots["cpuacct"]


def test_v1_without_a_controller_says_it_is_not_mounted():
    v1, _ = cg.parse_mounts(mounts("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"))
    f = cg.assess(v1, None, set(), usable=lambda p: True)
    assert f.cpu_quota and not f.io_limit and not f.cpuset
    assert "cgroup v1: the blkio controller is not mounted: no block I/O limits" in f.missing
    assert "cgroup v1: the cpuset controller is not mounted: no pinning to CPUs (cpuset:)" in f.missing


def test_unified_v2_uses_the_offered_controllers():
    v1, v2 = cg.parse_mounts(mounts(UNIFIED))
    f = cg.assess(v1, v2, {"cpu", "memory", "pids"}, usable=lambda p: True)
    assert f.version == 2 and f.cpu_quota and f.cpu_usage and not f.io_limit and not f.cpuset
    assert set(f.roots.values()) == {Path("/sys/fs/cgroup")}
    assert any("the io controller is not offered" in m for m in f.missing)
    ro = cg.assess(v1, v2, {"cpu", "io"}, usable=lambda p: False)
    assert not ro.cpu_quota and ro.missing == ["cgroup v2 at /sys/fs/cgroup is not writable: no CPU or block I/O limits"]


def test_no_cgroups_at_all_is_a_sentence_not_an_exception(monkeypatch):
    f = cg.assess({}, None, set(), usable=lambda p: True)
    assert f.version is None and f.missing
    def unreadable(all):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(cg.psutil, "disk_partitions", unreadable)
    assert cg.features().missing[0].startswith("cannot read the mount table (Permission denied)")
    with pytest.raises(CgroupError, match="no cgroup file system is mounted"):
        cg.Cgroup("lab", "m", feats=f)


@pytest.mark.parametrize("lab,member,setting", [("", "m", "cgroup.lab"), ("a/b", "m", "cgroup.lab"),
                                                ("lab", "..", "cgroup.member"), ("lab", "x y", "cgroup.member")])
def test_group_names_cannot_escape_servelab(lab, member, setting):
    f = cg.assess(*cg.parse_mounts(mounts(UNIFIED)), {"cpu", "io", "cpuset"}, usable=lambda p: True)
    with pytest.raises(CgroupError, match=f"^{setting}: "):
        cg.Cgroup(lab, member, feats=f)


def test_group_paths_and_refusals_for_missing_features():
    v1, v2 = cg.parse_mounts(mounts(HYBRID))
    f = cg.assess(v1, v2, set(), usable=lambda p: not p.name.startswith("blkio."))
    g = cg.Cgroup("wtstorage-unit", "nginx", feats=f)
    assert g.path("cpuset") == Path("/sys/fs/cgroup/cpuset/servelab/wtstorage-unit/nginx")
    assert len(g.dirs) == 3          # cpu and cpuacct share one directory
    with pytest.raises(CgroupError, match=r"^blkio\.device: not usable here: cgroup v1: "):
        g.limit_io("7:0", IoLimits(read_bps=1))
