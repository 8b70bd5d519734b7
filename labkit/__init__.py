"""servelab's library: a container registry's serving path in network namespaces, measured hop by hop.

The flow is one way: config → lab → measure → analyze → present / bundle.

    import labkit as lk
    with lk.Lab("main") as lab:
        survey = lk.run_survey(lab)
        print(lk.verdict(survey.table))

Everything a notebook or a script needs is a name here (loaded on first use, so the CLI
starts fast); the subpackages hold the parts:

    labkit.path      the path declared once (nodes, links, services, hops, vantages, stages)
    labkit.config    typed settings, presets, Jinja2 templates, an operator's files imported
    labkit.lab       namespaces, one class per program, apply, supervision, teardown
    labkit.measure   pulls (one primitive), iperf3, CPU, captures, the survey, sweeps, the probe, Locust storms
    labkit.analyze   TCP windows, the path verdict, shared CPU and cost per byte, remedies, the words,
                     CPU cost per byte carried to another machine (scale)
    labkit.present   figures, the HTML report, the tuning panel, what a notebook shows (lk.notebook, lk.show)
    labkit.bundle    the deployable config bundle
"""
from __future__ import annotations

import importlib
import logging

__version__ = "0.2.0"

_PUBLIC = {
    "LabkitError": "errors", "SettingsError": "errors", "ServiceDown": "errors", "LabError": "errors",
    "PATH": "path", "plan": "path", "registry_path": "path", "ServingPath": "path",
    "LabSettings": "config.settings", "parse_settings": "config.settings",
    "PRESETS": "config.presets", "preset": "config.presets",
    "templates": "config.render",
    "import_files": "config.importer", "SregistryFiles": "config.importer", "load_settings": "config.overrides",
    "Lab": "lab.lab", "DATA": "lab.lab",
    "pull_at": "measure.pull_at", "PullRun": "measure.pull_at",
    "run_survey": "measure.survey", "Survey": "records",
    "capture_pull": "measure.capture", "run_probe": "workflows", "probe_verdict": "analyze.probe_verdict",
    "run_storm": "workflows", "StormSpec": "measure.locust_storm", "Storm": "analyze.storm_tables",
    "jain": "analyze.storm_tables",
    "trial": "measure.sweep", "grid": "measure.sweep", "one_at_a_time": "measure.sweep",
    "winner": "measure.sweep", "run_presets": "measure.sweep", "WINNER_RULE": "measure.sweep",
    "with_knobs": "measure.sweep", "knob": "measure.sweep", "settings_of": "measure.sweep",
    "verdict": "analyze.verdict", "headline": "analyze.words", "verdict_text": "analyze.words",
    "fix": "workflows", "REMEDIES": "analyze.remedies", "candidates": "analyze.remedies", "inject": "lab.faults", "run_matrix": "matrix", "CASES": "matrix", "analyze_pcap": ("analyze.tcpflow", "analyze"),
    "flow_verdict": "analyze.windows",
    "look_inside": "workflows", "capture_points_for": "workflows", "seed_case": "workflows",
    "full_report": "workflows", "survey_report": "workflows", "before_after": "workflows", "seed_case_report": "workflows",
    "run_hypotheses": "workflows", "tls_seed_case": "workflows", "scale": "analyze.scale", "machine_cpu": "analyze.scale",
    "machine_view": "analyze.scale", "FIXES": "config.tls_fixes", "CPU_MODELS": ("config.cpu_models", "MODELS"),
    "HYPOTHESES": "analyze.hypotheses", "observations": "analyze.hypotheses",
    "rulebook_table": "analyze.hypotheses", "judge_results": "analyze.hypotheses", "verdicts": "analyze.hypotheses",
    "experiments": "analyze.hypotheses",
    "failure_mechanisms": ("analyze.hypotheses", "mechanisms"), "dilate": "config.dilation",
    "export_bundle": "bundle.export", "import_bundle": "bundle.export", "diff_against": "bundle.export",
    "TuningPanel": "present.widgets", "notebook": ("present.notebook", "setup"), "show": "present.notebook",
    "show_verdict": "present.notebook", "show_text": "present.notebook", "link": "present.notebook", "plots": ("present.plots", None), "report": ("present.report", None),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    where = _PUBLIC.get(name)
    if where is None:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    module, attr = (where, name) if isinstance(where, str) else where
    mod = importlib.import_module(f"labkit.{module}")
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def _default_logging() -> None:
    """labkit's messages on stderr as `[labkit] ...`, unless the application configured logging itself."""
    log = logging.getLogger("labkit")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[labkit] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


_default_logging()
