"""The real lab, in network namespaces, with nginx, uwsgi, docker-proxy and iperf3 (root)."""
import json
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from pathlib import Path

from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.lab.host import cgroups
from labkit.lab.lab import DATA, netns, ownership as state
from labkit.lab.lab import Lab
from labkit.errors import LabError
from labkit.clients.registry_api import get
from labkit.measure.pull_at import pull_at
from labkit.measure.survey import run_survey
from labkit.analyze.verdict import verdict

pytestmark = pytest.mark.integration
PROGRAMS = {"nginx", "uwsgi", "iperf3", "docker-proxy"}
MiB = 2**20


# every layer at once: a loop disk behind a FUSE delay with limits, CPU groups, the client's own disk
LAYERED = SREGISTRY_SHIPPED.changed(storage={"disk": "loop", "cache": "cold", "latency_ms": 1, "read_mbps": 500,
                                             "write_mbps": 500},
                                    cpu={"uwsgi_cpus": 1.5, "nginx_cpuset": "0"},
                                    client={"kind": "curl", "dest": "local-disk", "write_mbps": 500})
LABS = ("itest", "boom", "badstart", "orphan", "next", "loop")    # the labs of this module


def footprint():
    """What this module's labs could leave behind (other labs run on this machine meanwhile):
    their namespaces and the programs in them, host links, and under this checkout's data dir
    the programs, loop devices, mounts (FUSE's too) and the labs' cgroups."""
    run = str(DATA.resolve() / "run")
    namespaces = [ns for ns in netns.list_ns("sl-") if any(ns.startswith(f"sl-{lab}-") for lab in LABS)]
    in_ours = {pid for ns in namespaces for pid in netns.ns_pids(ns)}
    procs = sorted(p.pid for p in psutil.process_iter(["name", "cmdline"])
                   if (p.info["name"] in PROGRAMS and p.pid in in_ours) or run in " ".join(p.info["cmdline"] or []))
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.count("\n")
    loops = [ln for ln in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout.splitlines()
             if run in ln]
    mounts = [ln for ln in Path("/proc/mounts").read_text().splitlines() if run in ln]
    groups = sorted(str(r / cgroups.TOP / lab) for r in set(cgroups.features().roots.values()) for lab in LABS
                    if (r / cgroups.TOP / lab).exists())
    return {"namespaces": namespaces, "host_links": links, "programs": procs, "loops": loops,
            "mounts": mounts, "cgroups": groups}


@pytest.fixture(scope="module")
def lab():
    before = footprint()
    with Lab("itest", image_size=8 * MiB, quiet=True) as lab:
        yield lab
    assert footprint() == before


def http_get(ns, host, port, path):
    return get(ns, f"http://{host}:{port}{path}")


def test_every_service_answers(lab):
    health = lab.health()
    assert set(health) >= {"uwsgi", "nginx", "docker-proxy@registry", "iperf3@vm", "manifest via full path"}
    assert all(v == "ok" for v in health.values()), health
    assert {r["namespace"] for r in lab.describe()} == set(lab.plan.namespaces)


def test_manifest_through_the_full_path_has_sregistrys_shape(lab):
    p = lab.plan
    status, body = http_get(p.ns("compute"), p.ip("vm"), p.port("published"), f"/api/container/{lab.image.uri}")
    man = json.loads(body)
    assert status == 200
    assert set(man) == {"id", "name", "image", "tag", "add_date", "metrics", "version", "frozen", "metadata", "collection"}
    assert man["version"] == lab.image.sha256 and man["image"].startswith(f"http://{p.ip('vm')}/containers/")


@pytest.mark.parametrize("path", ["/api/container/../../../etc/passwd:x", "/containers/1/download/../../etc/passwd",
                                  "/images/../../../../etc/passwd"])
def test_traversal_is_refused_at_nginx_and_uwsgi(lab, path):
    p = lab.plan
    for ns, host, port in [(p.ns("compute"), p.ip("vm"), p.port("published")),
                           (p.ns("nginx"), p.ip("uwsgi"), p.port("uwsgi_http"))]:
        status, body = http_get(ns, host, port, path)
        assert status in (400, 404) and b"root:" not in body


def test_survey_measures_every_hop_with_verified_pulls(lab):
    s = run_survey(lab, parallel=3, iperf_seconds=1, progress=False)
    t = s.table
    hops = t[t.kind == "iperf3"]
    assert len(hops) == 5 and (hops.MBps > 0).all() and (hops.failures == 0).all()
    pulls = t[t.kind == "pull"]
    assert set(pulls.point) == {"uwsgi", "nginx", "published port", "full path"} and set(pulls.parallel) == {1, 3}
    assert (pulls.MBps > 0).all() and pulls.sha256_ok.all() and (pulls.failures == 0).all()
    assert pulls.busiest.isin(["uwsgi", "nginx", "docker-proxy@registry", "docker-proxy@iperf3"]).all()
    assert verdict(t, path=lab.path).evidence and s.path == lab.path


def test_an_exception_inside_the_lab_leaves_nothing_behind():
    before = footprint()
    with pytest.raises(RuntimeError, match="injected"):
        with Lab("boom", LAYERED, image_size=1 * MiB, quiet=True):
            during = footprint()
            assert len(during["namespaces"]) == len(before["namespaces"]) + 4
            assert len(during["loops"]) == len(before["loops"]) + 2           # the VM's and the client's disks
            assert len(during["mounts"]) == len(before["mounts"]) + 3         # both, and the FUSE delay
            assert len(during["cgroups"]) > len(before["cgroups"])
            raise RuntimeError("injected")
    assert footprint() == before


def test_a_failing_start_leaves_nothing_behind(monkeypatch):
    before = footprint()
    monkeypatch.setenv("SERVELAB_DOCKER_PROXY", "/bin/false")
    with pytest.raises(Exception, match="docker-proxy"):
        Lab("badstart", LAYERED, image_size=1 * MiB, quiet=True).up()
    assert footprint() == before


def test_a_killed_owner_is_cleaned_by_the_next_start(tmp_path):
    """A lab whose Python process is SIGKILLed (a killed kernel) is ended by the next lab's start."""
    before = footprint()
    code = textwrap.dedent("""
        import sys, time
        from labkit.lab.lab import Lab
        from labkit.config.settings import LabSettings
        Lab("orphan", LabSettings.model_validate_json(sys.argv[1]), image_size=1 << 20, quiet=True).up()
        print("up", flush=True)
        time.sleep(120)
    """)
    child = subprocess.Popen([sys.executable, "-c", code, LAYERED.model_dump_json()], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "up"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert "orphan" in state.stale() and len(state.lab_namespaces("orphan")) == 4
    left = footprint()
    assert len(left["loops"]) == len(before["loops"]) + 2 and len(left["mounts"]) == len(before["mounts"]) + 3
    with Lab("next", image_size=1 * MiB, quiet=True):
        assert state.lab_namespaces("orphan") == []
    assert footprint() == before


def test_loopback_mode_runs_the_same_services_and_says_what_it_cannot_separate():
    before = footprint()
    with Lab("loop", image_size=1 * MiB, namespaced=False, quiet=True) as lab:
        assert lab.plan.namespaces == [] and any("127.0.0.1" in n for n in lab.notes)
        assert all(v == "ok" for v in lab.health().values())
        for v in filter(lab.plan.serves, lab.path.vantages):   # the image URL must lead back through the same port
            run = pull_at(lab, v.name)
            assert run.ok and run.results[0].sha256_ok, (v.name, run.errors)
    assert footprint() == before


def test_namespaces_need_root_says_so(monkeypatch):
    monkeypatch.setattr(netns, "can_use_namespaces", lambda: False)
    with pytest.raises(LabError, match="need root"):
        Lab("x", namespaced=True)


def test_a_real_pull_captured_at_every_hop_gives_a_sane_analysis(lab, tmp_path, monkeypatch):
    from labkit.measure.capture import capture_pull
    from labkit.app.catalog import ensure_image
    from labkit.analyze.tcpflow import analyze
    from labkit.analyze.windows import flow_verdict

    # a pull long enough for several tcp_info samples of each sender
    monkeypatch.setattr(lab, "image", ensure_image(lab.images_dir, 192 * MiB))

    cap = capture_pull(lab, "full path", max_packets=400_000, max_seconds=30, out_dir=tmp_path)
    assert cap.pull["ok"] and cap.pull["sha256_ok"]
    assert [s.point for s in cap.stats] == ["link", "docker0→nginx", "nginx→uwsgi"]
    for st in cap.stats:
        assert st.packets > 0 and st.kernel_drops >= 0 and st.stopped_by == "pull finished"
        flows = analyze(st.pcap)
        main = flows[0]                      # the direction carrying the most data
        assert main.bytes >= lab.image.size  # the image (plus HTTP/uwsgi headers) went this way
        assert main.handshake_seen and main.window_scale is not None and main.max_window > 0
        assert main.rtt_ms_median is not None and main.rtt_ms_median > 0
        assert main.series.in_flight.max() > 0
        v = flow_verdict(main, cap.tcp_info[st.point])
        assert v.kind in {"receiver-window limited", "sender-buffer limited", "application-limited",
                          "network/link limited"}
    assert all(cap.tcp_info.values()), "a sender's tcp_info was not sampled during the pull"
