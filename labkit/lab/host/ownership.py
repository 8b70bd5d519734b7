"""Which labs exist, who owns them, and how to end one that was left behind.

A lab records itself in STATE_DIR/<name>.json: its owner pid, whether it was meant to
stay up, its namespaces and its service pids, and what else it made (`own`): loop disks, FUSE
mounts, write ceilings, cgroups, directories, each by its own ids. A lab whose owner is gone and
that was not meant to stay up (a crash, a killed Jupyter kernel) is stale: the next lab to start
ends it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil

from . import netns
from ...path import NODE_NAMES, NS_PREFIX
from .process import end_recorded, same_process

STATE_DIR = Path("/run/servelab") if os.geteuid() == 0 else Path(tempfile.gettempdir()) / f"servelab-{os.getuid()}"


def _path(name: str) -> Path:
    return STATE_DIR / f"{name}.json"


def write(name: str, **data) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    old = read(name) or {}
    tmp = _path(name).with_suffix(".tmp")
    tmp.write_text(json.dumps({**old, **data}))
    tmp.replace(_path(name))


def read(name: str) -> dict | None:
    try:
        return json.loads(_path(name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def known() -> list[str]:
    return sorted(p.stem for p in STATE_DIR.glob("*.json")) if STATE_DIR.exists() else []


def lab_namespaces(name: str) -> list[str]:
    if not netns.can_use_namespaces():
        return []
    recorded = {n["name"] for n in ((read(name) or {}).get("path") or {}).get("nodes", [])}   # a path of its own
    wanted = {f"{NS_PREFIX}{name}-{node}" for node in NODE_NAMES | recorded}
    return [ns for ns in netns.list_ns(NS_PREFIX) if ns in wanted]


def orphan_labs() -> set[str]:
    """Labs that have namespaces but no state file (state lost with /run)."""
    if not netns.can_use_namespaces():
        return set()
    names = set()
    for ns in netns.list_ns(NS_PREFIX):
        for node in NODE_NAMES:
            if ns.endswith(f"-{node}"):
                names.add(ns[len(NS_PREFIX):-len(node) - 1])
    return names - set(known())


def owner_alive(st: dict) -> bool:
    """Whether the process that brought the lab up still runs (the same process: its start time too)."""
    return "owner" in st and same_process(st["owner"], st.get("owner_created")) is not None


def stale() -> list[str]:
    out = set(orphan_labs())
    for name in known():
        st = read(name) or {}
        if not st.get("keep") and not owner_alive(st):
            out.add(name)
    return sorted(out)


def own(name: str, key: str, kind: str, rec: dict) -> None:
    """Record something lab `name` made (or is about to make), by its ids; `key` names it in the lab."""
    owned = [o for o in (read(name) or {}).get("owned", []) if o["key"] != key]
    write(name, owned=[*owned, {"key": key, "kind": kind, "rec": rec}])


def disown(name: str, key: str) -> None:
    """Forget a record once what it names has been ended."""
    st = read(name)
    if st is not None:
        write(name, owned=[o for o in st.get("owned", []) if o["key"] != key])


def _enders() -> dict[str, Callable[[dict], list[str]]]:
    from . import cgroups
    from ..conditions import writeback
    from ..conditions.delayfs import DelayMount
    from .loopdisk import LoopDisk

    def tree(rec: dict) -> list[str]:
        if Path(rec["path"]).is_dir() and not os.path.ismount(rec["path"]):
            shutil.rmtree(rec["path"], ignore_errors=True)
            return [f"rm -r {rec['path']}"]
        return []
    return {"loopdisk": LoopDisk.cleanup_recorded, "vmdisk": LoopDisk.cleanup_recorded,   # (vmdisk: before the rename)
            "delaymount": DelayMount.cleanup_recorded,
            "writeback": writeback.uncap, "dir": tree,
            "cgroups": lambda rec: [f"removed cgroup {p}" for p in cgroups.remove_lab(rec["lab"])]}


ORDER = ("cgroups", "delaymount", "writeback", "loopdisk", "vmdisk", "dir")   # processes left in groups first


def end_owned(st: dict) -> list[str]:
    """End what a lab's state records, kind by kind in ORDER (newest first within a kind); a failure
    is logged and the rest still ended."""
    done, enders = [], _enders()
    owned = list(reversed(st.get("owned", [])))
    for o in sorted(owned, key=lambda o: ORDER.index(o["kind"])):
        try:
            done += enders[o["kind"]](o["rec"])
        except Exception as exc:  # noqa: BLE001 - one stuck resource must not keep the others alive
            logging.getLogger("labkit.lab").warning("could not end %s %s: %s", o["kind"], o["key"], exc)
            done.append(f"FAILED to end {o['kind']} {o['key']}: {exc}")
    return done


def end(name: str) -> list[str]:
    """End lab `name` entirely: its recorded processes, what it made, its namespaces (and all in them), its state."""
    done = []
    st = read(name) or {}
    for svc, (pid, created) in st.get("pids", {}).items():
        if isinstance(pid, int) and (what := end_recorded(pid, created)):
            done.append(f"stopped {svc} ({what})")
    done += end_owned(st)
    for ns in lab_namespaces(name):
        pids = netns.delete_ns(ns)
        done.append(f"deleted namespace {ns}" + (f" and ended pids {pids}" if pids else ""))
    _path(name).unlink(missing_ok=True)
    return done


def owner_stamp() -> dict:
    me = psutil.Process()
    return {"owner": me.pid, "owner_created": me.create_time()}


def begin(name: str, **state) -> list[str]:
    """Before lab `name` starts: every stale lab (its owner gone) and an earlier `name` ended, then `name`
    recorded as this process's with `state`. One line per lab ended."""
    done = []
    for other in sorted({name, *stale()}):
        if ended := end(other):
            done.append(f"cleaned {'stale ' if other != name else ''}lab '{other}': " + "; ".join(ended))
    write(name, **owner_stamp(), **state)
    return done
