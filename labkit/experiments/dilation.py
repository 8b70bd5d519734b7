"""The dilation check (issue 25), declared and not built: whether a run on this machine dilates time the way
the CPU model says, by measuring one pull at the model's speed and at the host's. `run(DILATION)` says it is
not built; building it is writing `measure` (and `record`, `text`) here."""
from __future__ import annotations

from .declare import Experiment

DILATION = Experiment(
    "dilation", "not built (issue 25): one pull at the CPU model's speed and at the host's, the ratio checked "
    "against the model's", None, settings="sregistry-2018-10", parallels=(1,), repeats=3)
