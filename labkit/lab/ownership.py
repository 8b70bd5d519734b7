"""Which labs exist, who owns them, and how to end one that was left behind.

A lab records itself in STATE_DIR/<name>.json: its owner pid, whether it was meant to
stay up, its namespaces and its service pids. A lab whose owner is gone and that was not
meant to stay up (a crash, a killed Jupyter kernel) is stale: the next lab to start ends it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import psutil

from . import netns
from ..path import NODE_NAMES, NS_PREFIX
from .process import stop_group

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
    wanted = {f"{NS_PREFIX}{name}-{node}" for node in NODE_NAMES}
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


def _owner_alive(st: dict) -> bool:
    try:
        return psutil.Process(st["owner"]).create_time() == st["owner_created"]
    except (psutil.NoSuchProcess, KeyError):
        return False


def stale() -> list[str]:
    out = set(orphan_labs())
    for name in known():
        st = read(name) or {}
        if not st.get("keep") and not _owner_alive(st):
            out.add(name)
    return sorted(out)


def end(name: str) -> list[str]:
    """End lab `name` entirely: its recorded processes, its namespaces (and all in them), its state."""
    done = []
    st = read(name) or {}
    for svc, (pid, created) in st.get("pids", {}).items():
        if not isinstance(pid, int):
            continue
        try:
            if psutil.Process(pid).create_time() == created:
                stop_group(pid)
                done.append(f"stopped {svc} (pid {pid})")
        except psutil.NoSuchProcess:
            pass
    for ns in lab_namespaces(name):
        pids = netns.delete_ns(ns)
        done.append(f"deleted namespace {ns}" + (f" and ended pids {pids}" if pids else ""))
    _path(name).unlink(missing_ok=True)
    return done


def owner_stamp() -> dict:
    me = psutil.Process()
    return {"owner": me.pid, "owner_created": me.create_time()}
