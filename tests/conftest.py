"""Shared by tests/unit and tests/integration. Every test below tests/integration is marked `integration`
here, by its folder (it brings the real lab or a real program up); tests/unit/conftest.py refuses to
let a unit test start any program."""
import os
import shutil
from pathlib import Path

import pytest

from labkit.lab.lab import netns


def _lab_possible() -> str | None:
    if not netns.can_use_namespaces():
        return "integration tests need root (network namespaces)"
    for t in ("nginx", "iperf3"):
        if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin"):
            return f"{t} is not installed (make setup)"
    return None


INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
    why = _lab_possible()
    if why and os.environ.get("CI"):
        return  # in CI a missing tool must fail the run, not skip it
    for item in items:
        if why and "integration" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Every test skipped for load (tests/load.py), counted and listed: a busy machine never hides a test."""
    from tests.load import LOAD
    skipped = []
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if LOAD in reason:
            skipped.append((rep.nodeid, reason.split(LOAD, 1)[1]))
    if skipped:
        terminalreporter.section(f"{len(skipped)} test(s) skipped for load", sep="=", yellow=True, bold=True)
        for nodeid, why in skipped:
            terminalreporter.line(f"SKIPPED FOR LOAD {nodeid}: {why}")


def _renamed(path):
    """`path` with every stage, vantage point and iperf3 hop renamed: what the analysis names must come from it."""
    import dataclasses
    st = {s.name: f"st-{s.name}" for s in path.stages}
    vt = {v.name: f"at-{v.name}" for v in path.vantages}
    hp = {h.name: f"hop-{h.name}" for h in path.hops}
    return dataclasses.replace(
        path, hops=tuple(dataclasses.replace(h, name=hp[h.name]) for h in path.hops),
        vantages=tuple(dataclasses.replace(v, name=vt[v.name]) for v in path.vantages),
        stages=tuple(dataclasses.replace(s, name=st[s.name], vantage=vt[s.vantage], hop=hp[s.hop]) for s in path.stages),
        disk_stages=tuple(dataclasses.replace(d, stage=st.get(d.stage)) for d in path.disk_stages))


@pytest.fixture(scope="session")
def renamed():
    """A function: a declared path with its stages, vantage points and hops renamed (st-, at-, hop-)."""
    return _renamed
