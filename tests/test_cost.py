"""CPU cost per byte: each program's CPU-seconds per GB moved, from crafted numbers with exact answers."""
import subprocess
import sys

import pytest

from labkit.records import cost
from labkit.measure import clients
from labkit.measure.cpu import parse_softirq, ran_s
from labkit.measure.pulls import PullRun
from labkit.measure.survey import _medians
from labkit.path import CLIENT, PATH
from labkit.records import PullResult, survey_columns


def test_programs_come_from_the_path_in_byte_order_then_softirq():
    assert cost.programs(PATH) == ("uwsgi", "nginx", "docker-proxy", CLIENT, cost.SOFTIRQ)
    assert cost.columns(PATH) == ["cpu_s_per_GB_uwsgi", "cpu_s_per_GB_nginx", "cpu_s_per_GB_docker_proxy",
                                  "cpu_s_per_GB_client", "cpu_s_per_GB_softirq"]
    assert set(cost.columns(PATH)) <= set(survey_columns(PATH))


def test_per_gb_sums_services_of_one_program_and_leaves_the_unmeasured_empty():
    got = cost.per_gb({"nginx": 0.9, "docker-proxy@registry": 0.3, "docker-proxy@iperf3": 0.1,
                       CLIENT: 0.5, "delayfs@vm": 7.0, cost.SOFTIRQ: None}, 2e9, PATH)
    assert got == {"cpu_s_per_GB_uwsgi": None, "cpu_s_per_GB_nginx": 0.45, "cpu_s_per_GB_docker_proxy": 0.2,
                   "cpu_s_per_GB_client": 0.25, "cpu_s_per_GB_softirq": None}


def test_nothing_moved_has_no_cost():
    assert set(cost.per_gb({"nginx": 1.0}, 0, PATH).values()) == {None}


def test_from_row_and_servers():
    row = {"cpu_s_per_GB_nginx": 0.45, "cpu_s_per_GB_uwsgi": float("nan"), "cpu_s_per_GB_client": 0.2,
           "cpu_s_per_GB_softirq": 0.1, "cpu_s_per_GB_docker_proxy": None}
    costs = cost.from_row(row, PATH)
    assert costs == {"nginx": 0.45, CLIENT: 0.2, cost.SOFTIRQ: 0.1}
    assert cost.servers(costs) == {"nginx": 0.45}


def test_softirq_is_the_seventh_value_of_the_cpu_line_in_ticks():
    text = "cpu  79836 33 53950 96311 2673 0 19140 403 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert parse_softirq(text, 100) == pytest.approx(191.40)
    with pytest.raises(ValueError):
        parse_softirq("cpu0 1 2 3\n", 100)


def test_schedstat_seconds_count_new_threads_from_zero():
    before = {"10": (1.0, 0.5)}
    after = {"10": (1.75, 0.6), "11": (0.25, 0.0)}
    assert ran_s(before, after) == pytest.approx(1.0)


def _result(nbytes, cpu):
    return PullResult(ok=True, bytes=nbytes, seconds=1.0, ttfb_ms=1.0, sha256_ok=True, start=0.0, end=1.0, cpu_s=cpu)


def test_a_pull_row_carries_each_programs_cost_per_gb():
    run = PullRun("full path", 2, [_result(10**9, 0.2), _result(10**9, 0.3)], "sha256",
                  cpu_s={"nginx": 1.2, "uwsgi": 0.02, "docker-proxy@registry": 0.4}, softirq_s=0.1, path=PATH)
    row = run.row()
    assert row["cpu_s_per_GB_nginx"] == 0.6
    assert row["cpu_s_per_GB_uwsgi"] == 0.01
    assert row["cpu_s_per_GB_docker_proxy"] == 0.2
    assert row["cpu_s_per_GB_client"] == 0.25
    assert row["cpu_s_per_GB_softirq"] == 0.05


def test_survey_medians_skip_runs_that_did_not_measure():
    assert _medians([{"a": 1.0, "b": None}, {"a": 3.0, "b": None}, {"a": 2.0, "b": 5.0}], 1) == {"a": 2.0, "b": 5.0}


def test_an_external_client_is_charged_the_cpu_it_used():
    """A program's own CPU comes from its rusage when reaped (here a Python loop burning ~0.3 s)."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    proc = subprocess.Popen([sys.executable, "-c", burn])
    run = clients._Run(workdir=None, log=None, proc=proc, start=0.0)
    clients._wait(run, deadline=30)
    assert proc.returncode == 0 and proc.poll() == 0
    assert 0.25 <= run.cpu_s <= 1.5


def test_an_external_client_past_its_deadline_is_killed_and_reaped():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    run = clients._Run(workdir=None, log=None, proc=proc, start=0.0)
    clients._wait(run, deadline=0.2)
    assert run.timed_out and proc.returncode is not None and proc.returncode != 0
