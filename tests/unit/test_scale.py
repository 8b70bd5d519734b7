"""lk.scale on crafted surveys with exact answers: one pull is one core per program, N pulls spread over a
program's processes and share the machine's cores; a survey of another CPU is refused."""
from types import SimpleNamespace

import pandas as pd
import pytest

from labkit.analyze.scale import machine_cpu, machine_view, scale
from labkit.config.presets import PRESETS
from labkit.path import PATH


def survey(nginx=0.5, uwsgi=0.05, client=0.3, workers=1, model="opteron-6174", ratio=2.5, many=None):
    row = lambda n, c: {"kind": "pull", "point": "full path", "parallel": n, "MBps": 100.0,
                        "cpu_s_per_GB_nginx": c[0], "cpu_s_per_GB_uwsgi": c[1], "cpu_s_per_GB_docker_proxy": 0.0,
                        "cpu_s_per_GB_client": c[2], "cpu_s_per_GB_softirq": 0.4}
    settings = PRESETS["sregistry-2018-10-https"].changed(nginx={"worker_processes": workers},
                                                          uwsgi={"processes": 128, "threads": 1})
    t = pd.DataFrame([row(1, (nginx, uwsgi, client)), row(40, many or (nginx, uwsgi, client))])
    return SimpleNamespace(table=t, settings=settings.model_dump(mode="json"),
                           meta={"parallel": 40, "cpu_model": {"model": model, "ratio": ratio, "emulate": True}},
                           path=PATH)


def test_one_pull_is_one_core_of_the_costliest_program():
    s = scale(survey(), cores=8, model="opteron-6174")
    assert s.one_MBps == pytest.approx(1e3 / 1.25) and s.one_by.startswith("nginx's CPU (1 core(s), 1.25 s/GB)")
    assert list(s.table.program) == ["uwsgi", "nginx"]           # docker-proxy idle (0), client apart, softirq out
    assert any("client" in n and "not counted" in n for n in s.notes)


def test_one_worker_holds_n_pulls_to_one_core_and_many_workers_share_the_machine():
    assert scale(survey(workers=1), cores=8).many_MBps == pytest.approx(800)
    s = scale(survey(workers=32), cores=8, pulls=40)
    assert s.many_MBps == pytest.approx(8e3 / (1.25 + 0.125), abs=0.1) and s.many_by.startswith("the machine's 8 core(s)")
    assert s.machine_pct(s.one_MBps) == pytest.approx(100 * 1.375 * 0.8 / 8, abs=0.1)    # dstat: 13.8% for one pull


def test_the_lab_itself_counts_its_client_and_costs_measured_with_n_pulls():
    s = scale(survey(model="host", ratio=1.0, many=(0.6, 0.05, 0.3)), cores=2, model="host", with_client=True,
              pulls=2)
    assert s.many_MBps == pytest.approx(min(1 * 1e3 / 0.6, 2e3 / (0.6 + 0.05 + 0.3)), abs=0.1)
    assert s.one_MBps == pytest.approx(min(1e3 / 0.5, 2e3 / 0.85), abs=0.1)


def test_a_survey_of_another_cpu_is_refused_and_the_machine_view_is_exact():
    with pytest.raises(ValueError, match="cpu.model=opteron-6174"):
        scale(survey(model="host", ratio=1.0), model="opteron-6174")
    assert machine_cpu({"nginx": 31.25, "uwsgi": 1.0}, 32.0, 8) == pytest.approx(12.9, abs=0.05)


def test_the_machine_view_is_what_dstat_would_show_on_the_operators_vcpus():
    row = {"MBps": 32.0, "cpu_s_per_GB_nginx": 12.0, "cpu_s_per_GB_uwsgi": 0.2, "cpu_s_per_GB_docker_proxy": 0.0,
           "cpu_s_per_GB_client": 1.0, "cpu_s_per_GB_softirq": 3.0}
    v = machine_view(row, PATH, ratio=2.5, vcpus=8)
    assert v["nginx_pct_of_a_core"] == pytest.approx(96.0) and v["uwsgi_pct_of_a_core"] == pytest.approx(1.6)
    assert v["machine_pct"] == pytest.approx((96.0 + 1.6) / 8, abs=0.1)           # 12%: "almost nothing"


def test_n_pulls_as_nginx_placed_them_and_the_placement_read_run_by_run():
    s = survey(workers=2, model="host", ratio=1.0)
    assert scale(s, cores=2, model="host", pulls=2).many_MBps == pytest.approx(min(2e3 / 0.5, 2e3 / 0.55), abs=0.1)
    one = scale(s, cores=2, model="host", pulls=2, placed={"nginx": 1})
    assert one.many_MBps == pytest.approx(1e3 / 0.5) and one.many_by.startswith("nginx's CPU (1 core(s)")
    assert scale(s, cores=2, model="host", pulls=2, placed={"nginx": 5}).many_MBps == pytest.approx(2e3 / 0.55, abs=0.1)
    cpu = lambda run, name, busiest, total: {"source": "cpu", "point": "full path", "parallel": 2, "run": run,
                                             "name": name, "cpu_max_proc": busiest, "cpu_total": total}
    detail = pd.DataFrame([cpu(0, "nginx", 98.0, 101.0), cpu(0, "uwsgi", 5.0, 9.0),     # both on one worker
                           cpu(1, "nginx", 60.0, 118.0),                                 # one each
                           cpu(2, "nginx", 0.0, 0.0),                                    # nothing measured: no answer
                           {**cpu(1, "nginx", 90.0, 90.0), "parallel": 1}])              # another pull count
    from labkit.analyze.scale import placed
    assert placed(detail, "nginx", "full path", 2).to_dict() == {0: 1, 1: 2}
