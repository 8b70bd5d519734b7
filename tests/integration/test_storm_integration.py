"""A Locust pull storm in the real lab: 4 compute nodes behind one switch, a worker in each (root)."""
import os
import re
import signal
import subprocess
import time
import sys
from pathlib import Path

import psutil
import pytest

from labkit.analyze.storm_tables import STORM_COLUMNS, jain
from labkit.errors import LabError
from labkit.lab.lab import Lab
from labkit.measure import locust_storm as storm_mod
from labkit.measure.locust_storm import StormSpec
from labkit.experiments.storm import run_storm

pytestmark = pytest.mark.integration
MiB = 2**20
ROOT = Path(__file__).resolve().parents[2]


def locust_pids() -> set[int]:
    """Locust processes started from this worktree's locustfile (master and workers), wherever they run."""
    out = set()
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "-m locust" in cmd and str(storm_mod.LOCUSTFILE) in cmd:
            out.add(p.pid)
    return out


@pytest.fixture(scope="module")
def lab():
    with Lab("st-storm", image_size=8 * MiB, compute_nodes=4, quiet=True) as lab:
        yield lab


def test_a_storm_from_four_compute_nodes_verifies_every_pull(lab):
    before = locust_pids()
    s = run_storm(lab, StormSpec(users=8, pulls=24))
    row = s.row()
    assert list(row)[:len(STORM_COLUMNS)] == STORM_COLUMNS
    assert (row["pulls"], row["ok"], row["failures"], row["harness_failures"]) == (24, 24, 0, 0)
    assert s.pulls.ok.all() and s.pulls.sha256_ok.all() and (s.pulls.bytes == lab.image.size).all()
    assert sorted(s.pulls.ticket) == list(range(1, 25))                  # exactly the budget, each ticket once
    assert set(s.pulls.node) == set(lab.path.compute) and s.meta["workers"] == list(lab.path.compute)
    assert 0 < row["jain"] <= 1 and row["jain"] == pytest.approx(jain(s.pulls.MBps), abs=1e-3)
    assert row["per_pull_min"] <= row["per_pull_median"] <= row["per_pull_max"] and row["MBps"] > 0
    assert len(s.nodes()) == 4 and s.nodes().pulls.sum() == 24 and s.failures().empty
    assert locust_pids() == before                                       # master and workers ended


def test_failures_are_counted_by_kind_through_locust(lab):
    """Ground truth: a wrong sha256 makes every pull a checksum failure; the registry's, not the harness's."""
    s = run_storm(lab, StormSpec(users=4, pulls=8, sha256="0" * 64))
    row = s.row()
    assert (row["pulls"], row["ok"], row["fail_checksum"], row["harness_failures"]) == (8, 0, 8, 0)
    assert list(s.failures().kind) == ["checksum"] and (s.pulls.bytes == lab.image.size).all()


def test_a_storm_that_fails_ends_its_master_and_workers_by_their_ids(lab, monkeypatch):
    before = locust_pids()
    seen = {}

    def boom(master, bound_s):
        seen["pids"] = locust_pids() - before
        raise LabError("injected: the storm is stopped midway")
    monkeypatch.setattr(storm_mod, "_wait", boom)
    with pytest.raises(LabError, match="injected"):
        run_storm(lab, StormSpec(users=4, pulls=4))
    assert len(seen["pids"]) == 1 + 4                 # the master and a worker per compute node were running
    assert locust_pids() == before                    # and none is left (a zombie has no command line)


def test_the_cluster_commands_run_the_same_storm_master_on_one_node_workers_on_the_others(lab, tmp_path):
    """`labkit storm --master` in one compute namespace, `labkit storm --worker --master-host H` in the others."""
    p = lab.plan
    nodes = list(p.path.compute)
    master_ip = p.ip(nodes[0])
    node, ns, host, port = p.compute_endpoints()[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "labkit.cli", "storm"]
    procs = []
    try:
        master = subprocess.Popen(["ip", "netns", "exec", ns, *cli, "--master", "--url", f"http://{host}:{port}",
                                   "--image", lab.image.uri, "--workers", "3", "--users", "6", "--pulls", "12",
                                   "--out", str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, start_new_session=True)
        procs.append(master)
        for n in nodes[1:]:
            procs.append(subprocess.Popen(["ip", "netns", "exec", p.ns(n), *cli, "--worker", "--master-host", master_ip,
                                           "--node", n], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        out, _ = master.communicate(timeout=60)
        assert master.returncode == 0, out
        for w in procs[1:]:
            assert w.wait(timeout=20) == 0                               # the master's end ends the workers
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    records = list(tmp_path.glob("*-pulls.jsonl"))
    assert len(records) == 1 and len(records[0].read_text().splitlines()) == 12
    assert re.search(r"^harness_failures\s+0$", out, re.M) and re.search(r"^ok\s+12$", out, re.M), out
    assert list(tmp_path.glob("*-storm.csv")), "the master saves its pulls table where --out says"
    assert set(nodes[1:]) <= set(out.split()), out                       # the per-node table names the workers


def command_line(p) -> str:
    """A process's command line; '' for one that ended meanwhile (a zombie this process has yet to reap)."""
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def test_a_worker_lost_mid_storm_leaves_its_pulls_missing_counted_as_the_harnesss(lab, monkeypatch):
    """Ground truth for harness failures: SIGKILL one worker while its pull runs; the storm still ends
    (bounded), the other nodes finish the budget, and the lost pull is counted as missing."""
    slow = lab.settings.changed(links={"wan": "160mbit"})     # 20 MB/s shared: a round of pulls takes ~2 s
    old = lab.settings
    lab.apply(slow)
    real_wait = storm_mod._wait
    victim, t_kill = {}, 0.0

    def kill_one_worker_then_wait(master, bound_s):
        end = time.monotonic() + 60
        while "All users spawned" not in master.log.read_text() and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(0.5)                                      # the first round is in flight
        worker = next(p for p in psutil.Process(master.pid).parent().children()
                      if "--worker" in command_line(p))
        victim["pid"] = worker.pid
        os.kill(worker.pid, signal.SIGKILL)
        nonlocal t_kill
        t_kill = time.time()
        return real_wait(master, bound_s)
    monkeypatch.setattr(storm_mod, "_wait", kill_one_worker_then_wait)
    try:
        t0 = time.monotonic()
        s = run_storm(lab, StormSpec(users=4, pulls=8, deadline=6, timeout=2))
        took = time.monotonic() - t0
    finally:
        lab.apply(old)
    row = s.row()
    assert s.missing >= 1 and row["harness_failures"] == s.missing + row["fail_other"], row
    assert len(s.meta["workers_lost"]) == 1 and s.meta["workers_lost"][0] not in set(s.pulls.node[s.pulls.start > t_kill])
    assert row["pulls"] == 8 and len(s.pulls) == 8 - s.missing and s.pulls.ok.all()
    assert took < 6 + 2 + 5 + 30, took                       # the master's last call, not the run-time bound
