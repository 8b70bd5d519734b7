"""The per-hop survey: iperf3 on every hop, then pulls at every vantage point, into one tidy table."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from . import iperf
from ..lab.lab import Lab
from ..path import PATH
from .pulls import pull_at

COLUMNS = ["kind", "point", "through", "parallel", "MBps", "per_pull_min", "per_pull_max", "ttfb_ms",
           "failures", "sha256_ok", "retransmits", "busiest", "busiest_cpu", "client",
           *[d.column for d in PATH.disk_stages], "error"]


@dataclass
class Survey:
    table: pd.DataFrame
    settings: dict
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)

    def save(self, results_dir: Path, label: str = "survey") -> Path:
        """CSV of the table, with a JSON beside it holding the settings that produced it."""
        results_dir = Path(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}"
        self.table.to_csv(results_dir / f"{stem}.csv", index=False)
        (results_dir / f"{stem}.json").write_text(json.dumps(
            {"settings": self.settings, "notes": self.notes, "meta": self.meta, "cpu": self.cpu}, indent=1))
        return results_dir / f"{stem}.csv"

    @classmethod
    def load(cls, csv: Path) -> "Survey":
        side = json.loads(Path(csv).with_suffix(".json").read_text())
        return cls(pd.read_csv(csv), side["settings"], side["notes"], side["meta"], side.get("cpu", {}))


def run_survey(lab: Lab, parallel: int = 5, iperf_seconds: int = 2, pull_deadline: float = 300,
               hops: list[str] | None = None, vantages: list[str] | None = None,
               progress: bool = True, verify: str = "sha256") -> Survey:
    """iperf3 per hop, then at each vantage point one pull and `parallel` pulls at once.

    Vantage points behind a stage that carries no image under the lab's settings are left out
    (with X-Accel-Redirect uwsgi only sends a header). verify="length" skips the client's
    sha256 (see labkit.measure.pull.pull) for paths faster than it.
    """
    p = lab.plan
    lab.require_running()
    chosen_hops = [h for h in p.path.hops if hops is None or h.name in hops]
    chosen_vps = [v for v in p.path.vantages_for(lab.settings) if vantages is None or v.name in vantages]
    counts = [1, parallel] if parallel > 1 else [1]
    rows, cpu_all = [], {}
    t0 = time.perf_counter()
    with tqdm(total=len(chosen_hops) + len(chosen_vps) * len(counts), desc="survey", unit="step",
              disable=not progress, leave=False) as bar:
        for h in chosen_hops:
            bar.set_postfix_str(f"iperf3 {h.name}")
            r = iperf.run(*p.endpoint(h), iperf_seconds)
            rows.append({"kind": "iperf3", "point": h.name, "through": "TCP only", "parallel": 1,
                         "MBps": round(r.MBps, 1), "failures": int(not r.ok),
                         "retransmits": r.retransmits, "error": r.error})
            bar.update()
        for v in chosen_vps:
            for n in counts:
                bar.set_postfix_str(f"pull {v.name} x{n}")
                run = pull_at(lab, v.name, n, verify=verify, deadline=pull_deadline)
                cpu_all[f"{v.name} x{n}"] = run.cpu
                rows.append({"kind": "pull", "through": " → ".join(v.crosses), **run.row()})
                bar.update()
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    meta = {"lab": lab.name, "namespaced": p.namespaced, "image_bytes": lab.image.size,
            "disk_stages": [d.name for d in p.path.disk_stages if d.carries(lab.settings)],
            "parallel": parallel, "iperf_seconds": iperf_seconds, "verify": verify, "wall_s": round(time.perf_counter() - t0, 1),
            "host": platform.node(), "kernel": platform.release(), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return Survey(table, lab.settings.model_dump(mode="json"), list(lab.notes), meta, cpu_all)
