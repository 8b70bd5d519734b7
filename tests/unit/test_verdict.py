"""The verdict on crafted surveys with known answers: one test per rule, and the four wrong verdicts of issue 9."""
import json

import pandas as pd
import pytest

from labkit.analyze.causes import connection_order, pipeline
from labkit.analyze.evidence import path_view
from labkit.analyze.noise import Rate, above, reaches, within_noise
from labkit.analyze.verdict import verdict
from labkit.config.overrides import apply_overrides
from labkit.config.presets import preset
from labkit.config.settings import LabSettings
from labkit.path import CLIENT, PATH

S2018 = preset("sregistry-2018-10")
REC = preset("recommended")
FAST = 2000.0
# tcp_info as the lab shows it (medians over runs), per kind of sender
APP = {"busy_pct": 5, "rwnd_pct": 0, "sndbuf_pct": 0, "app_pct": 95, "net_pct": 5, "delivery_MBps": 900}
NET = lambda rate: {"busy_pct": 98, "rwnd_pct": 1, "sndbuf_pct": 0, "app_pct": 2, "net_pct": 97, "delivery_MBps": rate}
RWND = {"busy_pct": 97, "rwnd_pct": 80, "sndbuf_pct": 0, "app_pct": 3, "net_pct": 17, "delivery_MBps": 800}


def r(med, spread=0.05):
    return (med, med * (1 - spread), med * (1 + spread))


def survey(pulls, hops=None, cpu=None, tcp=None, parallel=None, rows=None):
    """(table, detail) of a survey: pulls {vantage: (median, lo, hi)}, hops {hop: (median, lo, hi)} (others FAST),
    cpu {vantage: {service: (ran %, waited %)}}, tcp {vantage: {(connection, side): numbers}}."""
    hops = {h.name: r(FAST) for h in PATH.hops} | (hops or {})
    t = [{"kind": "iperf3", "point": h, "parallel": 1, "MBps": m, "MBps_lo": lo, "MBps_hi": hi, "runs": 1,
          "failures": 0, "error": ""} for h, (m, lo, hi) in hops.items()]
    for v, (m, lo, hi) in pulls.items():
        t.append({"kind": "pull", "point": v, "parallel": 1, "MBps": m, "MBps_lo": lo, "MBps_hi": hi, "runs": 3,
                  "failures": 0, "error": "", **(rows or {}).get(v, {})})
    for v, (n, (m, lo, hi)) in (parallel or {}).items():
        t.append({"kind": "pull", "point": v, "parallel": n, "MBps": m, "MBps_lo": lo, "MBps_hi": hi, "runs": 3,
                  "failures": 0, "error": ""})
    d = []
    for v in pulls:
        for svc, (ran, waited) in (cpu or {}).get(v, {}).items():
            d.append({"point": v, "parallel": 1, "run": 0, "source": "cpu", "name": svc, "side": "",
                      "cpu_max_proc": ran, "cpu_total": ran, "wait_max_proc": waited})
        for (conn, side), nums in (tcp or {}).get(v, {}).items():
            d.append({"point": v, "parallel": 1, "run": 0, "source": "tcp", "name": conn, "side": side, **nums})
    return pd.DataFrame(t), pd.DataFrame(d)


# --- noise -------------------------------------------------------------------------------------
def test_noise_rule_uses_the_floor_and_the_runs_spread():
    assert within_noise(Rate(100, 95, 105, 3), Rate(120, 118, 122, 3))           # 17% < 25% floor
    assert not within_noise(Rate(100, 98, 102, 3), Rate(140, 138, 142, 3))       # 29%, tight runs
    assert within_noise(Rate(100, 60, 140, 3), Rate(150, 110, 190, 3))           # 33%, inside the spread
    assert above(Rate(300, 290, 310), Rate(100, 95, 105)) and not above(Rate(100, 95, 105), Rate(300, 290, 310))
    assert reaches(Rate(96, 95, 97), Rate(97, 96, 97)) and reaches(Rate(2100, 2000, 2200), Rate(1450, 1400, 1500))
    assert str(Rate(96.4, 95, 97, 3)) == "96 MB/s (95–97, 3 runs)"
    assert Rate.of({"MBps": 50.0, "MBps_lo": float("nan")}) == Rate(50.0, 50.0, 50.0, 1)


# --- the four wrong verdicts of issue 9 ------------------------------------------------------------
def test_issue_vm_nginx_link_at_800mbit_is_the_link_not_uwsgi():
    t, d = survey({"uwsgi": r(245), "nginx": r(96, .01), "published port": r(96, .01), "full path": r(96, .01)},
                  hops={"vm→nginx": r(96.6, .01), "compute→published port→nginx": r(96.6, .01)},
                  cpu={"nginx": {"nginx": (13, 2)}},
                  tcp={"nginx": {("docker0→nginx", "sender"): NET(95.4), ("nginx→uwsgi", "sender"): APP},
                       "full path": {("link", "sender"): APP, ("docker0→nginx", "sender"): NET(95.3)}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause, v.at_capacity, v.capacity_hop) == ("nginx", "link", True, "vm→nginx")
    assert "At capacity" in v.summary and "96 MB/s" in v.summary and "uwsgi" not in v.summary
    assert any("docker0→nginx sender: busy 98%" in e and "delivery rate 95 MB/s" in e for e in v.evidence)


def test_issue_wan_at_1600mbit_is_the_wan_at_capacity():
    t, d = survey({"uwsgi": r(1700), "nginx": r(383), "published port": r(417), "full path": r(188, .02)},
                  hops={"compute→vm": r(192.4, .01), "compute→published port→nginx": r(192.3, .01)},
                  cpu={"nginx": {"nginx": (98, 0)}},
                  tcp={"full path": {("link", "sender"): NET(191), ("docker0→nginx", "sender"): RWND}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause, v.at_capacity, v.capacity_hop) == ("full path", "link", True, "compute→vm")
    assert "uwsgi" not in v.summary


def test_issue_accel_with_the_uwsgi_link_shaped_ignores_the_idle_hop():
    s = apply_overrides(REC, ["links.uwsgi=800mbit"])
    t, d = survey({"nginx": r(1415, .2), "published port": r(1322, .2), "full path": r(1350, .2)},
                  hops={"nginx→uwsgi": r(96.7, .01), "compute→uwsgi (routed)": r(96.7, .01),
                        "compute→published port→nginx": r(1454, .05)},
                  cpu={"nginx": {"nginx": (5, 1)}})
    v = verdict(t, path=PATH, settings=s, detail=d)
    assert v.hop != "uwsgi" and "nginx→uwsgi" not in v.summary and v.capacity_hop != "nginx→uwsgi"
    assert not (v.hop == "nginx" and v.cause == "cpu")                # nginx at 5% is not CPU-bound
    assert "%" not in v.summary.split("within noise")[0] or "lost" not in v.summary
    assert any("uwsgi carries no image" in n for n in v.notes)
    assert v.at_capacity                                              # 1350 is within noise of 1454


def test_issue_recommended_unshaped_within_noise_is_no_finding_at_nginx():
    t, d = survey({"nginx": (1415, 900, 1900), "published port": (1322, 800, 1800), "full path": (2112, 1300, 2300)},
                  hops={"compute→vm": r(2500), "vm→nginx": r(2157), "compute→published port→nginx": r(1454)},
                  cpu={"nginx": {"nginx": (15, 3)}})
    v = verdict(t, path=PATH, settings=REC, detail=d)
    assert v.at_capacity and "lost" not in v.summary and v.cause != "cpu"
    assert not v.summary.startswith("nginx binds")


# --- one test per rule -----------------------------------------------------------------------------
def test_the_stage_where_throughput_stops_falling_binds_cpu_pegged():
    t, d = survey({"uwsgi": r(1690), "nginx": r(423), "published port": r(340), "full path": r(430)},
                  cpu={"nginx": {"nginx": (96, 2), "uwsgi": (5, 0)}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause, v.at_capacity) == ("nginx", "cpu", False)
    assert "nginx ran 96% of a core: no CPU to spare" in v.evidence
    assert any("falls from 1690 MB/s" in e and "423 MB/s" in e for e in v.evidence)


def test_a_process_starved_of_cpu_counts_its_run_queue_wait():
    t, d = survey({"uwsgi": r(1400), "nginx": r(290), "published port": r(280), "full path": r(270)},
                  cpu={"nginx": {"nginx": (40, 55)}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause) == ("nginx", "cpu")
    assert "nginx ran 40% of a core and waited for a CPU 55% more: no CPU to spare" in v.evidence


def test_a_cpu_quota_is_the_allowance():
    s = apply_overrides(S2018, ["cpu.proxy_cpus=0.1", "publish.iptables=false"])
    t, d = survey({"uwsgi": r(1500), "nginx": r(400), "published port": r(90), "full path": r(88)},
                  cpu={"published port": {"docker-proxy@registry": (9.6, 0), "docker-proxy@iperf3": (0, 0),
                                          "nginx": (20, 0)}})
    v = verdict(t, path=PATH, settings=s, detail=d)
    assert (v.hop, v.cause) == ("published port", "cpu")
    assert "96% of its 0.1 CPU (cpu.proxy_cpus=0.1)" in str(v)


def test_the_pipeline_rule_finds_the_slow_reader():
    tcp = {("link", "sender"): APP, ("docker0→nginx", "sender"): {**APP, "app_pct": 40, "busy_pct": 60},
           ("nginx→uwsgi", "sender"): RWND, ("nginx→uwsgi", "receiver"): {"rcvbuf": 1.2e6, "fill_pct": 99}}
    t, d = survey({"uwsgi": r(1400), "nginx": r(330), "published port": r(300), "full path": r(290)},
                  cpu={"nginx": {"nginx": (60, 10)}}, tcp={"full path": tcp, "nginx": tcp})
    view = path_view(t, PATH, d, S2018)
    assert connection_order(view) == ["link", "docker0→nginx", "nginx→uwsgi"]
    p = pipeline(view)
    assert (p.stage, p.kind) == ("nginx", "reader")
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause) == ("nginx", "cpu")
    assert any("rwnd-limited 80%" in e for e in v.evidence) and any("99% full" in e for e in v.evidence)
    assert any("tcp_info of the client's pull agrees" in e for e in v.evidence)


def test_a_reader_that_is_not_busy_waits_on_something_else():
    tcp = {("link", "sender"): APP, ("nginx→uwsgi", "sender"): RWND}
    t, d = survey({"uwsgi": r(1400), "nginx": r(200), "published port": r(190), "full path": r(195)},
                  cpu={"nginx": {"nginx": (20, 3)}}, tcp={"full path": tcp, "nginx": tcp})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause) == ("nginx", "app")


def test_tcp_info_breaks_a_tie_the_pulls_cannot():
    """nginx 231 and the client's 186 are within noise: the link's busy sender says the WAN."""
    t, d = survey({"uwsgi": r(1530), "nginx": (231, 128, 441), "published port": (221, 174, 341),
                   "full path": (186, 178, 191)},
                  hops={"compute→vm": r(192, .01), "compute→published port→nginx": r(192, .01)},
                  tcp={"full path": {("link", "sender"): NET(190), ("docker0→nginx", "sender"): RWND}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause, v.capacity_hop) == ("full path", "link", "compute→vm")


def test_a_small_receive_buffer_at_the_client_is_a_window():
    link = {("link", "sender"): RWND, ("link", "receiver"): {"rcvbuf": 8192, "fill_pct": 57}}
    t, d = survey({"uwsgi": r(1200), "nginx": r(330), "published port": r(290), "full path": r(48)},
                  hops={"compute→vm": r(71), "compute→published port→nginx": r(64)},
                  tcp={"full path": link}, parallel={"full path": (4, r(98))})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause) == ("full path", "window")
    assert "8 KiB" in v.summary and any("4 pulls at once" in e for e in v.evidence)
    assert v.next is None or v.next.hop != "published port"      # its hop crosses the same client


def test_a_slow_client_is_the_client():
    link = {("link", "sender"): RWND, ("link", "receiver"): {"rcvbuf": 6e6, "fill_pct": 97}}
    t, d = survey({"uwsgi": r(1200), "nginx": r(330), "published port": r(300), "full path": r(50)},
                  tcp={"full path": link}, cpu={"full path": {CLIENT: (30, 0)}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause) == ("full path", "client")
    assert any("97% full" in e for e in v.evidence)


def test_a_pegged_pulling_client_is_named_even_at_an_inner_vantage():
    t, d = survey({"nginx": r(900), "published port": r(880), "full path": r(870)},
                  hops={"compute→vm": r(2500), "vm→nginx": r(2400), "compute→published port→nginx": r(2300)},
                  cpu={v: {CLIENT: (75, 20), "nginx": (20, 0)} for v in ("nginx", "published port", "full path")})
    v = verdict(t, path=PATH, settings=REC, detail=d)
    assert (v.hop, v.cause) == ("full path", "client")


def test_a_slow_disk_binds_where_storage_is_modelled():
    t, d = survey({"uwsgi": r(50), "nginx": r(49), "published port": r(50), "full path": r(49)},
                  cpu={"uwsgi": {"uwsgi": (3, 0)}}, rows={"uwsgi": {"disk_read_MB": 67.1}})
    v = verdict(t, path=PATH, settings=S2018, detail=d, meta={"image_bytes": 64 * 2**20})
    assert (v.hop, v.cause) == ("uwsgi", "disk")
    assert "image read: 67 MB on the disk's device counters per pull of 67 MB (50 MB/s)" in str(v)
    t, d = survey({"uwsgi": r(50), "nginx": r(49), "published port": r(50), "full path": r(49)},
                  cpu={"uwsgi": {"uwsgi": (3, 0)}}, rows={"uwsgi": {"disk_read_MB": 0.0}})   # a warm cache
    assert verdict(t, path=PATH, settings=S2018, detail=d, meta={"image_bytes": 64 * 2**20}).cause != "disk"


def test_a_full_send_buffer_is_a_window():
    tcp = {("link", "sender"): {**APP, "sndbuf_pct": 60, "app_pct": 10}}
    t, d = survey({"uwsgi": r(1400), "nginx": r(400), "published port": r(380), "full path": r(120)},
                  tcp={"full path": tcp})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause) == ("full path", "window")


def test_a_killed_service_is_named_where_pulls_fail():
    t, d = survey({"uwsgi": r(2000), "nginx": r(440), "published port": (0, 0, 0), "full path": (0, 0, 0)})
    t.loc[t.point.isin(["published port", "full path"]), ["failures", "error"]] = [3, "ConnectionRefusedError: refused"]
    v = verdict(t, path=PATH, settings=S2018, detail=d, meta={"down": {"docker-proxy@registry": "was killed by signal 9"}})
    assert (v.hop, v.cause) == ("published port", "down")
    assert v.summary == "docker-proxy@registry down: pulls fail at published port."
    assert "docker-proxy@registry: was killed by signal 9" in v.evidence and "refused" in str(v)
    t2, _ = survey({"uwsgi": r(600), "nginx": (0, 0, 0), "published port": (0, 0, 0), "full path": (0, 0, 0)})
    assert verdict(t2, path=PATH).summary == "Pulls fail at nginx."


def test_two_bottlenecks_name_the_tighter_and_the_next():
    t, d = survey({"uwsgi": r(1400), "nginx": r(96, .01), "published port": r(95, .01), "full path": r(96, .01)},
                  hops={"vm→nginx": r(97, .01), "compute→published port→nginx": r(96, .01), "compute→vm": r(145, .01)},
                  tcp={"nginx": {("docker0→nginx", "sender"): NET(95)}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause, v.capacity_hop) == ("nginx", "link", "vm→nginx")
    assert (v.next.hop, v.next.cause, round(v.next.ceiling)) == ("full path", "link", 145)
    assert "next: full path, link capacity: the compute→vm hop's iperf3 is 145 MB/s" in str(v)


def test_an_upstream_constraint_is_next_when_close():
    t, d = survey({"uwsgi": r(150, .02), "nginx": r(96, .01), "published port": r(95, .01), "full path": r(96, .01)},
                  hops={"vm→nginx": r(97, .01), "compute→published port→nginx": r(96, .01)},
                  cpu={"uwsgi": {"uwsgi": (97, 0)}})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert v.hop == "nginx" and (v.next.hop, v.next.cause) == ("uwsgi", "cpu")


def test_a_far_constraint_is_not_next():
    t, d = survey({"uwsgi": r(1700), "nginx": r(96, .01), "published port": r(96, .01), "full path": r(96, .01)},
                  hops={"vm→nginx": r(97, .01), "compute→published port→nginx": r(96, .01)})
    assert verdict(t, path=PATH, settings=S2018, detail=d).next is None


# --- the API around it ------------------------------------------------------------------------------
def test_verdict_takes_the_table_alone_and_the_survey():
    t, d = survey({"uwsgi": r(1690), "nginx": r(423), "published port": r(340), "full path": r(430)})
    v = verdict(t, path=PATH)
    assert v.hop == "nginx" and v.evidence and isinstance(v.stages, pd.DataFrame)
    assert list(v.stages.stage) == [s.name for s in PATH.carrying(LabSettings())] and v.stages.binds.sum() == 1
    old = t[["kind", "point", "parallel", "MBps", "failures", "error"]]            # a table saved before issue 9
    assert verdict(old, path=PATH).hop == "nginx"

    class FakeSurvey:
        table, detail, settings, meta, path = t, d, S2018.model_dump(mode="json"), {}, PATH
    assert verdict(FakeSurvey()).hop == "nginx"
    with pytest.raises(TypeError, match="needs the path it was measured on"):
        verdict(t)


def test_verdict_as_json():
    t, d = survey({"uwsgi": r(1400), "nginx": r(96, .01), "published port": r(95, .01), "full path": r(96, .01)},
                  hops={"vm→nginx": r(97, .01), "compute→published port→nginx": r(96, .01), "compute→vm": r(145, .01)})
    out = json.loads(json.dumps(verdict(t, path=PATH, settings=S2018, detail=d).to_dict()))
    assert set(out) >= {"hop", "cause", "evidence", "next", "at_capacity", "capacity_hop", "summary"}
    assert out["next"]["hop"] == "full path" and out["hop"] == "nginx"


def test_no_pulls_no_verdict():
    t, _ = survey({})
    assert verdict(t, path=PATH).summary.startswith("no pulls")


@pytest.mark.parametrize("case", __import__("labkit.experiments.matrix", fromlist=["CASES"]).CASES, ids=lambda c: c.name)
def test_every_matrix_case_names_declared_stages(case):
    names = {s.name for s in PATH.stages}
    assert case.stage in names | {None} and case.next in names | {None}
    apply_overrides(preset(case.preset), list(case.injection.set))      # every case's settings are valid


def test_a_bursty_sender_waiting_on_its_app_is_not_held_by_its_reader():
    """uwsgi under a 0.02 CPU quota: it waits on itself 63% of the time, hits nginx's window in bursts (31%)
    while nginx's buffer stays empty: the source binds, not nginx."""
    tcp = {("link", "sender"): APP, ("docker0→nginx", "sender"): APP,
           ("nginx→uwsgi", "sender"): {**RWND, "rwnd_pct": 31, "app_pct": 63, "busy_pct": 37},
           ("nginx→uwsgi", "receiver"): {"rcvbuf": 1.8e6, "fill_pct": 0}}
    s = apply_overrides(S2018, ["cpu.uwsgi_cpus=0.02"])
    t, d = survey({"uwsgi": (105, 86, 120), "nginx": (131, 105, 168), "published port": (145, 124, 151),
                   "full path": (141, 115, 147)}, cpu={"uwsgi": {"uwsgi": (2, 0)}, "nginx": {"nginx": (26, 5)}},
                  tcp={"full path": tcp})
    assert pipeline(path_view(t, PATH, d, s)).kind == "source"
    v = verdict(t, path=PATH, settings=s, detail=d)
    assert (v.hop, v.cause) == ("uwsgi", "cpu") and "of its 0.02 CPU (cpu.uwsgi_cpus=0.02)" in str(v)


def test_a_saturated_upstream_program_binds_where_the_next_stage_only_adds_cpu_work():
    """seed-poster on 2 cores: pulls fall at the published port, but nginx has no CPU to spare during those
    very pulls while docker-proxy has: nginx binds, the publish step's copy comes next."""
    cpu = {"nginx": {"nginx": (86, 5)}, "published port": {"nginx": (72, 32), "docker-proxy@registry": (58, 21)},
           "full path": {"nginx": (81, 14), "docker-proxy@registry": (47, 28)}}
    t, d = survey({"uwsgi": r(1423), "nginx": (373, 311, 382), "published port": (252, 204, 282),
                   "full path": (267, 258, 350)}, cpu=cpu)
    v = verdict(t, path=PATH, settings=preset("seed-poster"), detail=d)
    assert (v.hop, v.cause) == ("nginx", "cpu") and (v.next.hop, v.next.cause) == ("published port", "cpu")
    assert "during the pulls at published port: nginx ran 72% of a core and waited for a CPU 32% more" in str(v)


SLOW_CLIENT = {   # (link sender, link receiver, client_write_MB, client MB/s, what the verdict must cite)
    # the client waits on its own disk: it wrote the whole image to the device during the pull
    "own disk": (RWND, {"rcvbuf": 6e6, "fill_pct": 99}, 66.0, 40, "client write: 66 MB"),
    # the sender waits on docker-proxy 41% of the time, rwnd-limited only 34%, the client's socket holds
    # 16 MB it has not read, two-thirds full: the client does not keep up, and 46 of the 67 MB pulled
    # reached its device while the pull ran (the rest sat in its bounded dirty pages)
    "unread data": ({**RWND, "rwnd_pct": 34, "app_pct": 41, "busy_pct": 59, "snd_wnd_min": 0},
                    {"rcvbuf": 16e6, "fill_pct": 66, "rqueue_max": 15.8e6}, 46.0, 32,
                    "of the pull's bytes reached the device while it ran"),
}


@pytest.mark.parametrize("case", SLOW_CLIENT)
def test_a_client_writing_to_a_slow_disk_is_the_client(case):
    snd, rcv, written, mbps, cited = SLOW_CLIENT[case]
    s = apply_overrides(S2018, ["client.dest=local-disk", "client.write_mbps=20"])
    t, d = survey({"uwsgi": r(1900), "nginx": r(418), "published port": r(338), "full path": r(mbps)},
                  tcp={"full path": {("link", "sender"): snd, ("link", "receiver"): rcv}},
                  rows={"full path": {"client_write_MB": written}})
    v = verdict(t, path=PATH, settings=s, detail=d, meta={"image_bytes": 64 * 2**20})
    assert (v.hop, v.cause) == ("full path", "client") and cited in str(v)


def test_a_small_but_full_receive_buffer_is_a_slow_reader_not_a_window():
    """nginx's socket from uwsgi: 232 KiB, 96% full: the kernel did not grow it because nginx does not drain it."""
    tcp = {("link", "sender"): APP, ("nginx→uwsgi", "sender"): RWND,
           ("nginx→uwsgi", "receiver"): {"rcvbuf": 232 * 1024, "fill_pct": 96, "rqueue_max": 220e3}}
    t, d = survey({"uwsgi": (511, 224, 754), "nginx": (239, 120, 297), "published port": (182, 122, 297),
                   "full path": (167, 165, 259)}, cpu={"nginx": {"nginx": (33, 46)}}, tcp={"full path": tcp, "nginx": tcp})
    v = verdict(t, path=PATH, settings=S2018, detail=d)
    assert (v.hop, v.cause) == ("nginx", "cpu")


def test_under_dnat_one_flow_crosses_two_links_and_the_first_at_the_rate_binds():
    """Docker's DNAT (the default): "link" and "docker0→nginx" are one TCP flow, its sender nginx's socket."""
    nginx_shaped = {("link", "sender"): NET(95.4), ("docker0→nginx", "sender"): NET(95.4)}
    t, d = survey({"uwsgi": r(1240), "nginx": r(96, .01), "published port": r(96, .01), "full path": r(97, .01)},
                  hops={"vm→nginx": r(96.6, .01)}, tcp={"nginx": nginx_shaped, "full path": nginx_shaped})
    assert verdict(t, path=PATH, settings=S2018, detail=d).hop == "nginx"
    wan_shaped = {("link", "sender"): NET(95.4), ("docker0→nginx", "sender"): NET(95.4)}
    t, d = survey({"uwsgi": r(1240), "nginx": r(1100), "published port": r(1050), "full path": r(96, .01)},
                  hops={"compute→vm": r(96.6, .01)}, tcp={"full path": wan_shaped})
    assert verdict(t, path=PATH, settings=S2018, detail=d).hop == "full path"


def test_tls_at_nginx_on_a_slow_core_is_the_tls_stage():
    """sregistry-2018-10-https: nginx plain is fast, nginx over TLS pegs its one worker; the bytes stop
    falling after the TLS stage and its program's CPU binds."""
    https = preset("sregistry-2018-10-https")
    t, d = survey({"uwsgi": r(1700), "nginx": r(1200), "nginx (tls)": r(33), "published port": r(33),
                   "full path": r(32)},
                  cpu={"nginx": {"nginx": (60, 0)}, "nginx (tls)": {"nginx": (99, 0)},
                       "full path": {"nginx": (98, 0)}})
    v = verdict(t, path=PATH, settings=https, detail=d)
    assert (v.hop, v.cause) == ("tls", "cpu") and "nginx" in v.summary
    assert "tls" not in list(verdict(t.query("point != 'nginx (tls)'"), path=PATH, settings=S2018, detail=d).stages.stage)


# --- the path is an argument ---------------------------------------------------------------------
def test_the_verdict_reads_the_path_it_is_given(renamed):
    other = renamed(PATH)
    at = {s.name: other.stages[i].vantage for i, s in enumerate(PATH.stages)}
    hop = {h.name: other.hops[i].name for i, h in enumerate(PATH.hops)}
    global_hops = {h.name: r(FAST) for h in PATH.hops}
    t, d = survey({at["uwsgi"]: r(245), at["nginx"]: r(96, .01), at["published port"]: r(96, .01),
                   at["full path"]: r(96, .01)},
                  hops={hop["vm→nginx"]: r(96.6, .01), hop["compute→published port→nginx"]: r(96.6, .01),
                        **{hop[h]: v for h, v in global_hops.items() if h not in ("vm→nginx", "compute→published port→nginx")}},
                  cpu={at["nginx"]: {"nginx": (13, 2)}},
                  tcp={at["nginx"]: {("docker0→nginx", "sender"): NET(95.4), ("nginx→uwsgi", "sender"): APP},
                       at["full path"]: {("link", "sender"): APP, ("docker0→nginx", "sender"): NET(95.3)}})
    t = t[~t.point.isin(global_hops)]           # only the renamed hops were measured
    v = verdict(t, path=other, settings=S2018, detail=d)
    assert (v.hop, v.cause, v.at_capacity, v.capacity_hop) == ("st-nginx", "link", True, "hop-vm→nginx")
    assert list(v.stages.stage) == [s.name for s in other.carrying(S2018)] and "at-nginx" in v.evidence[0]
    # the same table judged against the default path finds none of its pulls
    assert verdict(t, path=PATH, settings=S2018, detail=d).summary.startswith("no pulls")
