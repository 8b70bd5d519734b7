"""A tiny contest in the real lab (root): one hypothesis, a small image, few pulls from two compute nodes; its long
records read back x k, lk.scale's prediction beside each rate, recorded and judged by the rulebook."""
import json

import pandas as pd
import pytest

from labkit.analyze import contest as pure
from labkit.analyze.hypotheses import RESULT_COLUMNS, judge_results
from labkit.experiments import run
from labkit.experiments.contest import CONTEST
from labkit.units import MiB

pytestmark = pytest.mark.integration
NAME = "contest-t1"


def test_tiny_contest_records_every_run_and_judges_them(tmp_path):
    exp = CONTEST.with_(lab_name=NAME, image_size=16 * MiB, compute_nodes=2,
                        options={"only": ("TLS",), "max_pulls": 4, "out_dir": tmp_path, "seed_image": 16 * MiB})
    out = run(exp, progress=False)
    assert out.saved == tmp_path / f"contest-16MiB-k{out.result['parts'][0]['records'] and pure.choose_k(8, 2.5, 2)[0] or 0:g}.csv" \
        or out.saved.parent == tmp_path
    recs = pd.read_csv(out.saved)
    assert list(recs.columns) == list(RESULT_COLUMNS)
    meta = json.loads(out.saved.with_suffix(".json").read_text())
    k = meta["k"]
    assert k >= 1 and meta["machine"]["vcpus"] == 8 and meta["hypotheses_done"] == ["TLS in software on the Opteron"]
    got = {(r.quantity, r.settings, int(r.pulls), r.source) for r in recs.itertuples()}
    # every run of the rulebook was made (pulls capped at 4, from at most the lab's 2 nodes), each rate with its
    # prediction beside it, the seed's iperf3 hops and the disk's bytes with the one pull
    for st, n in (("released", 1), ("poster", 4), ("poster-8-workers", 4), ("original", 4)):
        assert ("MBps", st, n, "measured") in got and ("MBps", st, n, "predicted") in got, (st, n)
        assert ("failures", st, n, "measured") in got
    for q in ("link_MBps", "iperf_vm_gbit", "iperf_uwsgi_gbit", "disk_read_MB", "served_MB", "machine_pct"):
        assert (q, "released", 1, "measured") in got, q
    one = recs[(recs.quantity == "MBps") & (recs.settings == "released") & (recs.source == "measured")].value.iloc[0]
    assert 5 < one < 2000                       # read back x k into the seed's time: MB/s of a TLS pull on K10 cores
    assert recs[recs.quantity == "served_MB"].value.iloc[0] == pytest.approx(16 * MiB / 1e6, rel=0.01)
    four = recs[(recs.quantity == "MBps") & (recs.settings == "poster") & (recs.source == "measured")]
    assert four.nodes.iloc[0] == 2              # 4 pulls from the lab's 2 compute nodes
    judged = judge_results(recs)
    # the 40-pull checks ask for 40 pulls from 8 nodes: a tiny contest cannot measure them, for this hypothesis as
    # for any; the one-pull checks it can
    v = judged.set_index("check").verdict
    assert v["many_pulls_add_up"] == "not measured" and v["server_busy_at_40"] == "not measured"
    assert v["one_pull_far_below_the_link"] in ("fits", "misses") and v["iperf_4_to_5_gbit"] in ("fits", "misses")
    assert "lk.scale predicts" in " ".join(meta["notes"]["TLS in software on the Opteron"])
