"""The one runner, with a stand-in lab: it brings the lab up, checks it, measures, records, and ends the lab when
the measurement fails or is interrupted; a declaration's settings are checked before any lab; a declared
experiment not built yet says so."""
from pathlib import Path

import pytest

from labkit.errors import LabError, LabkitError, SettingsError
from labkit.experiments import DECLARED, Experiment, declared, run, runner
from labkit.units import MiB


class FakeLab:
    made: list = []

    def __init__(self, name, settings, image_size, namespaced, keep, quiet, compute_nodes):
        self.name, self.settings, self.image_size, self.keep = name, settings, image_size, keep
        self.events = []
        self.health_said = {"nginx": "ok"}
        FakeLab.made.append(self)

    def up(self):
        self.events.append("up")
        return self

    def down(self):
        self.events.append("down")

    def health(self):
        return self.health_said


@pytest.fixture
def labs(monkeypatch):
    FakeLab.made = []
    monkeypatch.setattr(runner, "Lab", FakeLab)
    monkeypatch.setattr(runner, "DATA", Path("/nowhere"))
    return FakeLab.made


def measured(lab, exp, progress):
    lab.events.append(("measure", exp.image_size, exp.options.get("part")))
    progress.step("one")
    return exp.options.get("part", "the part")


def test_up_measure_record_down(labs, tmp_path):
    rec = []
    exp = Experiment("t", "a test", measured, image_size=16 * MiB, steps=lambda e: 1,
                     record=lambda out, where: rec.append(out.result) or tmp_path / "x.csv")
    out = run(exp, progress=False)
    [lab] = labs
    assert lab.events == ["up", ("measure", 16 * MiB, None), "down"]
    assert out.result == "the part" and out.saved == tmp_path / "x.csv" and rec == ["the part"]


@pytest.mark.parametrize("exc", [RuntimeError("broke"), KeyboardInterrupt()])
def test_the_lab_is_ended_when_the_measurement_fails_or_is_interrupted(labs, exc):
    def boom(lab, exp, progress):
        raise exc
    with pytest.raises(type(exc)):
        run(Experiment("t", "a test", boom), progress=False)
    assert labs[0].events == ["up", "down"]


def test_a_failed_health_check_measures_nothing_and_ends_the_lab(labs, monkeypatch):
    monkeypatch.setattr(FakeLab, "health", lambda self: {"nginx": "exited 1"})
    with pytest.raises(LabError, match="health check failed: nginx: exited 1"):
        run(Experiment("t", "a test", measured), progress=False)
    assert labs[0].events == ["up", "down"]


def test_keep_leaves_it_up_and_on_measures_a_running_lab_without_ending_it(labs):
    run(Experiment("t", "a test", measured), keep=True, progress=False)
    assert labs[0].events == ["up", ("measure", 64 * MiB, None)]
    mine = FakeLab("mine", None, 0, None, True, True, 1)
    run(Experiment("t", "a test", measured), on=mine, progress=False)
    assert mine.events == [("measure", 64 * MiB, None)]


def test_parts_one_lab_each_then_aggregated(labs):
    exp = Experiment("t", "a test", measured, labs=lambda e: [e.with_(image_size=n * MiB, options={"part": n})
                                                              for n in (8, 32)],
                     aggregate=lambda e, parts: sum(parts))
    assert run(exp, progress=False).result == 40
    assert [lab.events for lab in labs] == [["up", ("measure", 8 * MiB, 8), "down"],
                                            ["up", ("measure", 32 * MiB, 32), "down"]]


def test_settings_are_checked_before_any_lab(labs):
    with pytest.raises(SettingsError, match="uwsgi"):
        run(Experiment("t", "a test", measured, overrides=("uwsgi.processes=0",)), progress=False)
    assert labs == []


def test_declared_but_not_built_says_so(labs):
    with pytest.raises(LabkitError, match="'dilation' is declared but not built yet"):
        run(declared("dilation").with_(measure=None), progress=False)
    assert labs == []


def test_dilation_declares_one_lab_per_k_and_compares_them_to_the_first():
    import pandas as pd
    from types import SimpleNamespace
    from labkit.experiments import dilation
    exp = declared("dilation")
    parts = exp.labs(exp)
    assert [p.lab_settings().machine.dilation for p in parts] == [1.0, 2.0, 4.0]
    assert all(p.lab_settings().machine.vcpus == 1 for p in parts)

    def part(k, rate, v):
        t = pd.DataFrame([{"kind": "pull", "point": "client", "parallel": 1, "MBps": rate, "MBps_lo": rate,
                           "MBps_hi": rate, "failures": 0}])
        return {"k": k, "survey": SimpleNamespace(table=t), "verdict": v}
    out = dilation._aggregate(exp, [part(1.0, 20.0, "tls at nginx"), part(2.0, 22.0, "tls at nginx"),
                                    part(4.0, 15.0, "cpu at uwsgi")])
    assert out.vs_first_k.tolist() == [1.0, 1.1, 0.75] and out.same_verdict.tolist() == [True, True, False]


def test_every_declaration_loads_and_says_what_it_is():
    for name in DECLARED:
        exp = declared(name)
        assert exp.name == name and exp.about and exp.lab_settings() is not None
        assert exp.text is None or callable(exp.text)
    with pytest.raises(KeyError, match="no experiment 'nope'"):
        declared("nope")


def test_with_merges_options_and_keeps_what_is_not_given():
    exp = declared("survey").with_(options={"fix": True, "verify": None}, parallels=(1, 40))
    assert exp.options == {"iperf_seconds": 2, "verify": "sha256", "fix": True} and exp.parallel == 40
    assert declared("survey").options["fix"] is False


def test_a_bundle_is_written_only_when_the_check_handed_in_passes(tmp_path):
    from labkit.bundle.export import export_bundle
    from labkit.config.presets import PRESETS
    seen = []
    final, tar = export_bundle(PRESETS["recommended"], tmp_path, "ok", check=lambda stage, s: seen.append(
        (sorted(p.name for p in stage.iterdir()), s.app.serve_mode)))
    assert final.is_dir() and tar.is_file() and seen[0][1] == PRESETS["recommended"].app.serve_mode
    assert {"nginx.conf", "uwsgi.ini", "nginx"} <= set(seen[0][0])

    def refuse(stage, s):
        raise ValueError("nginx -t said no")
    with pytest.raises(ValueError, match="nginx -t said no"):
        export_bundle(PRESETS["recommended"], tmp_path, "refused", check=refuse)
    assert not (tmp_path / "refused").exists() and not (tmp_path / "refused.tar.gz").exists()


def test_the_storm_declaration_runs_a_locust_storm_on_the_lab(monkeypatch):
    from labkit.experiments import storm
    seen = []
    monkeypatch.setattr(storm.locust_storm, "measure_storm", lambda lab, spec: seen.append((lab, spec)) or "run")
    monkeypatch.setattr(storm, "storm_of", lambda run_: f"tables of {run_}")
    lab = object()
    assert storm.STORM.with_(options={"spec": "spec"}).measure(lab, storm.STORM.with_(options={"spec": "spec"}), None) \
        == "tables of run" and seen == [(lab, "spec")]
