"""A Locust pull storm (on a lab, or as the master of one on a real cluster), measured by labkit.measure and
tabulated by labkit.analyze (neither of those imports the other); `labkit storm`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze.storm_tables import Storm, storm_of
from ..lab.lab import Lab
from ..measure import locust_storm
from ..measure.probe import INSECURE
from .declare import Experiment, Progress


def run_storm(lab: Lab, spec) -> Storm:
    """A Locust pull storm on the lab (labkit.measure.locust_storm), as its tables: `s.row()`, `s.nodes()`, `s.failures()`."""
    return storm_of(locust_storm.measure_storm(lab, spec))


def run_master(url: str, image: str, spec, workers: int, out_dir: Path, bind: str = "*",
               port: int = locust_storm.MASTER_PORT, cacert: str | None = None) -> Storm:
    """The master of a storm on a real cluster (`run_worker` on each compute node), as its tables;
    `cacert`: an https registry's CA file (the same path on every worker)."""
    return storm_of(locust_storm.measure_master(url, image, spec, workers, out_dir, bind, port, cacert))


def insecure_banner() -> str:
    """--insecure, said loudly before any result."""
    return f"{'!' * 100}\n{INSECURE}\n{'!' * 100}"


def storm_text(storm: Storm, saved: Path) -> str:
    """The storm's summary, each compute node's share, the failed pulls, what the harness lost, where it was saved."""
    fails = storm.failures()
    lines = [insecure_banner()] if storm.meta.get("insecure") else []
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        lines += [storm.table().T.rename(columns={0: "storm"}).to_string(), "", storm.nodes().to_string(index=False),
                  "\nno failed pull" if fails.empty else "\n" + fails.to_string(index=False)]
    if storm.missing or storm.meta.get("workers_lost"):
        lines.append(f"\nharness: {storm.missing} pull(s) never reported; workers lost: "
                     f"{', '.join(storm.meta.get('workers_lost', [])) or 'none seen here'}")
    return "\n".join([*lines, f"\npulls: {saved}"])


def _measure(lab: Lab, exp: Experiment, progress: Progress) -> Storm:
    return run_storm(lab, exp.options["spec"])


STORM = Experiment(
    "storm", "a Locust pull storm: simulated clients (Singularity's, or OCI's) on every compute node", _measure, lab_name="storm",
    compute_nodes=4, health=False, options={"spec": None},
    record=lambda out, where: out.result.save(Path(out.experiment.options.get("out") or where), "storm"),
    text=lambda out: storm_text(out.result, out.saved))
