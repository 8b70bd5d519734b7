"""A real registry probed from here: the survey's measurements from the client's side (labkit.measure.probe),
judged (labkit.analyze.probe_verdict); `labkit probe`. Apart from the storm: the probe's capture reader (scapy)
is a slow import the CLI leaves out until `labkit probe` runs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze.probe_verdict import judge_probe
from ..measure import probe as _probe
from ..measure.oci_probe import measure_oci_probe
from ..records import Probe
from ..units import format_size
from .storm import insecure_banner


def run_probe(url: str, uri: str, **kw) -> Probe:
    """A real registry measured from here (labkit.measure.probe.measure_probe's arguments) and judged
    from the client's side: `p.table`, `p.verdict` (client-, network- or server application-limited)."""
    return judge_probe(_probe.measure_probe(url, uri, **kw))


def run_oci_probe(image: str, **kw) -> Probe:
    """An OCI registry measured from here (labkit.measure.oci_probe.measure_oci_probe's arguments: the
    image as http[s]://host[:port]/repo/name:tag) and judged as run_probe is."""
    return judge_probe(measure_oci_probe(image, **kw))


def connection_line(c: dict) -> str:
    """One captured connection of the single pull: its ends, what it carried, its rate and windows."""
    return (f"  connection {c['client']} <- {c['server']}" + (f" ({c['carried']})" if c["carried"] else "")
            + f": {format_size(c['bytes'])} at {c['MBps']:.0f} MB/s; zero windows {c['zero_windows']}, window full "
            f"{c['window_full']}, resent {c['retransmissions']}" + ("" if c["handshake_seen"] else
                                                                   ", handshake not captured") + f": {c['reading']}")


def probe_text(p: Probe, saved: Path, insecure: bool = False) -> str:
    """The probe's table, notes, capture and verdict, and where it was saved."""
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        table = p.table.dropna(axis=1, how="all").astype(object).fillna("").to_string(index=False)
    capture = ([f"capture: {p.capture.get('pcap')}: {p.capture.get('windows_verdict', 'no flow from the server')}",
                *map(connection_line, p.capture.get("connections", []))] if p.capture else [])
    return "\n".join([*([insecure_banner()] if insecure else []), table,
                      *(f"note: {n}" for n in p.notes), *capture, "", str(p.verdict), "",
                      f"saved {saved} (+ .json with every pull's tcp_info); probe took {p.meta['wall_s']} s"])
