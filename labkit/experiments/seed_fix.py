"""The seed's case as the lab now understands it (notebook 04): sregistry's https setup (0d1274df) on the seed's
machine, 8 vCPUs of opteron-6174 time-dilated as the contest runs it (labkit.experiments.contest), and the fixes
his compute nodes (CentOS 7, OpenSSL 1.0.2k) can use, measured beside it: one pull, and the seed's 5 at once.

    lab = seed_lab("nb04", image_mib=16).up()
    table = seed_fixes(lab, parallel=5)             # a row per fix: MB/s read back x k, its gain, who can use it
    bundle, winner, notes = seed_bundle(table)      # the winner for his clients, with nginx's workers = his vCPUs

The candidates are labkit.config.tls_fixes.FIXES that can raise throughput, and X-Accel-Redirect (the lab's
`recommended`, which frees uwsgi but leaves nginx's TLS work where it was). The winner is the largest one-pull
gain beyond the noise (labkit.analyze.noise.FLOOR) among the fixes his clients can use; many pulls need nginx's
workers too (one TLS connection is one worker on one core), so the bundle sets worker_processes to auto.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze.hypotheses import HYPOTHESES, SEED_LINK
from ..analyze.noise import FLOOR
from ..config.presets import preset
from ..config.settings import LabSettings
from ..config.tls_fixes import FIXES
from ..lab.lab import DATA, Lab
from ..measure.pull_at import pull_at
from ..units import MiB
from .bundles import export_bundle
from .contest import DEADLINE_S, IDLE_TIMEOUT_S, dilation, real_row, settings_for
from .contest import CONTEST

TLS = next(h for h in HYPOTHESES if h.https)      # the hypothesis the seed case is: TLS in software on the Opteron
AS_IT_WAS = "as it was (sregistry-2018-10-https)"
ACCEL = "X-Accel-Redirect"
# the seed's compute nodes: CentOS 7's OpenSSL 1.0.2k has no ChaCha20-Poly1305 (labkit.config.tls_fixes)
NOT_FOR_CENTOS7 = {"ChaCha20-Poly1305 preferred"}
CANDIDATES = (AS_IT_WAS, *(f.name for f in FIXES if f.speeds_up), ACCEL)


def seed_settings(k: float | None = None, key: str = "released", link: str = SEED_LINK) -> LabSettings:
    """The seed's settings in force for `key` (released: sregistry-2018-10-https) on his machine at dilation k
    (None: the contest's k for this machine)."""
    return settings_for(TLS, key, k or dilation(CONTEST)[0], link)


def seed_lab(name: str, image_mib: int = 16, k: float | None = None, compute_nodes: int = 1) -> Lab:
    """A lab (not yet up) of the seed's case: his https settings on his machine, his link."""
    return Lab(name, seed_settings(k), image_size=image_mib * MiB, compute_nodes=compute_nodes, quiet=True)


def _candidate(name: str, s: LabSettings) -> LabSettings:
    if name == AS_IT_WAS:
        return s
    if name == ACCEL:
        return s.changed(app={"serve_mode": "accel"})
    return next(f for f in FIXES if f.name == name).apply(s)


def seed_fixes(lab: Lab, parallel: int = 5, candidates: tuple[str, ...] = CANDIDATES) -> pd.DataFrame:
    """Each candidate applied to the lab's settings, one pull and `parallel` at once from the compute node(s),
    read back into the seed's time; the lab is left as it was. A row per candidate: MB/s, the gain over the
    settings as they were, failures, whether the seed's CentOS 7 clients can use it."""
    base, k = lab.settings, lab.k
    rows = []
    try:
        for name in candidates:
            lab.apply(_candidate(name, base))
            got = {}
            for n in (1, parallel):
                pr = pull_at(lab, parallel=n, verify="length", deadline=DEADLINE_S, timeout=IDLE_TIMEOUT_S)
                got[n] = (real_row(pr)[0]["MBps"], pr.failures)
            rows.append({"fix": name, "1 pull MB/s": got[1][0], f"{parallel} pulls MB/s": got[parallel][0],
                         "failed": got[1][1] + got[parallel][1], "CentOS 7 clients": name not in NOT_FOR_CENTOS7})
    finally:
        lab.apply(base)
    table = pd.DataFrame(rows)
    first = table.iloc[0]
    table["gain, 1 pull"] = (table["1 pull MB/s"] / first["1 pull MB/s"]).round(2)
    table[f"gain, {parallel} pulls"] = (table[f"{parallel} pulls MB/s"] / first[f"{parallel} pulls MB/s"]).round(2)
    table.attrs["k"] = k
    return table


def winner(table: pd.DataFrame) -> str:
    """The fix with the largest one-pull gain beyond the noise among those the seed's clients can use ('' if none)."""
    ok = table[table["CentOS 7 clients"] & (table.fix != AS_IT_WAS) & (table["gain, 1 pull"] > 1 + FLOOR)]
    return "" if ok.empty else str(ok.sort_values("gain, 1 pull", ascending=False).fix.iloc[0])


def seed_bundle(table: pd.DataFrame, out_dir: Path | None = None, label: str = "seed-fix") -> tuple[Path | None, str, list[str]]:
    """The winner on sregistry's https preset as a checked bundle (nginx -t, uwsgi), nginx's workers = the VM's
    vCPUs (`auto`), with the measurements in its README: (its directory or None, the winner, the notes)."""
    best = winner(table)
    if not best:
        return None, "", ["no fix his clients can use gained beyond the noise: no bundle written"]
    s = _candidate(best, preset("sregistry-2018-10-https")).changed(nginx={"worker_processes": "auto"})
    gains = table.set_index("fix")["gain, 1 pull"]
    notes = [f"{best}: one pull x{gains[best]:.1f} on the seed's machine (8 vCPUs of opteron-6174, time-dilated k = "
             f"{table.attrs.get('k', 1):g}); worker_processes auto: one TLS connection is one nginx worker on one core",
             f"{ACCEL}: x{gains.get(ACCEL, float('nan')):.1f}: it frees uwsgi, but nginx still encrypts every byte"]
    if best == "plain http on the cluster network":
        notes.append("plain http only where the cluster network is trusted; else AES-128-GCM first "
                     f"(x{gains.get('AES-128-GCM first', float('nan')):.1f}) keeps TLS")
    bundle, _ = export_bundle(s, out_dir or DATA / "bundles", label, measurements=table, notes=notes)
    return bundle, best, notes
