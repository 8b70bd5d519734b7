"""`labkit probe`'s measurements: the lab's measurements against a real registry, from wherever it runs.

    run = measure_probe("http://registry.example.org", "library/ubuntu:18.04", parallel=5, iperf3="registry.example.org")
    run.table             # manifest, one pull, N pulls (verified, TTFB, the client's tcp_info), iperf3
    run.facts             # the numbers the client-side verdict reads (labkit.experiments.probe.run_probe judges them)

It talks only to the URL it is given (and to the iperf3 host, if one is given): one manifest
request, one pull, N pulls at once, each bounded by a deadline; an image URL in the manifest
that names another host (sregistry builds it from its DOMAIN_NAME setting, http://127.0.0.1 by
default) is fetched from the given host instead, and the notes say so; with `follow_hosts` it is
fetched from the host it names. Redirects are followed up to labkit.clients.follow.MAX_HOPS, to
another host only with `follow_hosts`; each pull records its hops (host, status, ms), how the server
spoke (HTTP/1.0 or 1.1, close or keep-alive, chunked) and, over https, the TLS version and cipher.
Pulls are checked by sha256 when the manifest's version is one, else by Content-Length, else
reported unverified. `ns` runs it inside a network namespace (the lab's compute node in the tests).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from ..errors import LabError, LabkitError, SettingsError
from ..in_netns import exec_prefix, inside
from ..records import ProbeRun, PullResult
from . import iperf
from .capture import CapturePoint, CaptureProcess
from ..clients.registry_api import Trust, open_get
from ..clients.follow import Follow, image_url as image_url_of
from ..clients.failures import classify
from ..clients.puller import READ_SIZE, aggregate_mbps, pull_image, together
from .own_socket import SocketWatch

URI = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_PARALLEL = 64
MAX_DEADLINE_S = 3600
COLUMNS = ["kind", "point", "parallel", "MBps", "per_pull_min", "per_pull_max", "ttfb_ms", "failures", "verified",
           "checked", "retransmits", "client_cpu_pct", "backlogged_reads", "ooo_packets", "rcv_rtt_ms", "unread_max",
           "http", "tls", "hops", "error"]
INSECURE = "INSECURE: --insecure: the server's certificate was NOT checked; anyone on the path could have answered"


class ProbeError(LabError):
    """The registry did not answer the manifest request (refused, reset, timed out): nothing to pull."""


@dataclass(frozen=True)
class Target:
    base: str               # scheme://host[:port], no path
    host: str
    port: int
    uri: str

    @classmethod
    def parse(cls, url: str, uri: str) -> "Target":
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise SettingsError(f"{url!r}: give the registry's base URL, e.g. http://registry.example.org:8080")
        if u.path.strip("/") or u.query:
            raise SettingsError(f"{url!r}: give the base URL only (the probe asks for /api/container/... itself)")
        if not URI.match(uri):
            raise SettingsError(f"{uri!r}: give the image as collection/name:tag")
        port = u.port or (443 if u.scheme == "https" else 80)
        return cls(f"{u.scheme}://{u.hostname}:{port}", u.hostname, port, uri)


def measure_probe(url: str, uri: str, parallel: int = 5, iperf3: str | None = None, capture: bool = False,
                  ns: str | None = None, deadline: float = 300, timeout: float = 30, iperf_seconds: int = 3,
                  capture_dir: Path | None = None, max_packets: int = 500_000, cacert: str | None = None,
                  insecure: bool = False, follow_hosts: bool = False) -> ProbeRun:
    """Manifest, one pull (captured if asked), `parallel` pulls at once, iperf3 to `iperf3` [host[:port]].
    An https URL's certificate is checked against `cacert` (else REQUESTS_CA_BUNDLE or SSL_CERT_FILE,
    else the system's CAs); one that does not verify is refused (TlsVerifyError) before any pull;
    `insecure` checks nothing and every output says so. `follow_hosts`: fetch an image URL or a
    redirect that names another host from that host (else the former from the given host, the latter refused)."""
    t = Target.parse(url, uri)
    if not 1 <= parallel <= MAX_PARALLEL:
        raise SettingsError(f"--parallel {parallel} is outside 1..{MAX_PARALLEL}")
    if not 1 <= deadline <= MAX_DEADLINE_S:
        raise SettingsError(f"deadline {deadline}s is outside 1..{MAX_DEADLINE_S} s")
    trust = Trust.of(cacert, insecure)
    follow = Follow(other_hosts=follow_hosts)
    tls_used = t.base.startswith("https:")
    notes: list[str] = [INSECURE] if insecure else []
    t0 = time.perf_counter()
    man, manifest_row = _manifest(t, ns, timeout, trust, follow)
    try:
        image_url, moved = image_url_of(str(man.get("image") or ""), t.base, follow)
    except ValueError as exc:
        raise SettingsError(f"{t.base}/api/container/{t.uri}: {exc}") from None
    notes += [moved] if moved else []
    version = str(man.get("version") or "")
    expect = version if SHA256.match(version) else None
    if expect is None:
        notes.append(f"the manifest's version {version[:20]!r} is not a sha256: pulls are checked by length "
                     "where the server sends a Content-Length, else reported unverified")

    def one(barrier=None) -> tuple[PullResult, SocketWatch]:
        watch = SocketWatch(READ_SIZE)
        return pull_image(ns, image_url, expect, timeout, deadline, barrier, "sha256", watch=watch, trust=trust,
                          follow=follow), watch

    cap = _Capture(t, ns, capture_dir, max_packets, deadline) if capture else None
    try:
        single = [one()]
    finally:
        captured = cap.finish() if cap else {}
    runs: list[tuple[PullResult, SocketWatch]] = []

    def in_parallel(barrier, _i) -> PullResult:
        run = one(barrier)
        runs.append(run)           # list.append is atomic: threads may finish in any order
        return run[0]
    many = together(parallel, in_parallel, timeout) if parallel > 1 else []
    ip = iperf.run(ns, *_host_port(iperf3, 5201), iperf_seconds) if iperf3 else None
    rows = [manifest_row, _pull_row(t, single), *([_pull_row(t, runs, many)] if many else [])]
    if ip is not None:
        rows.append({"kind": "iperf3", "point": iperf3, "parallel": 1, "MBps": round(ip.MBps, 1),
                     "failures": int(not ip.ok), "retransmits": ip.retransmits, "error": ip.error})
    pulls = [{**r.row(), **w.summary(), "parallel": n} for n, group in ((1, single), (parallel, runs))
             for r, w in group]
    first = single[0][0]
    notes += how_it_went(first, [w.summary() for _, w in [*single, *runs]], trust.describe() if tls_used else "")
    return ProbeRun(t.base, t.uri, ns, pd.DataFrame(rows).reindex(columns=COLUMNS),
                    {**_facts(single, runs, many, parallel, ip), "insecure": insecure}, pulls,
                    single[0][1].samples, notes, captured,
                    {"verify": first.check, "image_url": image_url, "wall_s": round(time.perf_counter() - t0, 1),
                     "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": socket.gethostname(), "ns": ns,
                     "insecure": insecure, "follow_hosts": follow_hosts, "trust": trust.describe() if tls_used else "",
                     "http": first.http, "tls": first.tls, "hops": first.hops})


def how_it_went(first: PullResult, summaries: list[dict], trust: str) -> list[str]:
    """Notes on the single pull's way (redirect hops, HTTP, TLS) and on the socket evidence any pull lacks."""
    notes = []
    if len(first.hops) > 1:
        notes.append("redirects followed: " + hops_text(first.hops))
    if first.http:
        notes.append(f"the server spoke {first.http}" + (f"; TLS {first.tls}" if first.tls else "")
                     + (f"; {trust}" if trust else ""))
    gaps = sorted({m for s in summaries for m in s.get("missing", [])})
    if gaps:
        notes.append("socket evidence missing (those samples skipped, the pulls unaffected): " + "; ".join(gaps))
    return notes


def hops_text(hops: list[dict]) -> str:
    """A pull's requests in order: 'host status (ms) -> host status (ms)'."""
    return " -> ".join(f"{h['host']} {h['status']} ({h['ms']} ms)" for h in hops)


def _manifest(t: Target, ns: str | None, timeout: float, trust: Trust, follow: Follow) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    try:
        got = open_get(ns, f"{t.base}/api/container/{t.uri}", timeout, trust, follow)
        try:
            status, body = got.resp.status, got.resp.read()
        finally:
            got.close()
    except LabkitError:
        raise                            # a certificate refused, a redirect not followed: their own words
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeError(f"{t.base}/api/container/{t.uri}: the manifest request failed ({classify(exc)}): "
                         f"{type(exc).__name__}: {exc}") from None
    ms = round((time.perf_counter() - t0) * 1e3, 1)
    row = {"kind": "manifest", "point": f"{t.base}/api/container/{t.uri}", "parallel": 1, "ttfb_ms": ms,
           "failures": int(status != 200), "error": "" if status == 200 else f"HTTP {status}",
           "http": got.http, "tls": got.tls, "hops": hops_text(got.hops)}
    if status != 200:
        raise SettingsError(f"{t.base}/api/container/{t.uri}: HTTP {status} {body[:200]!r}: no image to pull")
    try:
        return json.loads(body), row
    except json.JSONDecodeError:
        raise SettingsError(f"{t.base}/api/container/{t.uri}: not a JSON manifest: {body[:200]!r}") from None


def _host_port(text: str, default: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return host, int(port) if port else default


def _pull_row(t: Target, runs: list[tuple[PullResult, SocketWatch]], results: list[PullResult] | None = None) -> dict:
    res = [r for r, _ in runs]
    n = len(res)
    good = [r for r in res if r.ok]
    summ = [w.summary() for _, w in runs]

    def med(key):
        vals = [s[key] for s in summ if s.get(key) is not None]
        return round(statistics.median(vals), 3) if vals else None
    return {"kind": "pull", "point": t.base, "parallel": n,
            "MBps": round(res[0].mbps if n == 1 else aggregate_mbps(results or res), 1),
            "per_pull_min": round(min(r.mbps for r in res), 1), "per_pull_max": round(max(r.mbps for r in res), 1),
            "ttfb_ms": round(statistics.median(r.ttfb_ms for r in good), 1) if good else None,
            "failures": n - len(good), "verified": all(r.sha256_ok is not False for r in res),
            "checked": ", ".join(sorted({r.check for r in res if r.check})),
            "http": ", ".join(sorted({r.http for r in res if r.http})), "tls": ", ".join(sorted({r.tls for r in res if r.tls})),
            "hops": hops_text(res[0].hops) if len(res[0].hops) > 1 else "",
            "retransmits": None, "client_cpu_pct": med("client_cpu_pct"), "backlogged_reads": med("backlogged_reads"),
            "ooo_packets": sum(s.get("ooo_packets", 0) for s in summ), "rcv_rtt_ms": med("rcv_rtt_ms_median"),
            "unread_max": max((s.get("unread_max", 0) for s in summ), default=None),
            "error": "; ".join(sorted({r.error for r in res if r.error}))}


def _facts(single, runs, many, parallel, ip) -> dict:
    """What the client-side verdict reads, as measured (the capture's reading is the analysis')."""
    r, w = single[0]
    everything = [x for x, _ in single] + [x for x, _ in runs]
    return {"single_MBps": r.mbps, "socket": w.summary(), "parallel": parallel,
            "checks": sorted({x.check for x in everything if x.check}),
            "parallel_MBps": aggregate_mbps(many) if many else None,
            "iperf_MBps": ip.MBps if ip and ip.ok else None,
            "iperf_retransmits": ip.retransmits if ip and ip.ok else None,
            "failures": sum(not x.ok for x in everything), "pulls": len(everything),
            "errors": "; ".join(sorted({x.error for x in everything if x.error}))}


class _Capture:
    """Headers-only capture of the single pull on the client's own interface (the analysis reads its pcap): every
    connection to the registry's host and port, and to each of `also` (host, port): where its blobs are redirected,
    e.g. object storage. The pull's N connections at once are all in it (labkit.analyze.probe_verdict.read_capture
    reports each)."""

    def __init__(self, t: Target, ns: str | None, out_dir: Path | None, max_packets: int, seconds: float,
                 also: tuple[tuple[str, int], ...] = ()):
        if os.geteuid() != 0:
            raise SettingsError("--capture needs root (a packet socket on the client's interface)")
        ends = list(dict.fromkeys([(self._ip(ns, t.host, t.port), t.port),
                                   *((self._ip(ns, h, p), p) for h, p in also)]))
        route = subprocess.run([*exec_prefix(ns), "ip", "-o", "route", "get", ends[0][0]], capture_output=True,
                               text=True, timeout=10).stdout
        dev = re.search(r"\bdev (\S+)", route)
        if not dev:
            raise SettingsError(f"no route to {ends[0][0]} here: {route.strip()!r}")
        self.ip, self.port, self.ends = ends[0][0], t.port, ends
        self.pcap = Path(out_dir or Path.cwd()) / f"{time.strftime('%Y%m%d-%H%M%S')}-probe-{self.ip}.pcap"
        self.pcap.parent.mkdir(parents=True, exist_ok=True)
        bpf = "tcp and (" + " or ".join(f"(host {ip} and port {port})" for ip, port in ends) + ")"
        point = CapturePoint("client", "client", dev.group(1), bpf, "server", t.port)
        self.proc = CaptureProcess([(ns, point, self.pcap)], max_packets, min(600.0, seconds + 30))

    @staticmethod
    def _ip(ns: str | None, host: str, port: int) -> str:
        with inside(ns):
            return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]

    def finish(self) -> dict:
        stats = self.proc.stop()[0]
        return {"pcap": str(self.pcap), "packets": stats.packets, "kernel_drops": stats.kernel_drops,
                "sender": f"{self.ip}:{self.port}", "senders": [f"{ip}:{port}" for ip, port in self.ends]}
