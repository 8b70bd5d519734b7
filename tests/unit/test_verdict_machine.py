"""Shared CPU, remedies and the words, on surveys with known answers (issue 18).

Fixtures in tests/fixtures/surveys are real surveys from this 2-core machine, trimmed (all-zero CPU
rows and unread columns dropped): the default survey with the machine full, one the old rules named
docker-proxy from, windows too small everywhere, nginx under a CPU quota. The other surveys here
are crafted run by run: a CPU-hungry client, two programs whose costs per byte the runs cannot tell apart.
"""
from pathlib import Path

import pandas as pd
import pytest

from labkit.analyze.machine import cpu_seconds_per_gb, shared_cpu
from labkit.analyze.noise import Rate
from labkit.analyze.scoring import stripped
from labkit.analyze.remedies import (ACCEL, ANY, DNAT, NO_BUFFERING, PROXY_NO_BUFFERING, REMEDIES, RMEM, WARM_CACHE,
                                     Fix, Trial, candidates, winner)
from labkit.analyze.verdict import verdict
from labkit.analyze.words import headline, nested_parentheses, verdict_text
from labkit.config.overrides import apply_overrides
from labkit.config.presets import preset
from labkit.records import Survey
from labkit.path import BACKENDS, CLIENT, PATH, registry_path

FIXTURES = Path(__file__).parents[1] / "fixtures" / "surveys"
# these surveys were measured with docker-proxy carrying every byte (Docker's `"iptables": false`), the
# case where it shares the machine's CPUs with nginx; under Docker's defaults it carries no compute node's byte
S2018 = apply_overrides(preset("sregistry-2018-10"), ["publish.iptables=false"])
REC = preset("recommended")
MB = 64 * 2**20


def fixture(name: str) -> Survey:
    return Survey.load(FIXTURES / f"{name}.csv")


def words_of(v) -> list[str]:
    return [headline(v), v.summary, *v.evidence, verdict_text(v)]


def crafted(runs: dict[str, list[dict[str, tuple[float, float]]]], rates: dict[str, list[float]], settings=S2018,
            cpus: int = 2) -> Survey:
    """A survey from per-run numbers: runs {vantage: [{program: (ran %, waited %)}, ...]}, rates {vantage: [MB/s, ...]}.

    Each run's CPU-seconds are ran % x the pull's seconds; the bytes are a 64 MiB image.
    """
    table = [{"kind": "iperf3", "point": h.name, "parallel": 1, "MBps": 2500.0, "MBps_lo": 2400.0, "MBps_hi": 2600.0,
              "runs": 1, "failures": 0, "error": ""} for h in PATH.hops]
    detail = []
    for v, rs in rates.items():
        table.append({"kind": "pull", "point": v, "parallel": 1, "MBps": sorted(rs)[len(rs) // 2], "MBps_lo": min(rs),
                      "MBps_hi": max(rs), "runs": len(rs), "failures": 0, "error": ""})
        for i, (mbps, progs) in enumerate(zip(rs, runs.get(v, [{}] * len(rs)))):
            secs = MB / (mbps * 1e6)
            for prog, (ran, waited) in progs.items():
                detail.append({"point": v, "parallel": 1, "run": i, "MBps": mbps, "pulled_bytes": MB, "source": "cpu",
                               "name": prog, "side": "", "cpu_max_proc": ran, "cpu_total": ran, "wait_max_proc": waited,
                               "cpu_sched": None if prog == CLIENT else ran, "cpu_s": ran / 100 * secs})
    meta = {"image_bytes": MB, "cpus": cpus, "parallel": 1, "repeats": 3}
    return Survey(pd.DataFrame(table), settings.model_dump(mode="json"), PATH, [], meta, {}, pd.DataFrame(detail))


# --- cost per byte -----------------------------------------------------------------------------------
def test_cost_per_gb_is_cpu_seconds_over_gigabytes_as_the_cost_module_computes_it():
    assert cpu_seconds_per_gb("nginx", 1.0, 1e9, PATH) == 1.0
    assert round(cpu_seconds_per_gb("docker-proxy", 0.085, MB, PATH), 2) == 1.27     # 85 ms for a 64 MiB pull
    nothing = cpu_seconds_per_gb("nginx", 1.0, 0, PATH)
    assert nothing != nothing                                                       # nan: nothing moved


# --- a saturated machine -----------------------------------------------------------------------------
def test_a_full_machine_is_said_first_with_each_programs_share_and_cost():
    s = fixture("full-machine-2018-10")
    v = verdict(s)
    assert (v.hop, v.cause, v.machine_bound, v.at_capacity) == ("nginx", "cpu", True, False)
    assert v.summary.startswith("The machine's CPUs are full: the path's programs wanted 296% of the 2 CPUs' 200%")
    assert headline(v).startswith("The path's programs fill this machine's 2 CPUs and nginx costs the most per byte")
    for prog in ("nginx", "docker-proxy", "client", "uwsgi"):      # each program's share and cost per GB
        assert any(e.startswith(f"{prog} ran ") and "% of a core" in e and "CPU-s per GB" in e for e in v.evidence)
    assert any("the whole machine was 183% busy, so other work took about 31%" in e for e in v.evidence)
    assert any(e.startswith("nginx costs the most per byte: ") and " times docker-proxy's, " in e for e in v.evidence)
    assert [r.name for r in v.remedies] == ["X-Accel-Redirect", "uwsgi_buffering off"]
    d = v.to_dict()["shared_cpu"]
    assert d["machine_bound"] and d["cpus"] == 2 and [p["program"] for p in d["programs"]][0] == "nginx"


def test_the_run_the_old_rules_named_docker_proxy_names_nginx_now():
    v = verdict(fixture("full-machine-2018-10-old-pick"))
    assert (v.hop, v.cause, v.machine_bound) == ("nginx", "cpu", True)
    assert any(e.startswith("the rules for one stage alone would name published port") for e in v.evidence)


def test_a_machine_that_is_not_full_keeps_the_stage_rules():
    s = crafted({"full path": [{"nginx": (96, 2), CLIENT: (20, 3), "docker-proxy": (20, 2)}] * 3,
                 "nginx": [{"nginx": (96, 2), CLIENT: (20, 3)}] * 3},
                {"uwsgi": [1700, 1690, 1710], "nginx": [420, 423, 430], "published port": [340, 350, 360],
                 "full path": [420, 430, 440]})
    v = verdict(s)
    assert v.shared is not None and not v.shared.saturated and not v.machine_bound
    assert (v.hop, v.cause) == ("nginx", "cpu") and not v.summary.startswith("The machine")


def test_waiting_on_a_cpu_quota_is_not_waiting_for_the_machine():
    v = verdict(fixture("nginx-quota"))
    assert (v.hop, v.cause, v.machine_bound) == ("nginx", "cpu", False)
    nginx = next(p for p in v.shared.programs if p.name == "nginx")
    assert nginx.waited == 0 and nginx.limited == "cpu.nginx_cpus=0.15"


def test_windows_too_small_everywhere_come_before_a_full_machine():
    v = verdict(fixture("small-windows-everywhere"))
    assert (v.hop, v.cause, v.machine_bound) == ("full path", "window", False)
    assert "its receive buffer 8 KiB" in v.summary
    assert any("hold buffers as small" in e for e in v.evidence)
    assert v.remedies == [RMEM]


# --- a CPU-hungry client -------------------------------------------------------------------------------
def test_a_client_needing_more_cpu_than_the_server_is_the_labs_own_limit():
    runs = [{CLIENT: (95, 40), "nginx": (30, 25), "uwsgi": (4, 2)}, {CLIENT: (90, 45), "nginx": (28, 30), "uwsgi": (5, 2)},
            {CLIENT: (92, 50), "nginx": (33, 20), "uwsgi": (4, 3)}]
    s = crafted({"full path": runs, "nginx": [{"nginx": (40, 5), CLIENT: (80, 10)}] * 3},
                {"nginx": [1600, 1700, 1650], "published port": [1550, 1600, 1620], "full path": [1500, 1450, 1550]},
                settings=REC)
    v = verdict(s)
    assert (v.hop, v.cause, v.machine_bound) == ("full path", "client", True)
    assert v.shared.client_limit and v.remedies == []
    assert "the lab's own limit" in v.summary and headline(v).startswith("The lab's own client binds")
    assert any("the client needs 3.2 times the CPU per byte of the server's programs together, 2.8–3.2" in e for e in v.evidence)
    assert v.next is not None and v.next.hop == "nginx"            # what would bind on the server


# --- two answers inside the spread ---------------------------------------------------------------------
def test_two_programs_whose_costs_the_runs_cannot_separate_are_both_named():
    full = [{"nginx": (50, 40), "docker-proxy": (48, 42), CLIENT: (30, 30)},
            {"nginx": (45, 45), "docker-proxy": (50, 40), CLIENT: (28, 35)},
            {"nginx": (52, 38), "docker-proxy": (47, 45), CLIENT: (31, 30)}]
    s = crafted({"full path": full, "published port": full, "nginx": [{"nginx": (70, 20), CLIENT: (40, 20)}] * 3},
                {"uwsgi": [1500, 1600, 1550], "nginx": [420, 430, 410], "published port": [330, 320, 340],
                 "full path": [320, 330, 310]})
    v = verdict(s)
    assert v.machine_bound and (v.hop, v.cause) == ("nginx", "cpu")       # upstream in byte order, every time
    assert v.alternative is not None and (v.alternative.hop, v.alternative.cause) == ("published port", "cpu")
    assert "more repeats" in v.alternative.separate and "larger image" in v.alternative.separate
    assert "about as much as published port" in headline(v)
    assert "or: published port, CPU: docker-proxy" in verdict_text(v)
    assert v.to_dict()["alternative"]["hop"] == "published port"


def test_a_program_clearly_costlier_run_by_run_has_no_rival():
    sh = shared_cpu(crafted({"full path": [{"nginx": (60, 30), "docker-proxy": (25, 30), CLIENT: (30, 30)}] * 3},
                            {"full path": [300, 310, 320]}).detail, "full path", 1,
                    {"nginx": ["full path"], "docker-proxy": ["full path"], CLIENT: ["full path"]}, PATH, S2018, 2)
    assert sh.saturated and sh.costliest.name == "nginx" and sh.rival is None
    assert round(sh.ratio("nginx", "docker-proxy").median, 1) == 2.4


# --- remedies -----------------------------------------------------------------------------------------
def test_remedies_are_data_keyed_by_stage_and_cause_and_skip_what_changes_nothing():
    assert candidates("nginx", "cpu", S2018, PATH) == [ACCEL, NO_BUFFERING]
    assert candidates("nginx", "cpu", REC, PATH) == []                     # already X-Accel-Redirect
    assert candidates("published port", "cpu", S2018, PATH) == [DNAT]
    assert candidates("published port", "cpu", preset("sregistry-2018-10"), PATH) == []   # Docker's defaults: DNAT already
    capped = apply_overrides(S2018, ["cpu.proxy_cpus=0.03"])
    lifts = candidates("published port", "cpu", capped, PATH)
    assert [r.name for r in lifts] == ["DNAT publishing", "no CPU quota on docker-proxy"]
    assert lifts[1].set == ("cpu.proxy_cpus=none",)                        # docker-proxy's key on this path
    slow = apply_overrides(S2018, ["client.dest=local-disk", "client.write_mbps=20"])
    assert [r.name for r in candidates("full path", "client", slow, PATH)] == ["a destination that keeps up"]
    assert candidates("nginx", "window", S2018, PATH) == [RMEM]             # a window, wherever it binds
    paths = [registry_path(registry=r) for r in BACKENDS]
    programs = {p for path in paths for st in path.stages for p in st.programs} | {ANY}
    for (prog, _), rems in REMEDIES.items():
        assert prog in programs                                            # every key is a program of a path
        for rem in rems:
            rem = rem.on(next((k for path in paths if (k := path.cpu_key(prog))), "nginx"))
            apply_overrides(S2018, list(rem.set))                          # every override is a valid setting


def test_the_remedies_on_the_oci_path_are_its_own():
    """distribution behind nginx: proxy_buffering off for nginx (never sregistry's X-Accel-Redirect or uwsgi_buffering),
    the registry's CPU quota lifted, a warm cache for its disk; on sregistry's path proxy_buffering is never offered."""
    oci, dist = registry_path(registry="distribution"), preset("distribution-2.8")
    assert [r.name for r in candidates("nginx", "cpu", dist, oci)] == [
        "AES-128-GCM first", "ChaCha20-Poly1305 preferred", "plain http on the cluster network", "more nginx workers",
        "proxy_buffering off"]                                                    # TLS's fixes first (TLS is on)
    assert candidates("nginx", "app", dist, oci) == [PROXY_NO_BUFFERING]
    assert candidates("nginx", "app", preset("harbor-front"), oci) == []          # Harbor already streams
    assert PROXY_NO_BUFFERING not in candidates("nginx", "app", S2018, PATH)
    capped = apply_overrides(dist, ["cpu.registry_cpus=0.2"])
    assert [(r.name, r.set) for r in candidates("registry", "cpu", capped, oci)] == \
        [("no CPU quota on registry", ("cpu.registry_cpus=none",))]
    cold = apply_overrides(dist, ["storage.cache=cold"])
    assert candidates("registry", "disk", cold, oci) == [WARM_CACHE]


def test_a_remedy_wins_only_beyond_the_runs_spread():
    before = Trial("as it was", (), Rate(300, 280, 330, 3), Rate(280, 270, 290, 3), 5)
    same = Trial("inside the noise", ("a=b",), Rate(330, 290, 370, 3), Rate(300, 260, 320, 3), 5)
    better = Trial("better", ("c=d",), Rate(700, 540, 900, 3), Rate(1200, 750, 1220, 3), 5)
    worse_n = Trial("one up, N down", ("e=f",), Rate(900, 880, 910, 3), Rate(100, 90, 110, 3), 5)
    failed = Trial("failed", ("g=h",), Rate(2000, 1900, 2100, 3), Rate(2000, 1900, 2100, 3), 5, failures=1)
    assert winner(before, [same, worse_n, failed]) is None
    assert winner(before, [same, better, worse_n, failed]) is better


def test_the_fix_in_the_headline_and_the_json():
    v = verdict(fixture("full-machine-2018-10"))
    before = Trial("settings as they were", (), Rate(305, 284, 331, 3), Rate(287, 270, 292, 3), 5)
    accel = Trial("X-Accel-Redirect", ("app.serve_mode=accel",), Rate(700, 538, 898, 3), Rate(1215, 752, 1218, 3), 5)
    f = Fix(v.hop, v.cause, before, [accel], accel, [{"path": "app.serve_mode", "old": "fileresponse", "new": "accel"}],
            "/tmp/bundles/fix-x-accel-redirect")
    h = headline(v, f)
    assert h.endswith("X-Accel-Redirect took one pull from 305 to 700 MB/s and 5 at once from 287 to 1215 MB/s.")
    assert "the client gets" not in h                                      # one set of numbers: the fix's own
    d = f.to_dict()
    assert (d["before_MBps"], d["after_MBps"], d["bundle"]) == (305, 700, "/tmp/bundles/fix-x-accel-redirect")
    assert d["settings"][0]["new"] == "accel" and len(d["trials"]) == 2
    nothing = Fix(v.hop, v.cause, before, [accel], None)
    assert "did not beat the runs' spread" in headline(v, nothing)


# --- words ----------------------------------------------------------------------------------------------
def test_nested_parentheses_are_found():
    assert nested_parentheses("a (b (c)) d") == ["(b (c)"]
    assert nested_parentheses("a (b) c (d)") == []


@pytest.mark.parametrize("name", ["full-machine-2018-10", "full-machine-2018-10-old-pick", "small-windows-everywhere",
                                  "nginx-quota"])
def test_no_sentence_nests_parentheses_and_the_headline_is_one_sentence(name):
    v = verdict(fixture(name))
    for text in words_of(v):
        assert nested_parentheses(text) == [], text
    h = headline(v)
    assert h.count(". ") == 0 and h.endswith(".") and "\n" not in h


# --- a disturbed run, and the same client everywhere -------------------------------------------------------
def test_a_run_far_from_the_median_is_set_aside_from_the_spread_but_shown():
    r = Rate.of({"MBps": 1686.3, "MBps_lo": 267.5, "MBps_hi": 1947.6, "runs": 3})
    assert (r.median, r.lo, r.hi, r.set_aside) == (1686.3, 1686.3, 1947.6, (267.5,))
    assert str(r) == "1686 MB/s (1686–1948, 3 runs; set aside as a disturbance: 268)"
    assert Rate.of({"MBps": 100, "MBps_lo": 60, "MBps_hi": 140, "runs": 3}).set_aside == ()   # a spread, not a disturbance
    assert Rate.of({"MBps": 100, "MBps_lo": 10, "MBps_hi": 140, "runs": 2}).lo == 10          # two runs: nothing to tell
    assert Rate.of_runs([300, 310, 290]) == Rate(300, 290, 310, 3)


def test_the_same_client_getting_the_same_rate_everywhere_is_the_labs_own_limit():
    s = crafted({"nginx": [{"nginx": (22, 20), CLIENT: (46, 40)}] * 3,
                 "full path": [{"nginx": (42, 12), CLIENT: (52, 20)}] * 3},
                {"nginx": [1686, 268, 1948], "published port": [1656, 1450, 1678], "full path": [1600, 1573, 1656]},
                settings=REC)
    v = verdict(s)
    assert (v.hop, v.cause, v.at_capacity, v.machine_bound) == ("full path", "client", False, False)
    assert "the lab's own client" in v.summary and v.remedies == [] and v.no_remedy.startswith("nothing on the server")
    assert not any(e.startswith("throughput falls") for e in v.evidence)          # nothing fell along the path


def test_the_fix_lists_every_setting_its_remedy_changed_the_clients_too():
    from labkit.analyze.remedies import DISCARD
    from labkit.experiments.survey import remedy_changes
    slow = apply_overrides(S2018, ["client.dest=local-disk", "client.write_mbps=20"])
    got = remedy_changes(DISCARD, slow, apply_overrides(slow, list(DISCARD.set)))
    assert [(c["path"], c["old"], c["new"]) for c in got] == [("client.dest", "local-disk", "memory"),
                                                             ("client.write_mbps", "20.0", "(default)")]
    got = remedy_changes(ACCEL, S2018, apply_overrides(S2018, list(ACCEL.set)))
    assert got[0]["path"] == "app.serve_mode" and "X-Accel-Redirect" in got[0]["why"]


def test_a_pull_runs_detail_rows_carry_cpu_seconds_and_the_whole_machine():
    from labkit.measure.pull_at import PullRun
    from labkit.measure.survey import _details
    from labkit.records import PullResult
    r = PullResult(True, MB, 0.2, 5.0, None, cpu_s=0.05, wait_s=0.01, start=1.0, end=1.2)
    run = PullRun("full path", 1, [r], "length", cpu={"nginx": {"cpu_max_proc": 60.0, "cpu_total": 60.0,
                                                                "wait_max_proc": 20.0, "wait_total": 25.0, "cpu_sched": 58.0}},
                  cpu_s={"nginx": 0.12}, path=PATH, machine={"cpus": 2, "busy": 170.0})
    rows = {(d["source"], d["name"]): d for d in _details(run, 0)}
    assert rows[("cpu", "nginx")]["cpu_s"] == 0.12 and rows[("cpu", "nginx")]["wait_total"] == 25.0
    assert rows[("cpu", CLIENT)]["cpu_s"] == 0.05 and rows[("cpu", CLIENT)]["pulled_bytes"] == MB
    assert (rows[("machine", "machine")]["cpu_total"], rows[("machine", "machine")]["cpus"]) == (170.0, 2)


# --- real matrix surveys on Docker's DNAT path, judged wrong before and right now -----------------------
def test_a_busy_sender_far_below_every_hops_capacity_is_not_a_link():
    """Unshaped (iperf3 1.5-2.1 GB/s on every hop): nginx's socket 94% busy at 447 MB/s, 101 retransmits;
    named 'nginx: link' before a link had to reach its hop's capacity to bind."""
    v = verdict(fixture("unshaped-dnat-2018-10"))
    assert (v.hop, v.cause) == ("nginx", "cpu")


def test_a_client_whose_dirty_pages_absorb_part_of_the_pull_is_still_the_client():
    """client.dest local-disk at 20 MB/s, dirty pages bounded to 40 MB: 46 of the 67 MB pulled reached the device
    during the pull (named 'full path: app' before)."""
    v = verdict(fixture("slow-client-dirty-pages"))
    assert (v.hop, v.cause) == ("full path", "client")
    assert any("of the pull's bytes reached the device while it ran" in e for e in v.evidence)


def test_a_machine_busy_with_the_paths_kernel_work_while_its_programs_wait_is_full():
    """Unshaped seed-poster-https (TLS on this CPU): nginx, the client and their softirq keep the whole machine
    190% busy while the programs' own demand stays under 170%; they waited for a CPU 49% of a core. The stage
    rules alone named tls: nginx's CPU here (and 'tls: app' or 'full path: client' on other runs)."""
    v = verdict(fixture("https-poster-machine-busy"))
    assert v.shared.demand.median < 170 and v.shared.machine_busy >= 170 and v.shared.saturated
    assert (v.hop, v.cause, v.machine_bound) == ("nginx", "cpu", True)
    # its 3 runs' demand, 151-181%, straddles the line at 170%: near full reads the machine as full on either
    # side of the line, before the machine's own busy time is asked
    assert v.shared.near_full
    assert v.summary.startswith("The machine's CPUs are near full: the path's programs wanted 151-181% of the 2 CPUs' "
                                "200% over 3 runs, around the line at 170%")
    assert "near full: 151-181% of 200% over 3 runs, the line at 170% (SATURATED): the runs fall on both sides of it" \
        in v.evidence


def test_a_client_about_as_costly_as_the_server_is_said_with_the_server_as_second_answer():
    from labkit.experiments.matrix import cases_for
    v = verdict(fixture("https-poster-client-close"))
    assert (v.hop, v.cause, v.machine_bound) == ("full path", "client", True)
    assert (v.alternative.hop, v.alternative.cause) == ("nginx", "cpu") and "--repeats" in v.alternative.separate
    case = next(c for c in cases_for(PATH) if c.name == "unshaped, seed-poster-https")
    assert case.answered(v) == "second" and not case.judge(v)      # shown apart, never counted as right
    assert case.answered(verdict(fixture("https-poster-machine-busy"))) == "first"
    link = next(c for c in cases_for(PATH) if c.name.startswith("link "))
    assert link.answered(v) == ""                    # a second answer elsewhere does not make a wrong case right


# --- a rule that knows its spread (issue 29) ------------------------------------------------------------
def straddling(demands: list[float]) -> Survey:
    """The default survey's shape (nginx costliest per byte, docker-proxy next, the client light) with the
    client's vantage's demand per run as given: each run's nginx, docker-proxy and client ran and waited in the
    same proportions as in tests/fixtures/surveys/full-machine-2018-10."""
    runs = [{"nginx": (0.50 * d, 0.08 * d), "docker-proxy": (0.20 * d, 0.05 * d), CLIENT: (0.12 * d, 0.05 * d)}
            for d in demands]
    return crafted({"full path": runs, "published port": runs, "nginx": [{"nginx": (90, 5), CLIENT: (25, 5)}] * 3},
                   {"uwsgi": [1700, 1690, 1710], "nginx": [420, 423, 430], "published port": [400, 410, 420],
                    "full path": [330, 360, 400]})


@pytest.mark.parametrize("demands", [[161, 165, 186], [165, 175, 186], [168, 171, 180], [150, 160, 172]])
def test_demand_straddling_the_full_line_gives_the_same_words_either_side(demands):
    """Runs on both sides of the line at 170% (the stability record: 161-186%, its median 165-180% from one
    survey to the next): the same hop, cause and headline words whichever side the median falls, and the
    evidence says the reading is near the line."""
    v = verdict(straddling(demands))
    ref = verdict(straddling([161, 165, 186]))
    assert v.shared.near_full and v.shared.saturated and v.machine_bound
    assert (v.hop, v.cause) == (ref.hop, ref.cause) == ("nginx", "cpu")
    assert stripped(headline(v)) == stripped(headline(ref))
    assert stripped(v.summary) == stripped(ref.summary)
    assert headline(v).startswith("The path's programs come near filling this machine's 2 CPUs")
    lo, hi = round(min(demands)), round(max(demands))
    assert f"near full: {lo}-{hi}% of 200% over 3 runs, the line at 170% (SATURATED)" in " ".join(v.evidence)


def test_demand_clear_of_the_line_is_full_or_not_without_near():
    above, below = verdict(straddling([175, 180, 190])), verdict(straddling([120, 130, 140]))
    assert above.machine_bound and not above.shared.near_full
    assert headline(above).startswith("The path's programs fill this machine's 2 CPUs")
    assert not below.shared.saturated and not below.machine_bound and not below.shared.near_full
    assert not any("near full" in e for e in below.evidence)
