"""The contest's pure logic: the plan of runs read off the rulebook, the k chosen, the long records from crafted pulls,
a recorded contest read back and judged."""
import json

import pandas as pd
import pytest

from labkit.analyze import contest as pure
from labkit.analyze.hypotheses import HYPOTHESES, RESULT_COLUMNS, experiments, judge_results
from labkit.config.dilation import Host, machine_problems
from labkit.experiments import contest as contest_exp
from labkit.experiments.contest import CONTEST, ended_by_lab, run_records, settings_for
from labkit.measure.pull_at import PullRun
from labkit.path import registry_path
from labkit.records import PullResult
from labkit.units import MiB

PATH = registry_path(compute_nodes=8)


def test_every_hypothesis_runs_exactly_the_rulebooks_rows():
    runs = pure.plan_runs()
    need = experiments()
    counted = need[need.pulls.notna()]
    for h in HYPOTHESES:
        mine = [r for r in runs if r.hypothesis == h.name]
        assert {(r.settings, r.pulls, r.nodes) for r in mine} == \
            {(r.settings, int(r.pulls), int(r.nodes)) for r in counted.itertuples()}
        # the same runs, in the same order, for every hypothesis
        assert [(r.settings, r.pulls, r.nodes, r.quantities) for r in mine] == \
            [(r.settings, r.pulls, r.nodes, r.quantities) for r in runs if r.hypothesis == HYPOTHESES[0].name]
    first = runs[0]
    # what a check reads without a pull count is measured with the first run under its settings
    assert (first.settings, first.pulls) == ("released", 1)
    for q in ("link_MBps", "iperf_vm_gbit", "iperf_uwsgi_gbit", "disk_read_MB", "served_MB", "MBps", "machine_pct"):
        assert q in first.quantities
    many = [r for r in runs if r.hypothesis == first.hypothesis and r.pulls == 40]
    assert {r.settings for r in many} == {"poster", "poster-8-workers"} and all(r.nodes == 8 for r in many)
    five = [r for r in runs if r.hypothesis == first.hypothesis and r.settings == "original"]
    assert [(r.pulls, r.quantities) for r in five] == [(5, ("failures",))]


def test_a_check_without_a_counted_row_gets_a_one_pull_run():
    obs = json.loads(json.dumps(pure.observations()))
    obs["checks"] = {"no_disk_activity": {**obs["checks"]["no_disk_activity"], "settings": "poster"}}
    runs = pure.plan_runs(HYPOTHESES[:1], obs)
    assert [(r.settings, r.pulls, r.quantities) for r in runs] == [("poster", 1, ("disk_read_MB", "served_MB"))]


def test_k_is_the_smallest_whole_k_leaving_half_the_machine():
    k, why = pure.choose_k(8, 2.585, 2)
    assert k == 4 and "k = 4" in why and "3.09" in why
    assert 8 / 2.585 / k <= 0.5 * 2 < 8 / 2.585 / (k - 1)         # 3 would take more than half
    assert not machine_problems(8, k, Host(2, 2.585))
    assert pure.choose_k(1, 2.5, 2)[0] == 1                          # a server that fits needs no dilation
    assert pure.choose_k(8, 1.0, 4)[0] == 4
    with pytest.raises(ValueError, match="choose_k"):
        pure.choose_k(0, 2.5, 2)
    with pytest.raises(ValueError, match="ratio"):
        pure.choose_k(8, 0.5, 2)


def test_wall_estimate_grows_with_the_image_and_k():
    runs = pure.plan_runs(HYPOTHESES[-1:])
    mine = [r for r in runs if r.image == "contest"]
    small, big = pure.wall_estimate(mine, 64 * MiB, 4), pure.wall_estimate(mine, 128 * MiB, 4)
    assert big - pure.SETUP_S == pytest.approx(2 * (small - pure.SETUP_S), abs=1)
    # one TLS hypothesis at the seed's rates: 1 pull at 32 MB/s and 80 at 235 at the contest's image, x k; then
    # 5 pulls of the seed's own 1.5 GiB at 32 (the timeouts' run), a second lab
    seed = 1536 * MiB
    expect = (1 * 128 * MiB / 1e6 / 32 + 80 * 128 * MiB / 1e6 / 235 + 5 * seed / 1e6 / 32) * 4 + 2 * pure.SETUP_S
    assert pure.wall_estimate(runs, 128 * MiB, 4) == pytest.approx(expect, abs=1)


def test_the_timeouts_run_pulls_the_seeds_own_image_in_a_lab_of_its_own():
    runs = pure.plan_runs(HYPOTHESES[-1:])
    seed = [r for r in runs if r.image == "seed"]
    assert [(r.settings, r.pulls, r.checks) for r in seed] == [("original", 5, ("timeouts_at_5_original",))]
    sizes = pure.image_sizes(128 * MiB)
    assert sizes[seed[0].image] == 1536 * MiB and sizes[runs[0].image] == 128 * MiB


def test_the_seeds_image_is_chosen_in_one_place_and_its_stand_in_honoured():
    assert pure.image_sizes(128 * MiB) == {"contest": 128 * MiB, "seed": 1536 * MiB}
    assert pure.image_sizes(128 * MiB, 16 * MiB) == {"contest": 128 * MiB, "seed": 16 * MiB}
    with pytest.raises(ValueError, match="seed_image"):
        pure.image_sizes(128 * MiB, -1)
    # the wall-time estimate reads the stand-in too: the seed-image run's 5 pulls of 16 MiB, not of 1.5 GiB
    seed = [r for r in pure.plan_runs(HYPOTHESES[-1:]) if r.image == "seed"]
    assert pure.wall_estimate(seed, 128 * MiB, 4, seed_bytes=16 * MiB) == \
        pytest.approx(5 * 16 * MiB / 1e6 / 32 * 4 + pure.SETUP_S, abs=1)
    assert pure.wall_estimate(seed, 128 * MiB, 4) == pytest.approx(5 * 1536 * MiB / 1e6 / 32 * 4 + pure.SETUP_S, abs=1)


@pytest.fixture
def this_machine(monkeypatch):
    """The contest's k and ratio without measuring this machine's CPU: 2 cores at ratio 2.585."""
    monkeypatch.setattr(contest_exp, "host", lambda s: Host(2, 2.585))


def test_the_labs_and_the_estimate_read_the_same_seed_image(this_machine):
    exp = CONTEST.with_(options={"only": ("TLS",), "seed_image": 16 * MiB, "k": 4})
    labs = contest_exp._labs(exp)
    assert [(lab.image_size, lab.options["images"]) for lab in labs] == [(128 * MiB, ("contest",)), (16 * MiB, ("seed",))]
    assert all(lab.options["seed_image"] == 16 * MiB for lab in labs)
    k, secs, _ = contest_exp.estimate(exp)
    runs = pure.plan_runs(HYPOTHESES[-1:])
    assert k == 4 and secs == pure.wall_estimate(runs, 128 * MiB, 4, seed_bytes=16 * MiB)
    assert secs < contest_exp.estimate(exp.with_(options={"seed_image": 1536 * MiB}))[1]
    # no stand-in: the seed's own 1.5 GiB for the labs and the estimate alike
    whole = CONTEST.with_(options={"only": ("TLS",), "k": 4})
    assert [lab.image_size for lab in contest_exp._labs(whole)] == [128 * MiB, 1536 * MiB]
    assert contest_exp.estimate(whole)[1] == pure.wall_estimate(runs, 128 * MiB, 4)


def test_a_check_asked_plans_only_its_runs_and_their_labs(this_machine):
    runs = pure.plan_runs(HYPOTHESES[-1:], checks=("timeouts_at_5_original",))
    assert [(r.settings, r.pulls, r.image) for r in runs] == [("original", 5, "seed")]
    both = pure.plan_runs(HYPOTHESES[-1:], checks=("timeouts_at_5_original", "one_pull_at_the_seeds_rate"))
    assert [(r.settings, r.pulls) for r in both] == [("released", 1), ("original", 5)]
    with pytest.raises(ValueError, match="--check no_such_check: no such check"):
        pure.plan_runs(HYPOTHESES[-1:], checks=("no_such_check",))
    exp = CONTEST.with_(options={"only": ("cold reads",), "checks": ("timeouts_at_5_original",), "k": 4})
    [lab] = contest_exp._labs(exp)                   # only the seed-image lab, none at the contest's image
    assert lab.image_size == 1536 * MiB and lab.options["images"] == ("seed",)
    assert [(r.settings, r.pulls) for r in contest_exp.runs_of(lab.options["hypothesis"], lab.options)] == [("original", 5)]
    assert CONTEST.steps(exp) == 1
    released = CONTEST.with_(options={"only": ("cold reads",), "checks": ("no_disk_activity",), "k": 4})
    assert [lab.options["images"] for lab in contest_exp._labs(released)] == [("contest",)]


def test_a_run_made_again_replaces_only_its_own_rows_by_exact_name(this_machine, tmp_path):
    # two hypotheses whose names a substring match would confuse ("Singularity 2.6" names both)
    wide, narrow = HYPOTHESES[6].name, HYPOTHESES[7].name
    assert wide.startswith("Singularity 2.6") and narrow.startswith("Singularity 2.6")
    assert contest_exp.named(narrow) is HYPOTHESES[7]
    with pytest.raises(ValueError, match="no such name"):
        contest_exp.named("Singularity 2.6")

    def rows(h, st, n, v):
        return [{"hypothesis": h, "quantity": "failures", "settings": st, "pulls": n, "nodes": 1, "value": v,
                 "source": "measured", "mechanism": ""}]
    exp = CONTEST.with_(options={"k": 4, "k_why": "test", "ratio": 2.585, "out_dir": tmp_path})
    first = [{"hypothesis": h, "records": rows(h, "original", 5, 0) + rows(h, "released", 1, 0), "notes": [],
              "wall_s": 1.0} for h in (wide, narrow)]
    csv = contest_exp._save(exp, first)
    again = {"hypothesis": narrow, "images": ("seed",), "checks": ("timeouts_at_5_original",),
             "records": rows(narrow, "original", 5, 2), "notes": [], "wall_s": 2.0}
    contest_exp._save(exp, [again])
    got = pd.read_csv(csv)
    kept = {(r.hypothesis, r.settings, r.pulls): r.value for r in got.itertuples()}
    assert kept == {(wide, "original", 5): 0, (wide, "released", 1): 0, (narrow, "original", 5): 2,
                    (narrow, "released", 1): 0}
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["wall_s_by_hypothesis"][f"{narrow} (the seed's image)"] == 2.0
    assert set(meta["seed_image_runs"]["done"]) == {wide, narrow}


def _pull(nbytes=128 * MiB, seconds=16.0, ok=True, kind="", error="", cpu=0.4):
    return PullResult(ok=ok, bytes=nbytes, seconds=seconds, ttfb_ms=5.0, sha256_ok=None, start=0.0, end=seconds,
                      kind=kind, error=error, cpu_s=cpu, check="length")


def _settings(key="released"):
    return settings_for(HYPOTHESES[-1], key, 4, "6gbit").model_dump(mode="json")


def test_records_of_one_pull_read_back_with_the_prediction_beside():
    run = pure.plan_runs(HYPOTHESES[-1:])[0]
    # one pull of 128 MiB in 16 s of dilated time; nginx spent 16 s of this machine's CPU on it
    pr = PullRun("full path", 1, [_pull()], "length", cpu_s={"nginx": 4.0, "uwsgi": 0.1}, softirq_s=0.2,
                 path=PATH, client="labkit", k=4.0, ratio=2.5)
    recs, notes = run_records("TLS", run, pr, _settings(), 8, iperf_MBps={"vm": 180.0, "uwsgi": 170.0})
    df = pd.DataFrame(recs, columns=list(RESULT_COLUMNS))
    got = {(r.quantity, r.source): r.value for r in df.itertuples()}
    mbps = 128 * MiB / 16 / 1e6
    assert got[("MBps", "measured")] == pytest.approx(4 * mbps, abs=0.1)     # read back x k
    # lk.scale: nginx's CPU per GB (4 s / 0.134 GB) x the ratio, one core: 1e3 / that
    assert got[("MBps", "predicted")] == pytest.approx(1e3 / (4.0 / (128 * MiB / 1e9) * 2.5), rel=0.02)
    assert got[("link_MBps", "measured")] == 720.0 and got[("iperf_vm_gbit", "measured")] == pytest.approx(5.76)
    assert got[("iperf_uwsgi_gbit", "measured")] == pytest.approx(5.44)
    assert got[("served_MB", "measured")] == pytest.approx(128 * MiB / 1e6, abs=0.01)
    assert got[("failures", "measured")] == 0
    # dstat on 8 vCPUs: nginx + uwsgi CPU per GB x ratio x the read-back rate, over 8 cores
    per_gb = (4.0 + 0.1) / (128 * MiB / 1e9)
    assert got[("machine_pct", "measured")] == pytest.approx(100 * per_gb * 2.5 * 4 * mbps / 1e3 / 8, abs=0.2)
    assert set(df.settings) == {"released"} and set(df.pulls) == {1}
    assert set(df[df.source == "predicted"].nodes.isna()) == {True}
    assert any("lk.scale predicts" in n for n in notes) and any(n.startswith("time dilation k = 4") for n in notes)


def test_failures_are_attributed_by_the_seeds_mechanisms_never_the_labs_deadline():
    run = [r for r in pure.plan_runs(HYPOTHESES[-1:]) if r.settings == "original"][0]
    pulls = [_pull(), _pull(ok=False, kind="short body", error="short body: the server ended the body"),
             _pull(ok=False, kind="timeout", seconds=3600.0, error="timeout"), _pull(), _pull()]
    pr = PullRun("full path", 5, pulls, "length", cpu_s={"nginx": 20.0}, path=PATH, client="labkit", k=4.0, ratio=2.5)
    logs = ['2018/10/25 10:00:00 [error] 7#7: *12 upstream timed out (110: Connection timed out) while reading upstream']
    recs, _ = run_records("TLS", run, pr, _settings("original"), 8, logs)
    fails = {r["mechanism"]: r["value"] for r in recs if r["quantity"] == "failures"}
    # the server's log names nginx's uwsgi_read_timeout: both failed pulls are the seed's mechanism (the log
    # is the run's, not tied to one pull), never the lab's own deadline when the seed's evidence is there
    assert fails == {"nginx-uwsgi-read-timeout": 2}
    recs, _ = run_records("TLS", run, pr, _settings("original"), 8, [])
    fails = {r["mechanism"]: r["value"] for r in recs if r["quantity"] == "failures"}
    assert fails == {"unattributed": 1, "pull-deadline": 1}
    judged = judge_results(pd.DataFrame(recs, columns=list(RESULT_COLUMNS)))
    row = judged[judged.check == "timeouts_at_5_original"].iloc[0]
    assert row.verdict == "not measured" and "lab's own limits" in row.why


def test_ended_by_lab_tells_the_deadline_from_the_idle_timeout():
    assert ended_by_lab(_pull(ok=False, kind="timeout", seconds=100.0), 3600, "labkit") == "client-idle-timeout"
    assert ended_by_lab(_pull(ok=False, kind="timeout", seconds=3599.0), 3600, "labkit") == "pull-deadline"
    assert ended_by_lab(_pull(ok=False, kind="reset"), 3600, "labkit") == ""


def test_settings_for_put_the_seeds_machine_under_every_hypothesis():
    for h in HYPOTHESES:
        s = settings_for(h, "poster", 4, "6gbit")
        assert s.machine.vcpus == 8 and s.machine.dilation == 4 and s.cpu.model == "opteron-6174"
        assert s.storage.disk == "loop" and s.links.wan == "6gbit" and s.nginx.worker_processes == 32
    assert settings_for(HYPOTHESES[-1], "poster-8-workers", 4, "6gbit").nginx.worker_processes == 8
    assert settings_for(HYPOTHESES[-1], "original", 4, "6gbit").tls.enabled


def test_the_declared_contest_runs_every_hypothesis_at_one_image():
    assert CONTEST.image_size == 128 * MiB and CONTEST.compute_nodes == 8 and CONTEST.records == "recorded"
    assert CONTEST.steps(CONTEST) == 4 * len(HYPOTHESES)
    assert CONTEST.steps(CONTEST.with_(options={"only": ("TLS",)})) == 4
    assert max(h.min_image_mib for h in HYPOTHESES) * 2 <= 128          # every hypothesis shows at this image


def test_a_recorded_contest_reads_back_and_is_judged_again(tmp_path):
    run = pure.plan_runs(HYPOTHESES[-1:])[0]
    pr = PullRun("full path", 1, [_pull()], "length", cpu_s={"nginx": 4.0}, path=PATH, client="labkit", k=4.0, ratio=2.5)
    recs, _ = run_records("TLS", run, pr, _settings(), 8, iperf_MBps={"vm": 140.0, "uwsgi": 140.0})
    csv = tmp_path / "contest-128MiB-k4.csv"
    pd.DataFrame(recs, columns=list(RESULT_COLUMNS)).to_csv(csv, index=False)
    csv.with_suffix(".json").write_text(json.dumps({"k": 4, "image_mib": 128}))
    meta, nums, checks, judged = pure.recorded(csv)
    assert meta["k"] == 4
    assert nums.loc["TLS", "1 pull MB/s"] == pytest.approx(4 * 128 * MiB / 16 / 1e6, abs=0.1)
    assert "1 pull MB/s (pred)" in nums.columns
    assert checks.loc["one pull far below the link", "TLS"] == "✔"
    assert checks.loc["many pulls add up", "TLS"] == ""              # no 40-pull run: not measured
    assert checks.loc["fits all", "TLS"] == ""


def _rate_rows(h, mbps, settings="original", pulls=5):
    return [{"hypothesis": h, "quantity": "MBps", "settings": settings, "pulls": pulls, "nodes": 1, "value": v,
             "source": "measured", "mechanism": ""} for v in mbps] + \
        [{"hypothesis": h, "quantity": "MBps", "settings": settings, "pulls": pulls, "nodes": None, "value": 999.0,
          "source": "predicted", "mechanism": ""}]


def test_each_hypothesis_is_estimated_at_its_own_rate_and_the_slow_ones_left_out():
    fast, slow, none = HYPOTHESES[1].name, HYPOTHESES[3].name, HYPOTHESES[0].name
    recs = pd.DataFrame(_rate_rows(fast, [180.0, 200.0, 190.0]) + _rate_rows(slow, [8.0]), columns=list(RESULT_COLUMNS))
    rates = pure.recorded_rates(recs)
    assert rates == {(fast, "original", 5): 190.0, (slow, "original", 5): 8.0}     # measured medians, no prediction
    runs = pure.plan_runs([HYPOTHESES[i] for i in (0, 1, 3)], checks=("timeouts_at_5_original",))
    keep, over = pure.within_budget(runs, 128 * MiB, 4, 20 * 60, rates)
    # 5 x 1.5 GiB at its own rate / k: the fast one 5 x 1610.6 MB / (190 / 4) + a lab's start; the one without a
    # rate of its own at the seed's 32 MB/s (said); the slow one at 8 MB/s: 68 min with its lab, over 20
    assert keep == [fast, none]
    assert set(over) == {slow}
    assert over[slow]["estimate_s"] == pytest.approx(5 * 1536 * MiB / 1e6 / (8.0 / 4) + pure.SETUP_S, abs=1)
    assert "its own 8 MB/s" in over[slow]["why"] and "over the 20 min allowed" in over[slow]["why"]
    _, over = pure.within_budget(runs, 128 * MiB, 4, 60, rates)
    assert "the seed's 32 MB/s (none of its own)" in over[none]["why"]
    with pytest.raises(ValueError, match="--max-minutes"):
        pure.within_budget(runs, 128 * MiB, 4, 0, rates)


def test_a_run_not_made_is_said_with_its_estimate_until_it_lands(this_machine, tmp_path):
    slow = HYPOTHESES[3].name
    exp = CONTEST.with_(options={"only": ("cold reads",), "checks": ("timeouts_at_5_original",), "k": 4,
                                 "out_dir": tmp_path})
    src = tmp_path / "rates.csv"
    pd.DataFrame(_rate_rows(slow, [8.0]), columns=list(RESULT_COLUMNS)).to_csv(src, index=False)
    keep, over = contest_exp.budget(exp, 20 * 60, src)
    assert keep == [] and over[slow]["checks"] == ["timeouts_at_5_original"] and over[slow]["rates_from"] == str(src)
    path = contest_exp.record_not_run(exp, over)
    assert path == tmp_path / "contest-128MiB-k4.json"
    said = json.loads(path.read_text())["not_run"][slow]
    assert said["estimate_s"] == over[slow]["estimate_s"] and "68 min" in said["why"] and said["when"]
    # the run lands: the entry goes, the record holds its rows
    done = {"hypothesis": slow, "images": ("seed",), "checks": ("timeouts_at_5_original",), "notes": [], "wall_s": 9.0,
            "records": [{"hypothesis": slow, "quantity": "failures", "settings": "original", "pulls": 5, "nodes": 1,
                         "value": 0, "source": "measured", "mechanism": ""}]}
    contest_exp._save(exp.with_(options={"k_why": "test", "ratio": 2.585}), [done])
    meta = json.loads(path.read_text())
    assert meta["not_run"] == {} and meta["seed_image_runs"]["done"] == [slow]


def test_a_check_left_unmeasured_by_a_run_not_made_says_why_when_read_back(tmp_path):
    slow, other = HYPOTHESES[3].name, HYPOTHESES[1].name
    recs = [{"hypothesis": h, "quantity": "MBps", "settings": "released", "pulls": 1, "nodes": 1, "value": 30.0,
             "source": "measured", "mechanism": ""} for h in (slow, other)]
    csv = tmp_path / "contest-128MiB-k4.csv"
    pd.DataFrame(recs, columns=list(RESULT_COLUMNS)).to_csv(csv, index=False)
    why = "estimated 68 min of wall time at k = 4, over the 20 min allowed"
    csv.with_suffix(".json").write_text(json.dumps({"k": 4, "not_run": {slow: {"checks": ["timeouts_at_5_original"],
                                                                               "why": why}}}))
    _, _, _, judged = pure.recorded(csv)
    row = judged.set_index(["hypothesis", "check"]).why
    assert row[(slow, "timeouts_at_5_original")].endswith(f"; not run: {why}")
    assert "not run" not in row[(other, "timeouts_at_5_original")]        # another hypothesis's row: as it was
    assert "not run" not in row[(slow, "many_pulls_add_up")]               # another check: as it was
    assert "not run" in " ".join(pure.misses(judged).why)
