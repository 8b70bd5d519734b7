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
