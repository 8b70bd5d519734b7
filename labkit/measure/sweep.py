"""Trials of settings on the running lab: apply, pull once and N at once, keep a tidy table, pick a winner.

Winner rule (stated, and the only one): among trials with no failed pull, the highest
geometric mean of the single-pull MB/s and the N-parallel aggregate MB/s — a setting must
help one pull *and* many, as in the seed (one slow pull; failures at 5 parallel). With
`repeats` > 1 each trial is the median of its repeats with the slowest and fastest beside it,
and the one-knob-at-a-time search keeps a knob's first value (the incumbent) unless another's
slowest repeat beats the incumbent's fastest: a difference inside the spread is no finding.
"""
from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..lab.lab import Lab
from ..clients.puller import check_parallel
from .pull_at import pull_at
from ..config.settings import LabSettings, SettingsError, is_keyed, setting
from ..progress import bar as tqdm

WINNER_RULE = ("no failed pull; then the highest geometric mean of single-pull MB/s and "
               "N-parallel aggregate MB/s; a knob keeps its first value unless another beats it beyond the "
               "repeats' spread")


def knob(s: LabSettings, path: str) -> Any:
    group, field = split_setting(path)
    return setting(s, group, field)


def with_knobs(s: LabSettings, values: dict[str, Any]) -> LabSettings:
    """`s` with dotted settings changed: {'nginx.sendfile': False, 'app.serve_mode': 'accel'}."""
    groups: dict[str, dict] = {}
    for path, v in values.items():
        group, field = split_setting(path)
        groups.setdefault(group, {})[field] = v
    return s.changed(**groups)


def split_setting(path: str) -> tuple[str, str]:
    """(group, field) of a dotted setting; a group keyed by the path's names (links, cpu) takes any name
    here, and the lab checks it against its path."""
    group, _, field = path.partition(".")
    if not field or group not in LabSettings.model_fields or (
            not is_keyed(group) and field not in LabSettings.model_fields[group].annotation.model_fields):
        raise SettingsError(f"{path!r} is not a setting; use group.field, e.g. nginx.sendfile")
    return group, field


def trial(lab: Lab, settings: LabSettings, label: str = "", parallel: int = 5, vantage: str | None = None,
          verify: str = "length", deadline: float = 120, repeats: int = 1) -> dict:
    """Apply `settings`, pull once and `parallel` times at once from `vantage` (default: the client's),
    `repeats` times round by round; one row (medians, with the slowest and fastest repeat)."""
    if vantage:
        lab.path.vantage(vantage)   # a bad name or count fails before anything is applied
    check_parallel(parallel)
    if not 1 <= repeats <= 20:
        raise ValueError(f"repeats {repeats}: 1..20")
    t0 = time.perf_counter()
    lab.apply(settings)
    applied = time.perf_counter() - t0
    ones, manys = [], []
    for _ in range(repeats):
        ones.append(pull_at(lab, vantage, 1, verify=verify, deadline=deadline))
        manys.append(pull_at(lab, vantage, parallel, verify=verify, deadline=deadline) if parallel > 1 else ones[-1])
    runs = ones + [m for m, o in zip(manys, ones) if m is not o]
    busiest = max(runs, key=lambda r: r.busiest_cpu)
    single, par = [r.mbps for r in ones], [r.mbps for r in manys]
    return {"label": label, "single_MBps": round(statistics.median(single), 1), "parallel": parallel,
            "parallel_MBps": round(statistics.median(par), 1),
            "single_lo": round(min(single), 1), "single_hi": round(max(single), 1),
            "parallel_lo": round(min(par), 1), "parallel_hi": round(max(par), 1), "repeats": repeats,
            "per_pull_min": round(min(x.mbps for r in manys for x in r.results), 1),
            "failures": sum(r.failures for r in runs),
            "errors": "; ".join(e for e in sorted({r.errors for r in runs}) if e),
            "busiest": busiest.busiest, "busiest_cpu": busiest.busiest_cpu,
            "apply_s": round(applied, 2), "trial_s": round(time.perf_counter() - t0, 2),
            "settings": settings.model_dump_json()}


def _rows(lab, base, combos, parallel, progress, **kw) -> pd.DataFrame:
    rows = []
    for values in tqdm(combos, desc="sweep", unit="trial", disable=not progress, leave=False):
        label = ", ".join(f"{k}={v}" for k, v in values.items()) or "base"
        row = trial(lab, with_knobs(base, values), label, parallel, **kw)
        rows.append({**{k: str(v) for k, v in values.items()}, **row})
    return pd.DataFrame(rows)


def grid(lab: Lab, base: LabSettings, knobs: dict[str, list], parallel: int = 5, progress: bool = True,
         max_trials: int = 64, **kw) -> pd.DataFrame:
    """Every combination of the knobs' values (bounded by max_trials)."""
    for path, values in knobs.items():
        with_knobs(base, {path: values[0]})   # name check before any trial runs
    combos = [dict(zip(knobs, vals)) for vals in itertools.product(*knobs.values())]
    if len(combos) > max_trials:
        raise SettingsError(f"the grid has {len(combos)} trials, more than max_trials={max_trials}: "
                            "fewer values, or the one-knob-at-a-time search")
    for c in combos:
        with_knobs(base, c)                   # every combination valid before any trial runs
    return _rows(lab, base, combos, parallel, progress, **kw)


def one_at_a_time(lab: Lab, base: LabSettings, knobs: dict[str, list], parallel: int = 5,
                  progress: bool = True, **kw) -> pd.DataFrame:
    """Coordinate search: each knob in turn tries its values with the others at their best so far;
    a knob's first value stays unless another beats it beyond the spread (`repeats` in **kw; column `kept`)."""
    for path, values in knobs.items():
        for v in values:
            with_knobs(base, {path: v})
    best: dict[str, Any] = {}
    frames = []
    for path, values in knobs.items():
        combos = [{**best, path: v} for v in values]
        df = _rows(lab, base, combos, parallel, progress, **kw)
        df["step"] = path
        frames.append(df)
        top = kept(df, path, str(values[0]))
        if top is not None:
            best[path] = values[[str(v) for v in values].index(top[path])]
            df["kept"] = df[path] == top[path]
    return pd.concat(frames, ignore_index=True)


def kept(df: pd.DataFrame, path: str, incumbent: str) -> pd.Series | None:
    """The row a knob keeps: the winner, unless the incumbent's trial is within the winner's spread
    (the winner's slowest repeats score no higher than the incumbent's fastest)."""
    top = winner(df)
    inc = df[(df[path] == incumbent) & (df.failures == 0)]
    if top is None or inc.empty or top[path] == incumbent or "single_lo" not in df:
        return top
    lo = math.sqrt(max(top.single_lo, 0) * max(top.parallel_lo, 0))
    hi = math.sqrt(max(inc.iloc[0].single_hi, 0) * max(inc.iloc[0].parallel_hi, 0))
    return top if lo > hi else inc.iloc[0]


def score(df: pd.DataFrame) -> pd.Series:
    return (df.single_MBps.clip(lower=0) * df.parallel_MBps.clip(lower=0)).map(math.sqrt)


def winner(df: pd.DataFrame) -> pd.Series | None:
    ok = df[df.failures == 0]
    if ok.empty:
        return None
    return ok.loc[score(ok).idxmax()]


def settings_of(row: pd.Series) -> LabSettings:
    return LabSettings.model_validate_json(row["settings"])


def run_presets(lab: Lab, presets: dict[str, LabSettings], parallels: list[int], progress: bool = True,
                on_row: Callable[[dict], None] | None = None, **kw) -> pd.DataFrame:
    """Each preset at each parallel count: the before/after table of the seed case."""
    rows = []
    for name, s in tqdm(list(presets.items()), desc="presets", disable=not progress, leave=False):
        for n in parallels:
            row = {"preset": name, **trial(lab, s, name, n, **kw)}
            rows.append(row)
            if on_row:
                on_row(row)
    return pd.DataFrame(rows)
