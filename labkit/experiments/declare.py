"""An experiment as data: what it runs on (settings, path, image), how much (pull counts, repeats), and its
roles: `measure` on a lab that is up, `aggregate` the parts, `record` the outcome, `text` for a terminal.

The shape follows flent's split of a test into data and roles (tohojo/flent at 688fc674, flent/tests/*.conf
declare a test's DATA_SETS, each naming its runner; flent/runners.py runs them, flent/aggregators.py
collects the repetitions, flent/plotters.py and formatters.py show them): an idea taken, no code.
labkit.experiments.runner.run is the one runner.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..config.overrides import apply_overrides, load_settings
from ..config.presets import preset
from ..config.settings import LabSettings
from ..units import MiB

Measure = Callable[["Lab", "Experiment", "Progress"], Any]   # (the lab, the declaration, progress) -> a part


@dataclass(frozen=True)
class Experiment:
    """One experiment declared. `settings`: a preset's name, a settings file (Path) or settings; `overrides`:
    `group.field=value` changes on them. `options`: what the kind takes besides (verify, knobs, cases, ...)."""
    name: str
    about: str
    measure: Measure | None                      # None: declared, not built yet (says so when run)
    settings: str | Path | LabSettings = "sregistry-2018-10"
    overrides: tuple[str, ...] = ()
    compute_nodes: int = 1                       # the path: compute nodes behind one switch
    vantages: tuple[str, ...] | None = None      # where pulls are made (None: every vantage point of the path)
    parallels: tuple[int, ...] = (1, 5)          # pull counts
    repeats: int = 3
    image_size: int = 64 * MiB
    records: str = "results"                     # where under labkit.lab.lab.DATA the outcome is written
    lab_name: str = "main"
    namespaced: bool | None = None               # None: namespaces when root, else 127.0.0.1 ports
    health: bool = True                          # a health check before measuring (every service, every vantage)
    options: Mapping[str, Any] = field(default_factory=dict)
    labs: Callable[["Experiment"], list["Experiment"]] | None = None   # one lab per part (default: one lab)
    steps: Callable[["Experiment"], int] | None = None                 # the progress bar's total
    aggregate: Callable[["Experiment", list], Any] | None = None       # the parts as one result (default: the part)
    record: Callable[["Outcome", Path], Path | None] | None = None        # (the outcome, where) -> what it wrote
    text: Callable[["Outcome"], str] | None = None                     # the outcome in a terminal's words

    def with_(self, **changes) -> "Experiment":
        """This declaration with fields changed; `options` merged (a key given as None keeps the declared one)."""
        if "options" in changes:
            changes["options"] = {**self.options, **{k: v for k, v in changes["options"].items() if v is not None}}
        return dataclasses.replace(self, **changes)

    @property
    def parallel(self) -> int:
        """The largest pull count (a survey's N beside its single pull)."""
        return max(self.parallels)

    @property
    def label(self) -> str:
        """The name the outcome is saved under: options' `label`, the settings file's stem or the preset's name."""
        if self.options.get("label"):
            return self.options["label"]
        if isinstance(self.settings, Path):
            return self.settings.stem
        return self.settings if isinstance(self.settings, str) else self.name

    def lab_settings(self) -> LabSettings:
        """The settings with every override applied (SettingsError names what is wrong, before any lab)."""
        s = self.settings
        base = load_settings(s) if isinstance(s, Path) else preset(s) if isinstance(s, str) else s
        return apply_overrides(base, list(self.overrides))


@dataclass
class Outcome:
    """What the runner hands back: the declaration it ran, the result, where it was recorded, how long it took."""
    experiment: Experiment
    result: Any
    saved: Path | None
    wall_s: float


@dataclass
class Progress:
    """What a measure shows while it runs: `on` (a person is watching: a kind with a bar of its own draws it),
    and the runner's bar, counting the declaration's `steps`."""
    on: bool
    bar: Any

    def step(self, what: str = "") -> None:
        if what:
            self.bar.set_postfix_str(what)
        self.bar.update()
