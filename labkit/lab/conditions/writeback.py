"""A write ceiling that buffered writers feel: the flusher throttled too, and the disk's dirty pages bounded.

nginx's temp files and a client's image are written through the page cache. On cgroup v1 the
kernel's flusher writes those pages back from the root group, so a group's write limit never sees
them (Docker's `device_write_bps` has the same gap on v1). For a disk the lab owns, its own loop
device, the lab therefore also sets the write ceiling in the root group, keyed by that device
alone, and bounds the device's share of dirty pages (bdi `strict_limit` and `max_bytes`), so a
writer waits for the disk after `dirty_cap` bytes, as on a VM whose page cache has filled. On v2
the flusher's writes are charged to the writer's group already (cgroup writeback) and only the
dirty bound is set. `cap` returns a record with the values it replaced; `uncap(record)` puts them
back, also from the state file of a lab whose owner was killed.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ...config.settings import dirty_bound
from ..host.cgroups import Features, IoLimits, parse_device

BDI = Path("/sys/class/bdi")
_ROOT_FILES = {"write_bps": "blkio.throttle.write_bps_device", "write_iops": "blkio.throttle.write_iops_device"}


def dirty_cap(limits: IoLimits) -> int:
    """Bytes of dirty pages the device may hold: two seconds at the write ceiling, 8..256 MiB
    (labkit.config.settings.dirty_bound, the rule hypotheses size their images by)."""
    return dirty_bound(limits.write_bps)


def writes_limited(limits: IoLimits) -> bool:
    return bool(limits.write_bps or limits.write_iops)


def cap(device: str, limits: IoLimits, feats: Features, dirty: int | None = None) -> dict:
    """Apply the root-group ceiling (v1) and the dirty bound on `device` (`dirty` bytes, default
    `dirty_cap(limits)`); the record to undo it."""
    dev = parse_device(device)
    rec: dict = {"device": dev, "root": None, "bdi": {}}
    bdi = BDI / dev
    for name in ("strict_limit", "max_ratio"):
        rec["bdi"][name] = (bdi / name).read_text().strip()
    if feats.version == 1 and "blkio" in feats.roots:
        rec["root"] = str(feats.roots["blkio"])
        for key, f in _ROOT_FILES.items():
            (feats.roots["blkio"] / f).write_text(f"{dev} {getattr(limits, key) or 0}\n")
    (bdi / "strict_limit").write_text("1\n")
    (bdi / "max_bytes").write_text(f"{dirty or dirty_cap(limits)}\n")
    return rec


def uncap(rec: dict) -> list[str]:
    """Undo `cap` from its record; what was done. A device gone meanwhile is skipped."""
    dev, done = rec["device"], []
    if rec.get("root"):
        for f in _ROOT_FILES.values():
            with contextlib.suppress(OSError):
                (Path(rec["root"]) / f).write_text(f"{dev} 0\n")
        done.append(f"root blkio write ceiling on {dev} lifted")
    bdi = BDI / dev
    # max_bytes 0 would set max_ratio 0: the ratio saved is written back instead
    for name in ("max_ratio", "strict_limit"):
        if name in rec.get("bdi", {}):
            with contextlib.suppress(OSError):
                (bdi / name).write_text(rec["bdi"][name] + "\n")
    if rec.get("bdi"):
        done.append(f"bdi {dev} dirty bound restored")
    return done
