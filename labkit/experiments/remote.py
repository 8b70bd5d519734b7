"""The measurements that come with their judgement: a real registry probed from here, a Locust pull storm (on a
lab, or as the master of one on a real cluster); measured by labkit.measure, read by labkit.analyze, put
together here (neither of those imports the other)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze.probe_verdict import judge_probe
from ..analyze.storm_tables import Storm, storm_of
from ..lab.lab import Lab
from ..measure import locust_storm as _storm, probe as _probe
from ..records import Probe
from .declare import Experiment, Outcome, Progress


def run_probe(url: str, uri: str, **kw) -> Probe:
    """A real registry measured from here (labkit.measure.probe.measure_probe's arguments) and judged
    from the client's side: `p.table`, `p.verdict` (client-, network- or server application-limited)."""
    return judge_probe(_probe.measure_probe(url, uri, **kw))


def run_storm(lab: Lab, spec) -> Storm:
    """A Locust pull storm on the lab (labkit.measure.locust_storm), as its tables: `s.row()`, `s.nodes()`, `s.failures()`."""
    return storm_of(_storm.measure_storm(lab, spec))


def run_master(url: str, image: str, spec, workers: int, out_dir: Path, bind: str = "*",
               port: int = _storm.MASTER_PORT, cacert: str | None = None) -> Storm:
    """The master of a storm on a real cluster (`run_worker` on each compute node), as its tables;
    `cacert`: an https registry's CA file (the same path on every worker)."""
    return storm_of(_storm.measure_master(url, image, spec, workers, out_dir, bind, port, cacert))


def insecure_banner() -> str:
    """--insecure, said loudly before any result."""
    return f"{'!' * 100}\n{_probe.INSECURE}\n{'!' * 100}"


def probe_text(p: Probe, saved: Path, insecure: bool = False) -> str:
    """The probe's table, notes, capture and verdict, and where it was saved."""
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        table = p.table.dropna(axis=1, how="all").astype(object).fillna("").to_string(index=False)
    capture = ([f"capture: {p.capture.get('pcap')}: {p.capture.get('windows_verdict', 'no flow from the server')}"]
               if p.capture else [])
    return "\n".join([*([insecure_banner()] if insecure else []), table,
                      *(f"note: {n}" for n in p.notes), *capture, "", str(p.verdict), "",
                      f"saved {saved} (+ .json with every pull's tcp_info); probe took {p.meta['wall_s']} s"])


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


def _storm(lab: Lab, exp: Experiment, progress: Progress) -> Storm:
    return run_storm(lab, exp.options["spec"])


STORM = Experiment(
    "storm", "a Locust pull storm: simulated Singularity clients on every compute node", _storm, lab_name="storm",
    compute_nodes=4, health=False, options={"spec": None},
    record=lambda out, where: out.result.save(Path(out.experiment.options.get("out") or where), "storm"),
    text=lambda out: storm_text(out.result, out.saved))
