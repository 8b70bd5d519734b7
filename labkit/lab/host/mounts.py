"""Mounts on the host: which file system is mounted where (psutil's mount table, unescaped by getmntent),
and the tools that mount, unmount and attach, run with errors that name the setting."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

from ...errors import LabkitError
from .tools import tool


class MountError(LabkitError, RuntimeError):
    """A disk or mount that could not be made or ended; the message names the setting."""


def mount_at(mounts, mountpoint: str) -> tuple[str, str] | None:
    """(source, fstype) of the last mount on `mountpoint` in the mount table (psutil.disk_partitions(all=True):
    device, mountpoint, fstype), or None."""
    found = None
    for m in mounts:
        if m.mountpoint == mountpoint:
            found = (m.device, m.fstype)
    return found


def mounted(mountpoint: Path) -> tuple[str, str] | None:
    """(source, fstype) of what is mounted on `mountpoint` now, or None."""
    return mount_at(psutil.disk_partitions(all=True), str(mountpoint))


def run(argv: list[str], setting: str) -> str:
    """Run a tool (found by labkit.lab.host.tools.tool); its stdout, or MountError naming `setting`."""
    r = subprocess.run([tool(argv[0]), *argv[1:]], capture_output=True, text=True)
    if r.returncode:
        raise MountError(f"{setting}: `{' '.join(argv)}` failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def unmount(argv: list[str], setting: str, tries: int = 20) -> None:
    """Unmount, retrying for a moment while the file system is still busy (a reader closing)."""
    for i in range(tries):
        try:
            run(argv, setting)
            return
        except MountError as e:
            if "busy" not in str(e) or i == tries - 1:
                raise
            time.sleep(0.1)
