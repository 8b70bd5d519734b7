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
    labkit.app       the registry the lab serves (a Django app under uwsgi), its catalog of test images
    labkit.clients   the pull clients: the registry's pull API from a client's side, and the client kinds (KINDS)
    labkit.lab       namespaces, one class per program, apply, supervision, teardown
    labkit.measure   pulls (one primitive), iperf3, CPU, captures, the survey, sweeps, the probe, Locust storms
    labkit.analyze   TCP windows, the path verdict, shared CPU and cost per byte, remedies, the words,
                     CPU cost per byte carried to another machine (scale)
    labkit.present   figures, the HTML report, the tuning panel, what a notebook shows (lk.notebook, lk.show)
    labkit.bundle    the deployable config bundle
    labkit.experiments  experiments declared as data (survey, fix, sweep, seed case, hypotheses, the verdict
                     matrix, ...) and the one runner that brings a lab up, measures, records and ends it
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
    "capture_pull": "measure.capture", "run_probe": "experiments.probe", "probe_verdict": "analyze.probe_verdict",
    "run_storm": "experiments.storm", "StormSpec": "measure.locust_storm", "Storm": "analyze.storm_tables",
    "jain": "analyze.storm_tables",
    "trial": "measure.sweep", "grid": "measure.sweep", "one_at_a_time": "measure.sweep",
    "winner": "measure.sweep", "run_presets": "measure.sweep", "WINNER_RULE": "measure.sweep",
    "with_knobs": "measure.sweep", "knob": "measure.sweep", "settings_of": "measure.sweep",
    "verdict": "analyze.verdict", "headline": "analyze.words", "verdict_text": "analyze.words",
    "fix": "experiments.survey", "REMEDIES": "analyze.remedies", "candidates": "analyze.remedies", "inject": "lab.faults", "run_matrix": "experiments.matrix", "CASES": "experiments.matrix", "analyze_pcap": ("analyze.tcpflow", "analyze"),
    "flow_verdict": "analyze.windows",
    "look_inside": "experiments.reports", "capture_points_for": "experiments.reports", "seed_case": "experiments.sweep",
    "full_report": "experiments.reports", "survey_report": "experiments.reports",
    "before_after": "experiments.sweep", "seed_case_report": "experiments.reports",
    "run_hypotheses": "experiments.hypotheses", "tls_seed_case": "experiments.hypotheses", "scale": "analyze.scale", "machine_cpu": "analyze.scale",
    "machine_view": "analyze.scale", "FIXES": "config.tls_fixes", "CPU_MODELS": ("config.cpu_models", "MODELS"),
    "HYPOTHESES": "analyze.hypotheses", "observations": "analyze.hypotheses",
    "rulebook_table": "analyze.hypotheses", "recorded_hypotheses": ("analyze.hypotheses", "recorded"), "judge_results": "analyze.hypotheses", "verdicts": "analyze.hypotheses",
    "required_experiments": ("analyze.hypotheses", "experiments"),
    "cpu_ratio": "records.cpu_ratio", "recorded_contest": ("analyze.contest", "recorded"), "contest_misses": ("analyze.contest", "misses"),
    "seed_lab": "experiments.seed_fix", "seed_fixes": "experiments.seed_fix", "seed_bundle": "experiments.seed_fix",
    "seed_winner": ("experiments.seed_fix", "winner"), "recorded_seed_fixes": ("experiments.seed_fix", "recorded"),
    "seed_fixes_table": ("analyze.seed_fix", "fixes_table"), "seed_fixes_text": ("analyze.seed_fix", "render"),
    "failure_mechanisms": ("analyze.hypotheses", "mechanisms"), "dilate": "config.dilation",
    "parse_size": "units", "format_size": "units",
    "export_bundle": "experiments.bundles", "import_bundle": "bundle.export", "diff_against": "bundle.export",
    "TuningPanel": "experiments.tuning", "notebook": ("present.notebook", "setup"), "show": "present.notebook",
    "readable": ("present.numbers", "table"), "rounded": "present.numbers",
    "show_verdict": "present.notebook", "show_text": "present.notebook", "link": "present.notebook", "plots": ("present.plots", None), "report": ("present.report", None),
    "run": "experiments.runner", "Experiment": "experiments.declare", "experiments": ("experiments", None),
    "declared": "experiments", "DECLARED": "experiments",
    "OCI_HYPOTHESES": ("analyze.oci_hypotheses", "HYPOTHESES"), "oci_hypotheses_table": ("analyze.oci_hypotheses", "table"),
    "run_oci_hypotheses": "experiments.oci_hypotheses", "oci_lab_settings": ("experiments.oci_hypotheses", "base_settings"),
    "oci_binding": ("analyze.oci_hypotheses", "binding"), "oci_fix_for": ("analyze.oci_hypotheses", "fix_for"),
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


def _default_logging(level: int | None = None) -> None:
    """labkit's messages on stderr as `[labkit] ...`, unless the application configured logging itself.
    INFO is the lab's routine ("lab 'main' is up", "deleted namespace ..."), WARNING what a reader must
    see; the `labkit` command shows WARNING and up unless given -v (verbosity)."""
    log = logging.getLogger("labkit")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[labkit] %(message)s"))
        log.addHandler(handler)
        log.propagate = False
        log.setLevel(logging.INFO if level is None else level)
    elif level is not None:          # the CLI's -v: its level, whoever configured the handlers
        log.setLevel(level)


def verbosity(count: int) -> int:
    """The `labkit` command's level for -v given `count` times: 0 WARNING (routine lab messages hidden),
    1 INFO, 2 or more DEBUG (also what a lab made with quiet=True says)."""
    return logging.WARNING if count <= 0 else logging.INFO if count == 1 else logging.DEBUG


_default_logging()
