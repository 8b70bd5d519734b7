"""The records that cross the layers: what measure produces and analyze, present and bundle read.

    PullResult    one pull: bytes, time, TTFB, verified or not, its failure kind, the puller's CPU
    KINDS         the words failures are counted by (labkit.clients.failures classifies them)
    Survey        a survey's table, its settings, the path it was measured on, its evidence (saved, loaded)
    cost          the rows' CPU-seconds per GB columns (labkit.records.cost)

Plain data and files: nothing here measures or judges, so measure and analyze both import it and
neither imports the other (tests/unit/test_layers_contract.py keeps it so).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from ..path import ServingPath, registry_path
from . import cost
from ..config.settings import parse_settings

Verify = Literal["sha256", "length"]
KINDS = ("connect", "reset", "http", "short body", "checksum", "timeout", "other")
HARNESS_KINDS = ("other",)      # kinds that say the measuring side failed, not the registry


@dataclass
class PullResult:
    ok: bool
    bytes: int
    seconds: float
    ttfb_ms: float
    sha256_ok: bool | None          # None: not checked (verify="length")
    error: str = ""
    start: float = 0.0
    end: float = 0.0
    kind: str = ""                  # "" for a good pull, else one of KINDS
    cpu_s: float = 0.0              # CPU time of the pulling thread (reading, and hashing if verified), or of the client program
    wait_s: float = 0.0             # time it was runnable but waited for a CPU (the run queue)
    check: str = ""                 # what the body was checked by: sha256, length, or unverified (neither known)
    hops: list[dict] = field(default_factory=list)   # each request made: host, status, ms (redirects first)
    http: str = ""                  # how the server spoke, e.g. "HTTP/1.0 close", "HTTP/1.1 keep-alive chunked"
    tls: str = ""                   # the TLS version and cipher negotiated ("" over http)

    @property
    def mbps(self) -> float:
        """MB/s (10^6 bytes per second), as curl and the seed report."""
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0

    def row(self) -> dict:
        return {**asdict(self), "MBps": round(self.mbps, 1)}


def survey_columns(path: ServingPath) -> list[str]:
    """A survey table's columns: one MB column per disk stage of the path it was measured on."""
    return ["kind", "point", "through", "parallel", "MBps", "MBps_lo", "MBps_hi", "runs", "spread_pct",
            "per_pull_min", "per_pull_max", "ttfb_ms", "failures", "sha256_ok", "retransmits", "busiest",
            "busiest_cpu", "client", "client_cpu", *[d.column for d in path.disk_stages], *cost.columns(path), "error"]


@dataclass
class Survey:
    """A survey: the table, the settings it ran under and the path it was measured on (what the
    verdict judges it against), its notes, how it ran, per-vantage CPU and the long evidence rows."""
    table: pd.DataFrame
    settings: dict
    path: ServingPath
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
    detail: pd.DataFrame = field(default_factory=pd.DataFrame)

    def save(self, results_dir: Path, label: str = "survey") -> Path:
        """CSV of the table, with a JSON beside it holding the settings and the path that produced it."""
        csv = save_results(results_dir, label, self.table,
                           {"settings": self.settings, "path": self.path.to_dict(), "notes": self.notes,
                            "meta": self.meta, "cpu": self.cpu})
        self.detail.to_csv(csv.with_name(csv.stem + "-detail.csv"), index=False)
        return csv

    @classmethod
    def load(cls, csv: Path) -> "Survey":
        side = json.loads(Path(csv).with_suffix(".json").read_text())
        detail = Path(csv).with_name(Path(csv).stem + "-detail.csv")
        # saved before surveys carried their path: the path labs were built on then
        path = (ServingPath.from_dict(side["path"]) if "path" in side
                else registry_path(side.get("meta", {}).get("compute_nodes", 1)))
        return cls(pd.read_csv(csv), side["settings"], path, side["notes"], side["meta"], side.get("cpu", {}),
                   pd.read_csv(detail) if detail.exists() else pd.DataFrame())

    @property
    def lab_settings(self):
        """The settings the survey ran under, typed."""
        return parse_settings(self.settings)


def save_results(results_dir: Path, label: str, table: pd.DataFrame, side: dict) -> Path:
    """`<time>-<label>.csv` of the table and a `.json` beside it; returns the CSV's path."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}"
    table.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".json").write_text(json.dumps(side, indent=1, default=str))
    return stem.with_suffix(".csv")


@dataclass
class ProbeRun:
    """A probe of a real registry as measured: its table, the numbers its verdict reads (`facts`:
    single_MBps, socket, parallel, parallel_MBps, iperf_MBps, ...), every pull with its socket's
    summary, the single pull's tcp_info samples, and the capture's file (when asked for)."""
    target: str
    uri: str
    ns: str | None
    table: pd.DataFrame
    facts: dict
    pulls: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    capture: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


@dataclass
class Probe:
    """A probe judged: what was measured (as in ProbeRun), the verdict and the facts it read."""
    target: str
    uri: str
    ns: str | None
    table: pd.DataFrame
    verdict: object                 # labkit.analyze.probe_verdict.ProbeVerdict
    facts: object                   # labkit.analyze.probe_verdict.ProbeFacts
    pulls: list[dict] = field(default_factory=list)          # per pull: its result and its socket's summary
    samples: list[dict] = field(default_factory=list)        # the single pull's tcp_info samples
    notes: list[str] = field(default_factory=list)
    capture: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def save(self, results_dir: Path, label: str = "probe") -> Path:
        """CSV of the table, with a JSON beside it: the verdict, its facts, every pull's socket, the samples."""
        return save_results(results_dir, label, self.table, {
            "target": self.target, "uri": self.uri, "verdict": asdict(self.verdict), "facts": asdict(self.facts),
            "pulls": self.pulls, "samples": self.samples, "notes": self.notes, "capture": self.capture,
            "meta": self.meta})


@dataclass
class StormRun:
    """A pull storm as it ran: every pull's record (as the locustfile reports it), the spec, where it
    pulled, pulls granted but never reported, how it ran and each service's CPU while it did."""
    records: list[dict]
    spec: object                    # labkit.measure.locust_storm.StormSpec
    point: str
    missing: int = 0
    meta: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
