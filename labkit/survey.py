"""The per-hop survey: iperf3 on every hop, then pulls at every vantage point, into one tidy table."""
from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from . import iperf
from .cpu import CpuSampler
from .lab import Lab
from .pull import aggregate_mbps, pull, pull_parallel

COLUMNS = ["kind", "point", "through", "parallel", "MBps", "per_pull_min", "per_pull_max", "ttfb_ms",
           "failures", "sha256_ok", "retransmits", "busiest", "busiest_cpu", "error"]


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

    verify="length" skips the client's sha256 (see labkit.pull.pull) for paths faster than it.
    """
    p = lab.plan
    chosen_hops = [h for h in p.hops if hops is None or h.name in hops]
    chosen_vps = [v for v in p.vantages if vantages is None or v.name in vantages]
    if lab.settings.app.serve_mode == "accel":
        chosen_vps = [v for v in chosen_vps if v.name != "uwsgi"]  # uwsgi only sends a header there
    steps = len(chosen_hops) + len(chosen_vps) * (2 if parallel > 1 else 1)
    rows, cpu_all = [], {}
    t0 = time.perf_counter()
    with tqdm(total=steps, desc="survey", unit="step", disable=not progress, leave=False) as bar:
        for h in chosen_hops:
            bar.set_postfix_str(f"iperf3 {h.name}")
            r = iperf.run(p.ns(h.client), h.host, h.port, iperf_seconds)
            rows.append({"kind": "iperf3", "point": h.name, "through": "TCP only", "parallel": 1,
                         "MBps": round(r.MBps, 1), "failures": int(not r.ok),
                         "retransmits": r.retransmits, "error": r.error})
            bar.update()
        for v in chosen_vps:
            for n in ([1, parallel] if parallel > 1 else [1]):
                bar.set_postfix_str(f"pull {v.name} x{n}")
                with CpuSampler(lab.processes, interval=0.1) as sampler:
                    if n == 1:
                        results = [pull(p.ns(v.client), v.host, v.port, lab.image.uri, lab.image.sha256,
                                        deadline=pull_deadline, verify=verify)]
                    else:
                        results = pull_parallel(p.ns(v.client), v.host, v.port, lab.image.uri, n,
                                                lab.image.sha256, deadline=pull_deadline, verify=verify)
                cpu_all[f"{v.name} x{n}"] = sampler.summary()
                busiest, busiest_cpu = sampler.busiest()
                good = [r for r in results if r.ok]
                rows.append({
                    "kind": "pull", "point": v.name, "through": v.through, "parallel": n,
                    "MBps": round(results[0].mbps if n == 1 else aggregate_mbps(results), 1),
                    "per_pull_min": round(min(r.mbps for r in results), 1),
                    "per_pull_max": round(max(r.mbps for r in results), 1),
                    "ttfb_ms": round(statistics.median(r.ttfb_ms for r in good), 1) if good else None,
                    "failures": len(results) - len(good),
                    "sha256_ok": all(r.sha256_ok for r in results) if verify == "sha256" else None,
                    "busiest": busiest, "busiest_cpu": busiest_cpu,
                    "error": "; ".join(sorted({r.error for r in results if r.error}))})
                bar.update()
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    meta = {"lab": lab.name, "namespaced": p.namespaced, "image_bytes": lab.image.size,
            "parallel": parallel, "iperf_seconds": iperf_seconds, "verify": verify, "wall_s": round(time.perf_counter() - t0, 1),
            "host": platform.node(), "kernel": platform.release(), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return Survey(table, lab.settings.model_dump(mode="json"), list(lab.notes), meta, cpu_all)
