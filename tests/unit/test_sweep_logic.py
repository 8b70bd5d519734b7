import pandas as pd
import pytest

from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.config.settings import SettingsError
from labkit.measure.sweep import WINNER_RULE, knob, winner, with_knobs
from labkit.path import plan
from labkit.present.widgets import TuningPanel


def test_knobs_by_dotted_name():
    s = with_knobs(SREGISTRY_SHIPPED, {"nginx.sendfile": False, "app.serve_mode": "accel"})
    assert knob(s, "nginx.sendfile") is False and knob(s, "app.serve_mode") == "accel"
    with pytest.raises(SettingsError, match="'nginx.sendfiel' is not a setting"):
        with_knobs(SREGISTRY_SHIPPED, {"nginx.sendfiel": False})
    with pytest.raises(SettingsError, match="app.serve_mode"):
        with_knobs(SREGISTRY_SHIPPED, {"app.serve_mode": "fast"})


def test_winner_needs_zero_failures_and_both_single_and_parallel():
    df = pd.DataFrame([
        {"label": "fast but failing", "single_MBps": 3000, "parallel_MBps": 4000, "failures": 1},
        {"label": "one fast pull", "single_MBps": 2000, "parallel_MBps": 300, "failures": 0},
        {"label": "balanced", "single_MBps": 1500, "parallel_MBps": 1500, "failures": 0},
    ])
    assert winner(df)["label"] == "balanced"        # sqrt(1500*1500) > sqrt(2000*300)
    assert "no failed pull" in WINNER_RULE
    assert winner(df[df.failures > 0]) is None


class _StubLab:
    settings = SREGISTRY_SHIPPED
    plan = plan("stub", False)
    path = plan.path

    def check(self, s):
        return []


def _no_trial(settings, label, parallel):
    raise AssertionError("no trial in this test")


def test_panel_reads_its_controls_and_names_bad_ones():
    p = TuningPanel(_StubLab(), _no_trial)
    assert p.settings() == SREGISTRY_SHIPPED
    p._controls[("kernel", "tcp_wmem")].value = "4096 65536 8388608"
    p._controls[("nginx", "uwsgi_buffers")].value = "16 8k"
    p._controls[("app", "serve_mode")].value = "accel"
    s = p.settings()
    assert s.kernel.tcp_wmem == (4096, 65536, 8388608) and str(s.nginx.uwsgi_buffers) == "16 8k"
    p._controls[("uwsgi", "processes")].value = "many"
    with pytest.raises(SettingsError, match="uwsgi.processes"):
        p.settings()
    p.preset.value = "seed-poster"
    assert p.settings().uwsgi.processes == 128 and p.settings().nginx.sendfile is False


def test_a_knob_keeps_its_first_value_unless_beaten_beyond_the_spread():
    from labkit.measure.sweep import kept
    row = lambda v, s, lo, hi: {"publish.userland_proxy": v, "single_MBps": s, "parallel_MBps": s,  # noqa: E731
                                "single_lo": lo, "single_hi": hi, "parallel_lo": lo, "parallel_hi": hi, "failures": 0}
    within = pd.DataFrame([row("True", 700, 650, 760), row("False", 720, 690, 750)])
    assert kept(within, "publish.userland_proxy", "True")["publish.userland_proxy"] == "True"
    beyond = pd.DataFrame([row("True", 700, 650, 760), row("False", 900, 800, 950)])
    assert kept(beyond, "publish.userland_proxy", "True")["publish.userland_proxy"] == "False"


def test_apply_and_measure_runs_the_trial_it_was_handed_and_refuses_bad_settings():
    trials = []
    p = TuningPanel(_StubLab(), lambda s, label, n: trials.append((s, label, n)) or {"label": label})
    p.set("uwsgi.processes", "many")
    assert p.apply_and_measure() is None and "uwsgi.processes" in p.last_error and trials == []
    with pytest.raises(SettingsError, match="'uwsgi.nope' is not a setting of this panel"):
        p.set("uwsgi.nope", "1")
    p.set("uwsgi.processes", "8")
    p._redraw = lambda: None
    p.label.value = "eight"
    assert p.apply_and_measure() == {"label": "eight"}
    [(s, label, n)] = trials
    assert s.uwsgi.processes == 8 and label == "eight" and n == p.parallel.value


def test_the_notebooks_panel_hands_the_sweeps_trial_on_its_lab(monkeypatch):
    from labkit.experiments import tuning
    seen = []
    monkeypatch.setattr(tuning, "trial", lambda lab, s, label, n: seen.append((lab, label, n)) or {})
    lab = _StubLab()
    panel = tuning.TuningPanel(lab, parallel=3)
    panel.measure(SREGISTRY_SHIPPED, "t", 3)
    assert seen == [(lab, "t", 3)] and isinstance(panel, TuningPanel)
