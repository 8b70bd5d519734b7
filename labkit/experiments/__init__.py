"""Experiments declared as data and run by one runner (the top tier: it may import every layer below).

    from labkit.experiments import declared, run
    outcome = run(declared("survey").with_(parallels=(1, 40)))
    print(outcome.experiment.text(outcome))

    declare.py   Experiment (settings, path, vantage points, pull counts, repeats, image size, where it is
                 recorded) and its roles: measure, aggregate, record, text; Outcome; Progress
    runner.py    run(): the lab up, health, measure with progress, record; the lab ended on failure or Ctrl-C
    one module per kind: survey (and fix), sweep (and the seed case, before/after), hypotheses (and the TLS
    seed case), matrix (the verdict's injection matrix), reports (HTML), probe, storm, clients,
    dilation (one case at k = 1, 2, 4 read back), contest (every hypothesis at the seed's scale, judged alike); bundles (export checked by the real programs), tuning (the panel's trials)

Adding an experiment: a module here with its declaration, and its row in DECLARED; `labkit run NAME` runs it.
"""
from __future__ import annotations

import importlib

from .declare import Experiment, Outcome, Progress
from .runner import run

# name -> (module, declaration): imported when asked for, so `labkit` starts without the heavy ones (bokeh, scapy)
DECLARED = {
    "survey": ("survey", "SURVEY"),
    "sweep": ("sweep", "SWEEP"),
    "seed-case": ("sweep", "SEED_CASE"),
    "seed-fixes": ("seed_fix", "SEED_FIXES"),
    "hypotheses": ("hypotheses", "HYPOTHESES"),
    "tls-seed-case": ("hypotheses", "TLS_SEED_CASE"),
    "matrix": ("matrix", "MATRIX"),
    "report": ("reports", "REPORT"),
    "storm": ("storm", "STORM"),
    "clients": ("clients", "CLIENTS"),
    "dilation": ("dilation", "DILATION"),
    "contest": ("contest", "CONTEST"),
    "oci-hypotheses": ("oci_hypotheses", "OCI_HYPOTHESES"),
}


def declared(name: str) -> Experiment:
    """The declaration called `name` (a key of DECLARED)."""
    if name not in DECLARED:
        raise KeyError(f"no experiment {name!r}; declared: {', '.join(DECLARED)}")
    module, attr = DECLARED[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


__all__ = ["DECLARED", "Experiment", "Outcome", "Progress", "declared", "run"]
