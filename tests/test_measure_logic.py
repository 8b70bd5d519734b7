import pandas as pd
import pytest

from labkit.measure import iperf
from labkit.measure.pull import PullResult, aggregate_mbps
from labkit.path import plan
from labkit.analyze.verdict import verdict


def test_iperf_report_is_parsed():
    rep = {"end": {"sum_received": {"bits_per_second": 8e9, "seconds": 2.0},
                   "sum_sent": {"bits_per_second": 8.1e9, "retransmits": 7}}}
    r = iperf.parse(rep)
    assert (r.ok, r.MBps, r.retransmits, r.seconds) == (True, 1000.0, 7, 2.0)
    with pytest.raises(ValueError, match="whole seconds"):
        iperf.run(None, "127.0.0.1", 5201, seconds=0.5)
    bad = iperf.parse({"error": "unable to connect to server: Connection refused"})
    assert not bad.ok and "refused" in bad.error


def test_aggregate_is_bytes_over_the_whole_span():
    rs = [PullResult(True, 100_000_000, 1.0, 1, True, start=0.0, end=1.0),
          PullResult(True, 100_000_000, 2.0, 1, True, start=0.0, end=2.0)]
    assert aggregate_mbps(rs) == 100.0
    assert rs[0].mbps == 100.0


def test_plan_names_namespaces_and_refuses_bad_names():
    p = plan("main", namespaced=True)
    assert p.namespaces == ["sl-main-compute", "sl-main-vm", "sl-main-nginx", "sl-main-uwsgi"]
    assert [v.name for v in p.path.vantages] == ["uwsgi", "nginx", "published port", "full path"]
    assert p.caveats() == []
    lo = plan("main", namespaced=False)
    assert lo.ip("vm") == "127.0.0.1" and len({lo.port("nginx"), lo.port("published"), lo.port("uwsgi_http")}) == 3
    assert any("published port" in c for c in lo.caveats())
    with pytest.raises(ValueError, match="lab name"):
        plan("../etc", namespaced=True)
    assert p.path.vantage("full path").client == "compute"
    with pytest.raises(ValueError, match="vantage point 'moon': one of uwsgi, nginx, published port, full path"):
        p.path.vantage("moon")


def _table(pulls: dict[str, float], busiest_cpu=99.0, par_full=None):
    rows = [{"kind": "iperf3", "point": h, "parallel": 1, "MBps": 2000.0, "failures": 0}
            for h in ["compute→vm", "vm→nginx", "nginx→uwsgi", "compute→published port→nginx"]]
    for point, mbps in pulls.items():
        rows.append({"kind": "pull", "point": point, "parallel": 1, "MBps": mbps, "failures": 0,
                     "busiest": "uwsgi", "busiest_cpu": busiest_cpu})
    if par_full:
        rows.append({"kind": "pull", "point": "full path", "parallel": 5, "MBps": par_full, "failures": 1,
                     "busiest": "uwsgi", "busiest_cpu": busiest_cpu})
    return pd.DataFrame(rows)


def test_verdict_names_the_app_when_uwsgi_itself_is_slow():
    v = verdict(_table({"uwsgi": 300, "nginx": 290, "published port": 280, "full path": 275}, par_full=900))
    assert v.hop == "uwsgi"
    assert "uwsgi ran at 99% of a core" in str(v)
    assert "5 parallel pulls together reach 900 MB/s (3.3x one pull): each connection is limited" in str(v)
    assert "1 pull(s) failed" in str(v)


def test_verdict_names_the_publish_step_when_it_halves_the_rate():
    v = verdict(_table({"uwsgi": 1900, "nginx": 1850, "published port": 900, "full path": 880}, busiest_cpu=40))
    assert v.hop == "published port"
    assert "51% lost at this stage" in str(v) and "not pegged" in str(v)


def test_verdict_says_when_no_hop_loses_much():
    v = verdict(_table({"nginx": 1900, "published port": 1850, "full path": 1800}))
    assert v.hop == "" and "No hop loses more than 15%" in v.summary


def test_verdict_says_where_pulls_fail_instead_of_a_ratio():
    t = _table({"uwsgi": 600, "nginx": 0, "published port": 0, "full path": 0})
    t.loc[t.point == "nginx", ["failures", "error"]] = [1, "ConnectionRefusedError: [Errno 111] Connection refused"]
    v = verdict(t)
    assert v.hop == "nginx" and v.summary.startswith("Pulls fail at nginx")
    assert "Connection refused" in str(v)
