"""Settings compared on one lab: a sweep of knobs one at a time (`labkit sweep`), the seed case (sregistry
as shipped, the seed poster's tweaks, the recommended set, at each pull count), a survey before and after."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..bundle.export import changes
from ..config.overrides import apply_overrides, parse_override
from ..config.presets import PRESETS
from ..lab.lab import Lab
from ..measure.survey import run_survey
from ..measure.sweep import WINNER_RULE, knob, one_at_a_time, run_presets, settings_of, winner
from ..records import Survey
from .declare import Experiment, Outcome, Progress


def knobs_of(specs: list[str], base) -> dict[str, list]:
    """`group.field=v1,v2,...` as the sweep's {path: [values]}, each value typed as --set types it and checked
    against `base` (SettingsError names a bad one before any lab starts)."""
    knobs = {}
    for spec in specs:
        group, field, values = parse_override(spec)
        path = f"{group}.{field}"
        knobs[path] = [knob(apply_overrides(base, [f"{path}={v.strip()}"]), path)
                       for v in values.split(",") if v.strip()]
    return knobs


def _sweep(lab: Lab, exp: Experiment, progress: Progress) -> pd.DataFrame:
    return one_at_a_time(lab, lab.settings, exp.options["knobs"], parallel=exp.parallel, verify="length",
                         repeats=exp.repeats, progress=progress.on)


def _record_sweep(out: Outcome, where: Path) -> Path:
    """The trials as CSV: the declared `out` file, or `<time>-sweep-<label>.csv` in the results."""
    exp = out.experiment
    path = Path(exp.options.get("out") or where / f"{time.strftime('%Y%m%d-%H%M%S')}-sweep-{exp.label}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.result.drop(columns=["settings"]).to_csv(path, index=False)
    return path


def best_of(table: pd.DataFrame) -> pd.Series | None:
    """The sweep's winner: the last knob's kept trial, or by WINNER_RULE; None when every trial failed."""
    last = table[table.step == table.step.iloc[-1]]
    return last[last.kept].iloc[0] if "kept" in last and last.kept.any() else winner(table)


def sweep_text(out: Outcome) -> str:
    table = out.result
    lines = [table[[c for c in table.columns if c != "settings"]].to_string(index=False), "",
             f"winner rule: {WINNER_RULE}"]
    best = best_of(table)
    if best is None:
        return "\n".join([*lines, "no trial pulled without failure: no winner"])
    lines.append(f"winner: {best['label']}")
    lines += [f"  {c['path']}: {c['old']} -> {c['new']}"
              for c in changes(settings_of(best), out.experiment.lab_settings())]
    return "\n".join([*lines, f"saved {out.saved}"])


SWEEP = Experiment(
    "sweep", "one knob at a time from the settings: each knob's values with the others at their best so far",
    _sweep, parallels=(1, 5), repeats=1, record=_record_sweep, text=sweep_text, options={"knobs": {}})


def seed_case(lab: Lab, parallels: list[int], names: list[str] | None = None, **kw) -> pd.DataFrame:
    """sregistry as shipped vs the seed poster's tweaks vs the recommended set, at each parallel count."""
    presets = {n: PRESETS[n] for n in (names or ["sregistry-2018-10", "seed-poster", "recommended"])}
    return run_presets(lab, presets, parallels, **kw)


def _record_trials(out: Outcome, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{time.strftime('%Y%m%d-%H%M%S')}-presets.csv"
    out.result.drop(columns=["settings"]).to_csv(path, index=False)
    return path


SEED_CASE = Experiment(
    "seed-case", "sregistry as shipped, the seed poster's tweaks and the recommended set at each pull count",
    lambda lab, exp, progress: seed_case(lab, list(exp.parallels), exp.options.get("presets"), progress=progress.on),
    parallels=(1, 5, 40), record=_record_trials)


def before_after(lab: Lab, before: str, after: str, parallel: int = 5, **kw) -> tuple[Survey, Survey, pd.DataFrame]:
    """The survey under preset `before`, then under `after`, and their MB/s side by side per hop, with what
    `after` gives for each MB/s of `before`. A row one survey has not (a stage that carries no image under
    that preset) reads so in words."""
    surveys = []
    for name in (before, after):
        lab.apply(PRESETS[name])
        surveys.append(run_survey(lab, parallel=parallel, **kw))
    keys = ["kind", "point", "parallel"]
    cols = {name: f"MB/s, {name}" for name in (before, after)}
    rows = pd.concat([s.table[keys] for s in surveys]).drop_duplicates()          # in the surveys' own order
    table = rows.merge(surveys[0].table[[*keys, "MBps"]].rename(columns={"MBps": cols[before]}), on=keys, how="left")
    table = table.merge(surveys[1].table[[*keys, "MBps"]].rename(columns={"MBps": cols[after]}), on=keys, how="left")
    ratio = table[cols[after]] / table[cols[before]]
    table[f"{after} ÷ {before}"] = ratio.map(lambda x: f"{x:.1f}x" if pd.notna(x) and x != float("inf") else "")
    for name, col in cols.items():
        table[col] = table[col].astype(object).where(table[col].notna(), f"not on the path under {name}")
    return surveys[0], surveys[1], table
