"""Candidate explanations of the seed's slow pulls, and one rulebook that judges every one of them alike.

Each hypothesis is a change to sregistry's settings that makes one suspected cause real in the lab.
The seed's observations are checks (data/seed/observations.json): each with the sentence of the seed
it rests on, the settings in force when it was made (`settings`: original, released, poster, ...; a
hypothesis with TLS runs their https variants), the pulls and compute nodes it needs, and its rule.
What a run measured comes in as long records (RESULT_COLUMNS: hypothesis, quantity, settings, pulls,
nodes, value, source, mechanism), and `judge_results` computes every check the same way for every
hypothesis:
- a check whose quantities the run did not measure (under its settings, pulls and nodes) is "not
  measured", for every hypothesis alike; "fits" needs every check measured and met;
- a failure counts only with a mechanism the seed's system had (data/seed/failure-mechanisms.json),
  never the lab's own deadline;
- a prediction (source "predicted", e.g. lk.scale's) is carried beside the measurement, never in its place.
`judge(rows, capacity)` is the old wide-row entry point (run_hypotheses): its rows become records.
Pure: rows in, a judged table out.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ..config.overrides import apply_overrides
from ..config.presets import preset
from ..config.settings import dirty_bound

from ..units import KiB, MiB

SEED_LINK = "6gbit"        # the seed's hypervisor uplink
DEADLINE_S = 900           # each pull of a hypothesis may run this long: a timeout then, its bytes counted


MIN_IMAGE_MIB = 16     # below this a pull's fixed costs (connections, the manifest, a client's start-up) weigh
BOUND_SHARE = 4        # an image 4x a dirty bound: at least 3/4 of it written at the destination's own pace
MIN_SECONDS = 1.0      # a destination that binds at once: at least this long at its ceiling


@dataclass(frozen=True)
class Hypothesis:
    name: str
    explains: str
    overrides: tuple[str, ...]
    fix: str
    base: str = "sregistry-2018-10"
    min_mib: int = 1               # a floor the settings cannot tell (an emulated core needs CFS periods)

    def settings(self, *extra: str, base: str = "", first: bool = False):
        """The lab's settings that make it real: its base preset (or `base`), its overrides, then `extra`
        (the seed's link); `first`: `extra` before its overrides (the rulebook's settings, which its own
        overrides change)."""
        return apply_overrides(preset(base or self.base), [*extra, *self.overrides] if first else
                               [*self.overrides, *extra])

    @property
    def https(self) -> bool:
        """Whether it serves over TLS: the rulebook then runs the https variant of each observation's settings."""
        return preset(self.base).tls.enabled

    def settings_at(self, key: str, *extra: str, obs: dict | None = None):
        """The settings it runs for an observation made under the rulebook's settings `key` (original,
        released, poster, ...): that preset (its https variant if this hypothesis serves TLS) with the
        key's own overrides, the rulebook's machine (the seed's vCPUs and CPU model, the same for every
        hypothesis), this hypothesis's overrides, then `extra` (the seed's link on the lab's path)."""
        obs = obs or observations()
        st, machine = obs["settings"][key], obs["experiment"]["machine"]
        base = st["https"] if self.https else st["preset"]
        return self.settings(*st.get("overrides", ()), f"cpu.model={machine['cpu_model']}",
                             f"machine.vcpus={machine['vcpus']}", *extra, base=base, first=True)

    @property
    def min_image_mib(self) -> int:
        """The smallest image that can show it, derived from its own settings: a write ceiling shows
        only past the dirty pages its disk may hold (BOUND_SHARE x that bound); a shared file system
        binds from the first request, so MIN_SECONDS at its ceiling; else MIN_IMAGE_MIB; never below
        its own `min_mib`."""
        return max(self.min_mib, min_image_mib(self.settings()))


def min_image_mib(s) -> int:
    """The smallest image (MiB) a pull under settings `s` needs for its slow destination or disk to show."""
    need = float(MIN_IMAGE_MIB)
    c, st = s.client, s.storage
    if c.dest == "local-disk" and c.write_mbps:
        need = max(need, BOUND_SHARE * dirty_bound(c.write_mbps * 1e6, c.dirty_mib) / MiB)
    spools = s.nginx.uwsgi_buffering and s.app.serve_mode not in ("accel", "nginx-alias")
    if st.disk == "loop" and st.write_mbps and spools:
        need = max(need, BOUND_SHARE * dirty_bound(st.write_mbps * 1e6, st.dirty_mib) / MiB)
    if c.dest == "shared-fs":
        req = c.fs_request_kib * KiB
        one = req / (c.fs_delay_ms / 1000 + req / (c.fs_node_mbps * 1e6))
        need = max(need, MIN_SECONDS * one / MiB)
    return int(math.ceil(need))


# the seed's client writing to a shared file system; the VM's disk a loop device so its reads are counted
SHARED_FS = ("client.kind=singularity-2.6", "client.dest=shared-fs", "storage.disk=loop")
HYPOTHESES = (
    Hypothesis("docker-proxy on the path (iptables off)",
               "every byte crosses docker-proxy, a user-space copy. Docker does this only with "
               "`\"iptables\": false`: with its default rules a compute node's pull is DNATed by the kernel "
               "whatever userland-proxy says (docker/libnetwork 02d0f9d6 portmapper/mapper.go MapRange, "
               "iptables/iptables.go ProgramChain)", ("publish.iptables=false",),
               "Docker's default `\"iptables\": true` (the kernel forwards the published port)"),
    Hypothesis("too few uwsgi workers", "uwsgi 1 process x 1 thread (before d037140): pulls queue behind one worker",
               (), "more processes/threads, or X-Accel-Redirect so a worker is free after the headers",
               base="sregistry-2018-early"),
    Hypothesis("Django iterates the file", "no wsgi.file_wrapper: Django reads and writes 4 KiB blocks in Python",
               ("app.serve_mode=fileresponse-iter",), "keep uwsgi's file wrapper (sendfile), or X-Accel-Redirect"),
    Hypothesis("cold reads on a slow disk", "the image is read from a networked disk (qcow2 on GPFS): "
               "every read request waits", ("storage.disk=loop", "storage.cache=cold", "storage.latency_ms=2"),
               "a warm page cache (RAM for the images), a faster disk, or larger read-ahead"),
    Hypothesis("nginx spools to a slow layer", "nginx buffers every pull into temp files on the container's "
               "own (slow) layer, past the 8 MiB of dirty pages it may hold",
               ("storage.disk=loop", "storage.write_mbps=40", "storage.dirty_mib=8"),
               "uwsgi_buffering off, or X-Accel-Redirect (no temp files)"),
    Hypothesis("slow client disk", "the compute node writes the image to a slow local disk, past the 8 MiB of "
               "dirty pages it may hold (a node whose page cache is full)",
               ("client.dest=local-disk", "client.write_mbps=40", "client.dirty_mib=8"),
               "a faster destination (local SSD, tmpfs)"),
    Hypothesis("Singularity 2.6 writes to a shared file system",
               "singularity pull writes 1 MiB at a time into its pull folder on NFS/GPFS: each 128 KiB write "
               "request waits 2 ms for the server, one stream at a time; pulls on a node overlap (2 ms and "
               "128 KiB are assumed, not measured: the seed names no file system)",
               (*SHARED_FS, "client.fs_delay_ms=2", "client.fs_request_kib=128", "client.fs_node_mbps=1000"),
               "pull to local disk or tmpfs (SINGULARITY_CACHEDIR / SINGULARITY_PULLFOLDER) and copy once, "
               "or larger write requests (wsize)"),
    Hypothesis("Singularity 2.6 on a node's narrow share of the file system",
               "the same, where each compute node's link to the file system carries 40 MB/s: one pull is "
               "slow and pulls on one node share it (only pulls from many nodes add up; 40 MB/s assumed)",
               (*SHARED_FS, "client.fs_delay_ms=0.5", "client.fs_request_kib=1024", "client.fs_node_mbps=40"),
               "a faster link from the compute nodes to the file system, or a local destination"),
    # sregistry's https setup (its docs recommend it) on the seed's Opteron 6174: OpenSSL without AES-NI,
    # PCLMULQDQ, SSSE3 runs AES-256-GCM in its table code at a published ~54 cycles per byte (40.8 MB/s
    # per 2.2 GHz core, labkit.config.cpu_models); one connection is one nginx worker on one core. From
    # 32 MiB: a pull at ~35 MB/s spans ten CFS periods (100 ms) of the emulated core.
    Hypothesis("TLS in software on the Opteron", "nginx encrypts every byte with AES-256-GCM in OpenSSL's "
               "table code (no AES-NI on an Opteron 6174): one pull = one worker = one slow core",
               # the VM's disk a loop device so its reads are counted (the seed saw no disk activity)
               ("cpu.model=opteron-6174", "storage.disk=loop"), "AES-128-GCM first in ssl_ciphers, or plain http on the cluster "
               "network; worker_processes auto for many pulls (benchmarks/bench_tls.py measures each)",
               base="sregistry-2018-10-https", min_mib=32),
)

DATA = Path(__file__).resolve().parents[2] / "data" / "seed"
RESULT_COLUMNS = ("hypothesis", "quantity", "settings", "pulls", "nodes", "value", "source", "mechanism")
FITS, MISSES, NOT_MEASURED = "fits", "misses", "not measured"
SUMMED = {"disk_read_MB", "served_MB", "failures"}          # over a run's pulls; other quantities: the median
UNATTRIBUTED = "unattributed"


def observations(path: Path | None = None) -> dict:
    return json.loads(Path(path or DATA / "observations.json").read_text())


def mechanisms(path: Path | None = None) -> dict:
    """The seed's failure mechanisms (`mechanisms`), what is not on its path, and the lab's own (`lab_own`)."""
    return json.loads(Path(path or DATA / "failure-mechanisms.json").read_text())


@dataclass(frozen=True)
class Check:
    name: str
    sentence: str
    settings: str                 # the settings in force when the seed made the observation (a key of `settings`)
    pulls: int | None
    nodes: int
    rule: str
    params: dict

    @staticmethod
    def of(name: str, c: dict) -> "Check":
        keys = ("sentence", "settings", "pulls", "nodes", "rule")
        return Check(name, *(c[k] for k in keys), {k: v for k, v in c.items() if k not in keys})


def rulebook(obs: dict | None = None) -> dict[str, Check]:
    return {name: Check.of(name, c) for name, c in (obs or observations())["checks"].items()}


def rulebook_table(obs: dict | None = None) -> pd.DataFrame:
    """The checks as a table: the seed's sentence, the settings in force, pulls, nodes, the rule."""
    return pd.DataFrame([{"check": c.name, "the seed wrote": c.sentence, "settings": c.settings, "pulls": c.pulls,
                          "nodes": c.nodes, "rule": c.rule} for c in rulebook(obs).values()]
                        ).astype({"pulls": "Int64"}).set_index("check")


class _Lookup:
    """One hypothesis's records, read the way every check reads them. `predicted`: prefer predictions
    (the carried view beside the measured one); `used_prediction` says whether one was read."""

    def __init__(self, recs: pd.DataFrame, predicted: bool = False):
        self.recs, self.predicted, self.used_prediction = recs, predicted, False

    def get(self, quantity: str, settings: str, pulls: int | None = None, nodes: int = 1) -> tuple[float | None, str]:
        r = self.recs[(self.recs.quantity == quantity) & (self.recs.settings == settings)]
        if pulls is not None:
            r = r[r.pulls == pulls]
        where = f"{quantity} under {settings}" + (f" at {pulls} pull(s)" if pulls else "")
        measured = r[r.source == "measured"]
        enough = measured[measured.nodes.isna() | (measured.nodes >= nodes)]
        pick = enough
        if self.predicted:
            pred = r[r.source == "predicted"]
            if len(pred):
                pick, self.used_prediction = pred, True
        if not len(pick):
            if len(measured):
                return None, f"{where} ran from {int(measured.nodes.max())} compute node(s); the rulebook asks {nodes}"
            return None, f"{where} not measured"
        v = pick.value.astype(float)
        return (float(v.sum()) if quantity in SUMMED else float(v.median())), ""

    def rows(self, quantity: str, settings: str, pulls: int | None) -> pd.DataFrame:
        """The measured records of one quantity (failures by mechanism), as they are."""
        r = self.recs
        return r[(r.quantity == quantity) & (r.settings == settings) & (r.pulls == pulls) & (r.source == "measured")]


class _Needs(_Lookup):
    """Records what a check reads (quantity, settings, pulls, nodes), finding nothing."""

    def __init__(self):
        super().__init__(pd.DataFrame(columns=list(RESULT_COLUMNS)))
        self.read: list[tuple] = []

    def get(self, quantity, settings, pulls=None, nodes=1):
        self.read.append((quantity, settings, pulls, nodes))
        return None, "recorded"

    def rows(self, quantity, settings, pulls):
        self.read.append((quantity, settings, pulls, 1))
        return self.recs


def _check_one_pull(L: _Lookup, c: Check):
    one, a = L.get("MBps", c.settings, 1, c.nodes)
    link, b = L.get("link_MBps", c.settings, None, c.nodes)
    if one is None or link is None:
        return None, "", a or b
    return one <= c.params["share_max"] * link, f"1 pull {one:.1f} MB/s = {one / link:.0%} of the link's {link:.0f}", ""


def _check_many(L: _Lookup, c: Check):
    many, a = L.get("MBps", c.settings, c.pulls, c.nodes)
    one, b = L.get("MBps", c.params["one_pull_settings"], 1, 1)
    if many is None or one is None:
        return None, "", a or b
    return many >= c.params["factor_min"] * one, f"{c.pulls} pulls {many:.1f} MB/s = {many / one:.1f}x one pull", ""


def _check_rate(L: _Lookup, c: Check):
    """A rate the seed reported, reproduced within `band` either way (his number, not only its shape)."""
    got, why = L.get("MBps", c.settings, c.pulls, c.nodes)
    if got is None:
        return None, "", why
    seed, band = c.params["seed_MBps"], c.params["band"]
    return seed / band <= got <= seed * band, f"{c.pulls} pull(s) {got:.1f} MB/s = {got / seed:.2f}x the seed's {seed}", ""


def _check_machine(L: _Lookup, c: Check):
    pct, why = L.get("machine_pct", c.settings, c.pulls, c.nodes)
    if pct is None:
        return None, "", why
    ok = pct < c.params["pct_max"] if "pct_max" in c.params else pct >= c.params["pct_min"]
    return ok, f"whole machine {pct:.1f}% busy at {c.pulls} pull(s)", ""


def _check_disk(L: _Lookup, c: Check):
    disk, a = L.get("disk_read_MB", c.settings, c.pulls, c.nodes)
    served, b = L.get("served_MB", c.settings, c.pulls, c.nodes)
    if disk is None or served is None or not served:
        return None, "", a or b or "nothing served"
    return disk <= c.params["share_max"] * served, f"{disk:.1f} MB read from disk for {served:.0f} MB served", ""


def _check_iperf(L: _Lookup, c: Check):
    lo, hi = c.params["gbit"]
    spread = c.params["spread"]
    got = {q: L.get(q, c.settings, None, c.nodes) for q in ("iperf_vm_gbit", "iperf_uwsgi_gbit")}
    if missing := [why for v, why in got.values() if v is None]:
        return None, "", missing[0]
    got = {q: v for q, (v, _) in got.items()}
    ok = all(lo * (1 - spread) <= v <= hi * (1 + spread) for v in got.values())
    return ok, ", ".join(f"{q.split('_')[1]} {v:.2f} Gbit/s" for q, v in got.items()), ""


def _check_failures(L: _Lookup, c: Check):
    r = L.rows("failures", c.settings, c.pulls)
    if not len(r):
        return None, "", f"failures under {c.settings} at {c.pulls} pulls not measured"
    known = mechanisms()
    by = r.groupby(r.mechanism.fillna("").astype(str)).value.sum()
    seed = sum(n for m, n in by.items() if m in known["mechanisms"])
    lab = sum(n for m, n in by.items() if m in known["lab_own"])
    other = sum(n for m, n in by.items() if m and m not in known["mechanisms"] and m not in known["lab_own"])
    text = ", ".join(f"{int(n)} by {m}" for m, n in by.items() if m and n) or "no failure"
    if seed >= c.params["min_failures"]:
        return True, text, ""
    if lab or other:
        return None, text, (f"{int(lab)} pull(s) ended by the lab's own limits, not the seed's" if lab else "") + \
            ("; " if lab and other else "") + (f"{int(other)} failure(s) without a known mechanism" if other else "")
    return False, text, ""


def _check_workers(L: _Lookup, c: Check):
    fewer, a = L.get("MBps", c.settings, c.pulls, c.nodes)
    base, b = L.get("MBps", c.params["against_settings"], c.pulls, c.nodes)
    if fewer is None or base is None:
        return None, "", a or b
    return abs(fewer - base) <= c.params["spread"] * max(fewer, base), \
        f"{c.pulls} pulls: {base:.1f} MB/s with 32 workers, {fewer:.1f} with fewer", ""


# each check's rule, one function for every hypothesis (the thresholds are the check's own, in the JSON)
CHECKS = {
    "one_pull_far_below_the_link": _check_one_pull,
    "one_pull_at_the_seeds_rate": _check_rate,
    "many_pulls_add_up": _check_many,
    "many_pulls_at_the_seeds_rate": _check_rate,
    "server_idle_for_one_pull": _check_machine,
    "server_busy_at_40": _check_machine,
    "no_disk_activity": _check_disk,
    "iperf_4_to_5_gbit": _check_iperf,
    "timeouts_at_5_original": _check_failures,
    "fewer_workers_no_difference": _check_workers,
}


def experiments(obs: dict | None = None) -> pd.DataFrame:
    """What every hypothesis must measure for the rulebook, read off the checks themselves: one row per
    (settings, pulls, image) with the quantities, the compute nodes (the most any check asks) and the checks.
    `image`: "contest" (the size the contest pulls) or "seed" (the seed's own image, where a check's
    mechanism races a time against a size: the check's `image`)."""
    need: dict[tuple, dict] = {}
    for c in rulebook(obs).values():
        L = _Needs()
        CHECKS[c.name](L, c)
        image = c.params.get("image", "contest")
        for quantity, settings, pulls, nodes in L.read:
            row = need.setdefault((settings, pulls, image), {"settings": settings, "pulls": pulls, "image": image,
                                                             "nodes": 1, "quantities": [], "checks": []})
            row["nodes"] = max(row["nodes"], nodes)
            for key, v in (("quantities", quantity), ("checks", c.name)):
                if v not in row[key]:
                    row[key].append(v)
    return pd.DataFrame(need.values()).astype({"pulls": "Int64"})


def _records(results: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RESULT_COLUMNS if c not in results.columns and c not in ("nodes", "source", "mechanism")]
    if missing:
        raise ValueError(f"results: missing column(s) {', '.join(missing)} (columns: {', '.join(RESULT_COLUMNS)})")
    out = results.copy()
    for col, default in (("nodes", 1), ("source", "measured"), ("mechanism", "")):
        if col not in out.columns:
            out[col] = default
    bad = sorted(set(out.source) - {"measured", "predicted"})
    if bad:
        raise ValueError(f"results: source {bad}: each record is 'measured' or 'predicted'")
    return out


def judge_results(results: pd.DataFrame, obs: dict | None = None) -> pd.DataFrame:
    """Every check for every hypothesis in `results` (long records, RESULT_COLUMNS), computed the same way:
    one row per (hypothesis, check) with its verdict (fits, misses, not measured), what was measured,
    why where it was not, and `predicted`: the verdict predictions would give, where the hypothesis has
    any for this check (never the verdict itself)."""
    recs = _records(results)
    book = rulebook(obs)
    unknown = sorted(set(book) - set(CHECKS))
    if unknown:
        raise ValueError(f"observations: check(s) {', '.join(unknown)} have no rule in CHECKS")
    rows = []
    for name in dict.fromkeys(recs.hypothesis):
        mine = recs[recs.hypothesis == name]
        for c in book.values():
            ok, text, why = CHECKS[c.name](_Lookup(mine), c)
            P = _Lookup(mine, predicted=True)
            p_ok, p_text, _ = CHECKS[c.name](P, c)
            predicted = "" if not P.used_prediction or p_ok is None else \
                f"{FITS if p_ok else MISSES} as predicted ({p_text})"
            rows.append({"hypothesis": name, "check": c.name,
                         "verdict": NOT_MEASURED if ok is None else FITS if ok else MISSES,
                         "measured": text, "why": why, "predicted": predicted})
    out = pd.DataFrame(rows, columns=["hypothesis", "check", "verdict", "measured", "why", "predicted"])
    # a check some hypotheses' runs measured and others' did not: said on the ones left out
    hyps = out.hypothesis.nunique()
    for check, part in out.groupby("check"):
        done = int((part.verdict != NOT_MEASURED).sum())
        if 0 < done < hyps:
            lacking = part.index[part.verdict == NOT_MEASURED]
            out.loc[lacking, "why"] = out.loc[lacking, "why"] + f" (measured for {done} of {hyps} hypotheses)"
    return out


def verdicts(judged: pd.DataFrame) -> pd.DataFrame:
    """judge_results' rows as hypothesis x check verdicts, with `fits_all`: every check measured and met."""
    wide = judged.pivot(index="hypothesis", columns="check", values="verdict")
    wide = wide.reindex(index=list(dict.fromkeys(judged.hypothesis)), columns=list(dict.fromkeys(judged.check)))
    wide["fits_all"] = (wide == FITS).all(axis=1)
    return wide


# --- the old wide rows (experiments.hypotheses.run_hypotheses) as records -------------------------------------------
def settings_key(h: "Hypothesis", obs: dict | None = None) -> str:
    """Which of the rulebook's settings a hypothesis's own base is ("released" for sregistry-2018-10 and its
    https variant, "original" for 2018-early, ...); "" when none."""
    for key, st in (obs or observations())["settings"].items():
        if not st.get("overrides") and h.base in (st["preset"], st.get("https")):
            return key
    return ""


def records_from_rows(rows: pd.DataFrame, capacity_MBps: float, obs: dict | None = None) -> pd.DataFrame:
    """The old wide rows (one per hypothesis: single_MBps, x<N>_MBps, top_MBps, single_machine_pct,
    disk_read_MB, served_MB, failures, top_seed_MBps) as records, under the settings each ran (its
    base: a known hypothesis's, else the row's `settings`, else "released"), from `compute_nodes` nodes
    (default 1). Failures are not attributed in these rows; top_seed_MBps is a prediction."""
    known = {h.name: h for h in HYPOTHESES}
    out = []
    for r in rows.to_dict("records"):
        name = r["hypothesis"]
        st = settings_key(known[name], obs) if name in known else r.get("settings") or "released"
        nodes = r.get("compute_nodes", 1)

        def add(quantity, value, pulls=None, source="measured", mechanism="", n=nodes, under=st):
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out.append({"hypothesis": name, "quantity": quantity, "settings": under, "pulls": pulls, "nodes": n,
                            "value": float(value), "source": source, "mechanism": mechanism})
        add("MBps", r.get("single_MBps"), 1)
        for key, v in r.items():
            if key.startswith("x") and key.endswith("_MBps") and key[1:-5].isdigit():
                add("MBps", v, int(key[1:-5]))
        if r.get("top_parallel") and f"x{int(r['top_parallel'])}_MBps" not in r:
            add("MBps", r.get("top_MBps"), int(r["top_parallel"]))
        add("link_MBps", capacity_MBps)
        add("machine_pct", r.get("single_machine_pct"), 1)
        add("disk_read_MB", r.get("disk_read_MB"))
        add("served_MB", r.get("served_MB"))
        add("failures", r.get("failures"), None, mechanism=UNATTRIBUTED if r.get("failures") else "")
        if r.get("top_parallel"):           # lk.scale's N pulls on the seed's machine under the poster's settings
            add("MBps", r.get("top_seed_MBps"), int(r["top_parallel"]), "predicted", n=math.nan, under="poster")
    recs = pd.DataFrame(out, columns=list(RESULT_COLUMNS))
    return recs[recs.value.notna()]


def judge(rows: pd.DataFrame, capacity_MBps: float) -> pd.DataFrame:
    """The old entry point: `rows` (one per hypothesis, wide) judged by the rulebook. Each check's column is
    True (fits), False (misses) or None (not measured); `fits_all` needs every check measured and met;
    `not_measured` names the checks a row could not show and `predicted` what predictions alone would say."""
    judged = judge_results(records_from_rows(rows, capacity_MBps))
    out = rows.copy().reset_index(drop=True)
    index = {name: i for i, name in enumerate(out.hypothesis)}
    for check in rulebook():
        col = [None] * len(out)
        for r in judged[judged.check == check].itertuples():
            col[index[r.hypothesis]] = None if r.verdict == NOT_MEASURED else r.verdict == FITS
        out[check] = pd.Series(col, index=out.index, dtype=object)
    out["fits_all"] = [all(v is True for v in row) for row in out[list(rulebook())].values]
    out["not_measured"] = [", ".join(judged[(judged.hypothesis == n) & (judged.verdict == NOT_MEASURED)].check)
                           for n in out.hypothesis]
    out["predicted"] = ["; ".join(f"{r.check}: {r.predicted}" for r in judged[(judged.hypothesis == n)
                                                                             & (judged.predicted != "")].itertuples())
                        for n in out.hypothesis]
    return out


def attribute(log_lines: list[str], ended_by_lab: str = "", known: dict | None = None) -> str:
    """The mechanism a failed pull is counted under: the first of the seed's mechanisms
    (data/seed/failure-mechanisms.json, in its order) whose `evidence` text is in the server's or the
    client's log lines for that pull; else `ended_by_lab` (a `lab_own` id: the lab's deadline or idle
    timeout ended it first); else UNATTRIBUTED. Log text is matched only against the evidence the
    upstream source prints (cited in the file), so an unknown message stays unattributed."""
    known = known or mechanisms()
    for mid, m in known["mechanisms"].items():
        if m["ends_a_pull"] and any(e in line for e in m["evidence"] for line in log_lines):
            return mid
    if ended_by_lab:
        if ended_by_lab not in known["lab_own"]:
            raise ValueError(f"ended_by_lab: {ended_by_lab!r} is none of the lab's own limits "
                             f"({', '.join(known['lab_own'])})")
        return ended_by_lab
    return UNATTRIBUTED


def recorded(csv: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """A recorded hypotheses table (`labkit hypotheses` writes <csv> and its .json) read back and judged again by
    today's rulebook, so a notebook never shows the verdicts of an older rule: (the run's facts from the .json,
    the numbers a hypothesis a row, the checks a check a row with ✔ / ✘ / blank for not measured)."""
    meta = json.loads(csv.with_suffix(".json").read_text())
    rows = pd.read_csv(csv).drop(columns=[c for c in [*rulebook(), "fits_all"] if c in pd.read_csv(csv, nrows=0)])
    judged = judge(rows, meta["link_capacity_MBps"]).set_index("hypothesis")
    numbers = judged[[c for c in ("single_MBps", "x5_MBps", "x40_MBps", "failures", "top_seed_MBps")
                      if c in judged]].rename(columns={"single_MBps": "1 pull MB/s", "x5_MBps": "5 pulls",
                                                       "x40_MBps": "40 pulls", "top_seed_MBps": "40 on 8 vCPUs (predicted)"})
    checks = judged[[*rulebook(), "fits_all"]].replace({True: "✔", False: "✘", None: ""}).T
    return meta, numbers, checks.rename(index=lambda c: c.replace("_", " "))
