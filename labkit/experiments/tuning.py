"""The tuning panel with its trials: labkit.present.widgets draws the controls and the table; each "apply
and measure" is labkit.measure.sweep.trial on the running lab, handed in from here."""
from __future__ import annotations

from ..lab.lab import Lab
from ..measure.sweep import trial
from ..present import widgets


class TuningPanel(widgets.TuningPanel):
    """`TuningPanel(lab)` in a notebook cell: every setting by hop, a preset picker, "apply and measure"."""

    def __init__(self, lab: Lab, parallel: int = 5):
        super().__init__(lab, lambda settings, label, n: trial(lab, settings, label, n), parallel)
