"""A dilated lab's survey table read back in one place (labkit.measure.dilated): rates x k, times / k, k said."""
import pandas as pd
import pytest

from labkit.errors import SettingsError
from labkit.measure.dilated import read_back
from labkit.path import registry_path
from labkit.records import cost, survey_columns

PATH = registry_path(1)


def _table() -> pd.DataFrame:
    row = {c: None for c in survey_columns(PATH)}
    row.update(kind="pull", point="client", through="x", parallel=1, MBps=10.0, MBps_lo=9.0, MBps_hi=11.0, runs=3,
               spread_pct=20.0, per_pull_min=9.0, per_pull_max=11.0, ttfb_ms=40.0, failures=0, retransmits=0,
               busiest="nginx", busiest_cpu=50.0, client_cpu=20.0)
    for c in cost.columns(PATH):
        row[c] = 1.0
    row[cost.column(cost.SOFTIRQ)] = 0.5
    return pd.DataFrame([row]).reindex(columns=survey_columns(PATH)).astype(
        {c: float for c in survey_columns(PATH) if c not in ("kind", "point", "through", "busiest", "client",
                                                              "sha256_ok", "error")})


def test_rates_times_and_k():
    out, notes = read_back(_table(), 2.0, PATH, ratio=2.5)
    r = out.iloc[0]
    assert (r.MBps, r.MBps_lo, r.per_pull_max, r.ttfb_ms) == (20.0, 18.0, 22.0, 20.0)
    assert (r.failures, r.busiest_cpu, r.client_cpu, r.k) == (0, 100.0, 40.0, 2.0)
    assert r[cost.column("nginx")] == 1.0                    # CPU-seconds per GB: the same work per byte
    assert any("softirq" in n and "leaves out" in n for n in notes)


def test_k_one_says_k_and_changes_nothing():
    t = _table()
    out, notes = read_back(t, 1.0, PATH)
    assert notes == [] and out["k"].tolist() == [1.0]
    pd.testing.assert_frame_equal(out.drop(columns="k"), t)


def test_a_column_without_a_rule_is_refused():
    t = _table().assign(mystery=1.0)
    with pytest.raises(SettingsError, match="mystery"):
        read_back(t, 2.0, PATH)


def test_an_empty_table_reads_back_empty():
    import pandas as pd
    out, notes = read_back(pd.DataFrame([]).reindex(columns=survey_columns(PATH)), 2.0, PATH)
    assert out.empty and "k" in out.columns
