"""A pull storm's tidy tables: one row per pull, per compute node, per failure kind, and the storm's row.

Pure (records in, DataFrames out). A record is one pull as the locustfile reports it, or as
`records_of` turns `pull_at`'s results into the same shape, so a Locust storm and the
native parallel pull land in the same table side by side.

Fairness is over the good pulls' own MB/s (a failed pull's rate says nothing about its
share): min, median, max and Jain's index, (Σx)² / (n·Σx²), which is 1 when every pull got
the same rate and 1/n when one pull got everything.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from ..records import HARNESS_KINDS, KINDS, PullResult, StormRun, save_results

PULL_COLUMNS = ["node", "worker", "user", "ticket", "ok", "kind", "MBps", "ttfb_ms", "bytes", "seconds",
                "sha256_ok", "check", "http", "tls", "hops", "start", "end", "error"]
FAIL_COLUMNS = [f"fail_{k.replace(' ', '_')}" for k in KINDS]
STORM_COLUMNS = ["point", "engine", "nodes", "users", "pulls", "ok", "failures", "MBps", "per_pull_min",
                 "per_pull_median", "per_pull_max", "jain", "ttfb_ms", "ttfb_p95_ms", "sha256_ok",
                 *FAIL_COLUMNS, "harness_failures", "span_s"]
NODE_COLUMNS = ["node", "pulls", "failures", "MBps", "per_pull_min", "per_pull_median", "per_pull_max", "jain"]


def jain(xs: Iterable[float]) -> float:
    """Jain's fairness index of rates `xs`: 1 = all equal, 1/n = one took all; NaN for none (or all zero)."""
    xs = [float(x) for x in xs]
    if any(x < 0 or math.isnan(x) for x in xs):
        raise ValueError(f"Jain's index needs rates >= 0, got {xs}")
    sq = sum(x * x for x in xs)
    return sum(xs) ** 2 / (len(xs) * sq) if xs and sq > 0 else math.nan


def fairness(rates: Sequence[float]) -> dict[str, float]:
    """min / median / max and Jain's index of per-pull MB/s (NaN when there is none)."""
    if not len(rates):
        return {"per_pull_min": math.nan, "per_pull_median": math.nan, "per_pull_max": math.nan, "jain": math.nan}
    return {"per_pull_min": float(min(rates)), "per_pull_median": float(statistics.median(rates)),
            "per_pull_max": float(max(rates)), "jain": jain(rates)}


def records_of(results: Sequence[PullResult], node: str, clock_offset: float = 0.0, worker: str = "") -> list[dict]:
    """`pull_at`'s results as storm records (start/end moved by `clock_offset` onto the wall clock)."""
    return [{**asdict(r), "MBps": r.mbps, "node": node, "worker": worker, "user": i, "ticket": i + 1,
             "start": r.start + clock_offset, "end": r.end + clock_offset}
            for i, r in enumerate(results)]


def pulls_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per pull, in PULL_COLUMNS, ordered by start; `kind` "" for a good pull."""
    df = pd.DataFrame(list(records)).reindex(columns=PULL_COLUMNS)
    if df.empty:
        return df
    df["kind"] = df["kind"].fillna("").astype(str)
    df["error"] = df["error"].fillna("").astype(str)
    unknown = set(df.kind) - {"", *KINDS}
    if unknown:
        raise ValueError(f"pull records with unknown failure kinds {sorted(unknown)}: use one of {KINDS}")
    return df.sort_values(["start", "ticket"], kind="stable").reset_index(drop=True)


def _span(df: pd.DataFrame) -> float:
    return float(df.end.max() - df.start.min()) if len(df) else 0.0


def aggregate(df: pd.DataFrame) -> float:
    """Bytes of every pull over the wall time from the first start to the last end, in MB/s."""
    span = _span(df)
    return float(df.bytes.sum()) / span / 1e6 if span > 0 else 0.0


def failure_counts(df: pd.DataFrame) -> dict[str, int]:
    """fail_<kind> for every kind (zeros included), from a pulls table."""
    return {col: int((df.kind == k).sum()) for col, k in zip(FAIL_COLUMNS, KINDS)}


def storm_row(df: pd.DataFrame, point: str, engine: str, users: int, missing: int = 0) -> dict:
    """The storm in one row: aggregate MB/s, fairness, TTFB, failures by kind, and the harness's own failures.

    `missing`: pulls granted but never reported (a worker lost); they count as harness failures.
    """
    good = df[df.ok.astype(bool)]
    fails = failure_counts(df)
    harness = missing + sum(fails[f"fail_{k}"] for k in HARNESS_KINDS)
    checked = df.sha256_ok.dropna()
    return {"point": point, "engine": engine, "nodes": int(df.node.nunique()), "users": users,
            "pulls": len(df) + missing, "ok": len(good), "failures": len(df) - len(good) + missing,
            "MBps": round(aggregate(df), 1), **{k: round(v, 3 if k == "jain" else 1) for k, v in fairness(good.MBps).items()},
            "ttfb_ms": round(float(good.ttfb_ms.median()), 1) if len(good) else math.nan,
            "ttfb_p95_ms": round(float(good.ttfb_ms.quantile(0.95)), 1) if len(good) else math.nan,
            "sha256_ok": bool(checked.all()) if len(checked) and checked.map(lambda v: v is not None).all() else None,
            **fails, "harness_failures": harness, "span_s": round(_span(df), 2)}


def nodes_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per compute node: its pulls, failures, its own aggregate MB/s and the fairness among its pulls."""
    rows = []
    for node, part in df.groupby("node", sort=True):
        good = part[part.ok.astype(bool)]
        rows.append({"node": node, "pulls": len(part), "failures": len(part) - len(good),
                     "MBps": round(aggregate(part), 1),
                     **{k: round(v, 3 if k == "jain" else 1) for k, v in fairness(good.MBps).items()}})
    return pd.DataFrame(rows, columns=NODE_COLUMNS)


def failures_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per failure kind seen: how many, on which nodes, and one message as an example."""
    bad = df[df.kind != ""]
    rows = [{"kind": k, "count": len(part), "nodes": ", ".join(sorted(map(str, part.node.unique()))),
             "example": part.error.iloc[0], "harness": k in HARNESS_KINDS}
            for k, part in bad.groupby("kind", sort=False)]
    return pd.DataFrame(rows, columns=["kind", "count", "nodes", "example", "harness"])


@dataclass
class Storm:
    """A storm's pulls (one row each) and how it ran; the tables are computed from the pulls."""
    pulls: pd.DataFrame
    spec: object                     # labkit.measure.locust_storm.StormSpec
    point: str
    missing: int = 0                 # tickets granted but never reported (a worker lost): harness failures
    meta: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {**storm_row(self.pulls, self.point, "locust", self.spec.users, self.missing),
                "busiest": self.meta.get("busiest", ""), "busiest_cpu": self.meta.get("busiest_cpu", 0.0),
                **self.meta.get("disk_MB", {})}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([self.row()])

    def nodes(self) -> pd.DataFrame:
        return nodes_table(self.pulls)

    def failures(self) -> pd.DataFrame:
        return failures_table(self.pulls)

    @property
    def ok(self) -> bool:
        return self.row()["failures"] == 0

    def save(self, results_dir: Path, label: str = "storm") -> Path:
        """The pulls as CSV, with a JSON beside it holding the spec, the storm row and how it ran."""
        return save_results(results_dir, label, self.pulls,
                            {"spec": asdict(self.spec), "row": self.row(), "meta": self.meta, "cpu": self.cpu})


def storm_of(run: StormRun) -> Storm:
    """A storm's records (labkit.measure.locust_storm.measure_storm) as its tables."""
    return Storm(pulls_table(run.records), run.spec, run.point, run.missing, run.meta, run.cpu)
