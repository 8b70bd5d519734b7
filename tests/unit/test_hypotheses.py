"""The seed's observations judged against crafted signatures with known answers."""
import math

import pandas as pd

from labkit.analyze.hypotheses import CHECKS, HYPOTHESES, judge, observations
from labkit.config.overrides import apply_overrides
from labkit.config.presets import preset


def row(name, single, machine_pct, top, disk, served=1000.0):
    return {"hypothesis": name, "single_MBps": single, "single_machine_pct": machine_pct, "top_MBps": top,
            "disk_read_MB": disk, "served_MB": served, "failures": 0}


def test_only_a_signature_like_the_seeds_fits_all():
    rows = pd.DataFrame([row("latency-bound disk", 30, 5, 210, 950),        # reads from disk: the seed saw none
                         row("cpu-bound app", 30, 90, 60, 0),               # the machine busy, does not add up
                         row("per-stream limit", 30, 4, 220, 0),            # the seed's shape
                         row("fast path", 500, 60, 900, 0),                 # one pull near the link
                         row("disk not measured", 30, 4, 220, math.nan)])
    j = judge(rows, capacity_MBps=560).set_index("hypothesis")
    assert j.fits_all.to_dict() == {"latency-bound disk": False, "cpu-bound app": False, "per-stream limit": True,
                                    "fast path": False, "disk not measured": False}
    assert j.loc["latency-bound disk", "no_disk_activity"] is False
    assert j.loc["cpu-bound app", "server_idle_for_one_pull"] is False
    assert j.loc["cpu-bound app", "many_pulls_add_up"] is False
    assert j.loc["fast path", "one_pull_far_below_the_link"] is False
    assert j.loc["disk not measured", "no_disk_activity"] is None


def test_one_pegged_worker_of_eight_vcpus_is_an_idle_machine_to_dstat():
    """The seed judged the server by dstat's whole machine: one core at 100% of 8 is 12.5%, "almost nothing"."""
    rows = pd.DataFrame([row("one worker pegged", 32, 12.5, 230, 0), row("two cores busy", 32, 25, 230, 0)])
    j = judge(rows, capacity_MBps=560).set_index("hypothesis")
    assert j.server_idle_for_one_pull.to_dict() == {"one worker pegged": True, "two cores busy": False}


def test_every_hypothesis_is_valid_settings_and_says_its_fix():
    for h in HYPOTHESES:
        apply_overrides(preset(h.base), [*h.overrides, "links.wan=6gbit"])
        assert h.fix and h.explains
    assert set(observations()["checks"]) == set(CHECKS)


def test_many_pulls_are_judged_on_the_seed_machines_prediction_where_a_hypothesis_has_one():
    """A server CPU-bound on the lab's 2 cores cannot add up to the seed's 8 vCPUs: its carried prediction is judged."""
    rows = pd.DataFrame([{**row("tls, predicted", 32, 12.6, 34, 0), "top_seed_MBps": 212.0},
                         {**row("tls, predicted short", 32, 12.6, 34, 0), "top_seed_MBps": 64.0},
                         {**row("measured only", 32, 12.6, 34, 0), "top_seed_MBps": math.nan}])
    j = judge(rows, capacity_MBps=716).set_index("hypothesis")
    assert j.many_pulls_add_up.to_dict() == {"tls, predicted": True, "tls, predicted short": False,
                                             "measured only": False}
    tls = next(h for h in HYPOTHESES if h.many_base)
    poster = tls.many_settings()
    assert poster.nginx.worker_processes == 32 and poster.cpu.model == "opteron-6174" and poster.tls.enabled


def test_the_carried_prediction_is_the_cost_model_on_the_seeds_workers():
    from labkit.analyze.scale import predict
    from labkit.path import PATH
    r = {"MBps": 30.0, "cpu_s_per_GB_nginx": 14.0, "cpu_s_per_GB_uwsgi": 0.2, "cpu_s_per_GB_docker_proxy": 0.0,
         "cpu_s_per_GB_client": 1.5, "cpu_s_per_GB_softirq": 1.6}
    poster = preset("seed-poster-https").model_dump(mode="json")
    v, by = predict(r, PATH, 2.38, poster, 40, 8)
    assert v == round(8e3 / (2.38 * 14.2), 1) and by.startswith("the machine's 8 core(s)")
    one_worker = preset("sregistry-2018-10-https").model_dump(mode="json")
    assert predict(r, PATH, 2.38, one_worker, 40, 8)[0] == round(1e3 / (2.38 * 14.0), 1)
