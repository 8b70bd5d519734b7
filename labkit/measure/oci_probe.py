"""`labkit probe` against an OCI registry (Harbor, distribution, Quay...): the sregistry probe's
measurements (labkit.measure.probe) with the OCI client's pull (labkit.clients.oci).

    run = measure_oci_probe("https://registry.example.org/library/ubuntu:22.04", parallel=5, user="me:secret")
    run.table     # ping, token, manifest (index), config, each layer by digest, one pull, N pulls, iperf3

Where the time went: the token (when the registry asks for one), each manifest, the config, and every
layer named by its digest with its size, its rate and where its bytes came from (a registry sends
blobs to object storage by design: each layer's hops are recorded; redirects to another host are
followed, `Authorization` never carried there). One pull fetches its layers `layers_at_once` at a
time (containers/image's default, labkit.clients.oci.MAX_PARALLEL_DOWNLOADS); its rate is the image's
bytes over its wall time, set against the fastest single layer. Each layer is read by the lab's measured
loop (labkit.clients.puller.pull_image: 1 MiB reads, tcp_info sampled, sha256 checked as it streams);
a layer whose connection is cut mid-way resumes with `Range: bytes=N-` where the server accepts Range
(labkit.clients.oci.resume): each resume is in its layer's row and note, and in `meta["resumes"]`.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urlsplit

import pandas as pd

from ..clients.oci import (MAX_PARALLEL_DOWNLOADS, Credentials, Digest, DigestMismatch, Image, LayerPull, Reference,
                           Session, pull_layers, resolve, resumes_text)
from ..clients.oci.pull import check_at_once, fetch_config, range_check, whole
from ..errors import LabkitError, SettingsError
from ..records import ProbeRun, PullResult
from ..clients.registry_api import Trust, open_get
from ..clients.pool import Pool
from ..clients.follow import Follow
from ..units import format_size
from . import iperf
from ..clients.failures import classify
from .probe import COLUMNS, INSECURE, MAX_DEADLINE_S, MAX_PARALLEL, ProbeError, _Capture, _facts, _host_port, \
    _pull_row, hops_text, how_it_went
from ..clients.puller import READ_SIZE, _failed, pull_image, together
from .own_socket import SocketWatch


class OciClient:
    """What every pull of one probe or storm user shares: the reference, how to connect, the credentials."""

    def __init__(self, ref: Reference, ns: str | None = None, timeout: float = 30, trust: Trust | None = None,
                 user: str | None = None, platform: str = "linux/amd64", at_once: int = MAX_PARALLEL_DOWNLOADS,
                 keep_alive: bool = True):
        check_at_once(at_once)
        self.ref, self.ns, self.timeout, self.platform, self.at_once = ref, ns, timeout, platform, at_once
        self.keep_alive = keep_alive          # False: a new connection for every request (labkit before issue 28)
        self.trust = trust if trust is not None else (Trust() if ref.scheme == "https" else None)
        self.follow = Follow(other_hosts=True)      # blobs go to object storage by design
        self.credentials = Credentials.find(ref.netloc, user)

    def get(self, url: str, headers: dict, pool: Pool | None = None):
        return open_get(self.ns, url, self.timeout, self.trust, self.follow, headers, pool)

    def session(self, authorization: str = "") -> Session:
        """One pull's client: its requests share keep-alive connections (labkit.clients.pool, as containers/image's
        one http.Client per pull) unless `keep_alive` is off; `session.close()` ends them."""
        pool = Pool() if self.keep_alive else None
        return Session(self.ref, lambda url, headers: self.get(url, headers, pool), self.credentials, authorization,
                       pool=pool)

    def prepare(self, session: Session) -> Image:
        """Ping, manifest (through an index), config: each a step of the session; errors name the step."""
        step = "the /v2/ ping"
        try:
            session.ping()
            step = "the manifest"
            image = resolve(session, self.platform)
            step = "the config"
            fetch_config(session, image)
            return image
        except LabkitError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise ProbeError(f"{self.ref}: {step} failed ({classify(exc)}): {type(exc).__name__}: {exc}") from None

    def pull(self, session: Session, image: Image, deadline: float, watch: bool = True) -> tuple[PullResult, list]:
        """Every layer of `image` (self.at_once at a time): the whole pull as one PullResult and the
        layers as (LayerPull, SocketWatch | None)."""
        t0, c0 = time.perf_counter(), time.thread_time()
        watches: dict[str, SocketWatch | None] = {}

        def fetch(opener, d) -> PullResult:
            w = SocketWatch(READ_SIZE) if watch else None
            watches[d.digest] = w
            digest = Digest.parse(d.digest)
            left = max(1.0, deadline - (time.perf_counter() - t0))
            return pull_image(self.ns, self.ref.url("blob", d.digest), digest.hex if digest.algorithm == "sha256"
                              else None, self.timeout, left, verify="sha256", watch=w, opener=opener)
        layers = pull_layers(session, image.layers, fetch, self.at_once)
        return whole(layers, t0, time.thread_time() - c0), [(lp, watches.get(lp.layer.digest)) for lp in layers]


def oci_pull(client: OciClient, deadline: float, manifest_sha256: str = "") -> PullResult:
    """One whole pull as a new client process makes it (a storm's user): ping, token, manifest, config,
    the layers `client.at_once` at a time; a failure at any step is a failed pull naming the step.
    `manifest_sha256`: the manifest the reference must resolve to (hex; a lab knows the digest it pushed):
    another one is a checksum failure before any layer is fetched."""
    t0 = time.perf_counter()
    session = client.session()
    try:
        try:
            image = client.prepare(session)
            if manifest_sha256 and image.digest != f"sha256:{manifest_sha256}":
                raise DigestMismatch(f"{client.ref}: the manifest resolved is {image.digest}, not the "
                                     f"sha256:{manifest_sha256[:16]}... expected")
        except Exception as exc:  # noqa: BLE001 - a failed pull is a result, not a crash
            return _failed(t0, 0, 0.0, exc)
        r, _ = client.pull(session, image, max(1.0, deadline - (time.perf_counter() - t0)), watch=False)
    finally:
        session.close()
    r.start, r.seconds = t0, r.end - t0               # the whole pull, token and manifest included
    return r


def measure_oci_probe(image: str, parallel: int = 5, iperf3: str | None = None, capture: bool = False,
                      ns: str | None = None, deadline: float = 300, timeout: float = 30, iperf_seconds: int = 3,
                      capture_dir=None, max_packets: int = 500_000, cacert: str | None = None, insecure: bool = False,
                      user: str | None = None, platform: str = "linux/amd64",
                      layers_at_once: int = MAX_PARALLEL_DOWNLOADS) -> ProbeRun:
    """Ping, token, manifest, config; one pull (captured if asked), `parallel` pulls at once, iperf3."""
    ref = Reference.parse(image)
    if not 1 <= parallel <= MAX_PARALLEL:
        raise SettingsError(f"--parallel {parallel} is outside 1..{MAX_PARALLEL}")
    if not 1 <= deadline <= MAX_DEADLINE_S:
        raise SettingsError(f"deadline {deadline}s is outside 1..{MAX_DEADLINE_S} s")
    trust = Trust.of(cacert, insecure) if ref.scheme == "https" else None
    client = OciClient(ref, ns, timeout, trust, user, platform, layers_at_once)
    notes: list[str] = [INSECURE] if insecure else []
    t0 = time.perf_counter()
    s = client.session()
    img = client.prepare(s)
    biggest = max(img.layers, key=lambda d: d.size) if img.layers else None
    ranges = range_check(s, biggest) if biggest else "no layers"
    s.close()
    # the single pull on connections of its own, made while the capture runs (each handshake in it); the token reused
    one = client.session(s.authorization)
    cap = _Capture(ref, ns, capture_dir, max_packets, deadline, blob_hosts(s.steps, ref.netloc)) if capture else None
    try:
        single, single_layers = client.pull(one, img, deadline)
    finally:
        one.close()
        captured = cap.finish() if cap else {}
    if captured:              # each connection of the single pull named by what it carried (read_capture)
        captured["carried"] = carried_on(single_layers)
    single_watch = _watch_of(single_layers)
    runs: list[tuple[PullResult, SocketWatch]] = []
    lock = threading.Lock()

    resumed_at_once: list[dict] = []

    def in_parallel(barrier, _i) -> PullResult:
        mine = client.session(s.authorization)       # each puller its own connections; the token reused
        barrier.wait(timeout)
        try:
            r, layers = client.pull(mine, img, deadline)
        finally:
            mine.close()
        with lock:
            runs.append((r, _watch_of(layers)))
            resumed_at_once.extend(x for lp, _ in layers for x in lp.resumes)
        return r
    many = together(parallel, in_parallel, timeout) if parallel > 1 else []
    ip = iperf.run(ns, *_host_port(iperf3, 5201), iperf_seconds) if iperf3 else None

    rows = [_step_row(st) for st in s.steps]
    rows += [_layer_row(lp, w) for lp, w in single_layers]
    rows += [_pull_row(ref, [(single, single_watch)]), *([_pull_row(ref, runs, many)] if many else [])]
    if ip is not None:
        rows.append({"kind": "iperf3", "point": iperf3, "parallel": 1, "MBps": round(ip.MBps, 1),
                     "failures": int(not ip.ok), "retransmits": ip.retransmits, "error": ip.error})
    fastest = max((lp.result.mbps for lp, _ in single_layers if lp.result.ok), default=None)
    notes += oci_notes(s, img, client, single_layers, single, fastest, ranges)
    if resumed_at_once:
        notes.append(f"{parallel} pulls at once: {len(resumed_at_once)} resume(s) of cut layers, at bytes "
                     + ", ".join(str(x["offset"]) for x in resumed_at_once))
    notes += how_it_went(single, [w.summary() for _, w in [(single, single_watch), *runs]],
                         trust.describe() if trust else "")
    pulls = [{**r.row(), **w.summary(), "parallel": n} for n, group in ((1, [(single, single_watch)]), (parallel, runs))
             for r, w in group]
    facts = {**_facts([(single, single_watch)], runs, many, parallel, ip), "insecure": insecure,
             "fastest_layer_MBps": fastest, "layers": len(img.layers), "layers_at_once": layers_at_once}
    return ProbeRun(ref.base, f"{ref.repository}:{ref.tag}" if not ref.digest else f"{ref.repository}@{ref.digest}",
                    ns, pd.DataFrame(rows).reindex(columns=COLUMNS), facts, pulls, single_watch.samples, notes,
                    captured,
                    {"api": "oci", "image": str(ref), "auth": s.auth_kind,
                     "credentials": s.credentials.source if s.credentials else "", "platform": img.platform or platform,
                     "manifest": img.digest, "index": img.index, "layers": [lp.layer.digest for lp, _ in single_layers],
                     "ranges": ranges, "resumes": {lp.layer.digest: lp.resumes for lp, _ in single_layers if lp.resumes},
                     "steps": s.steps, "verify": single.check,
                     "wall_s": round(time.perf_counter() - t0, 1), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "host": socket.gethostname(), "ns": ns, "insecure": insecure,
                     "trust": trust.describe() if trust else "", "http": single.http, "tls": single.tls,
                     "hops": single.hops})


def blob_hosts(steps: list[dict], registry: str) -> tuple[tuple[str, int], ...]:
    """(host, port) of every other host the steps' requests went to (blobs redirected to object storage), so the
    capture of the single pull holds those connections too."""
    seen = {h["host"] for st in steps for h in st["hops"]} - {registry}
    return tuple((urlsplit(f"//{n}").hostname, urlsplit(f"//{n}").port or 443) for n in sorted(seen))


def carried_on(layers: list) -> dict[str, str]:
    """The client's end of each layer's connection ('address:port', as a capture sees it) -> what it carried."""
    out: dict[str, str] = {}
    for lp, _ in layers:
        conn = (lp.result.hops or [{}])[-1].get("conn")
        if conn:
            what = f"layer {lp.layer.digest[:19]} {format_size(lp.layer.size)}"
            out[conn] = f"{out[conn]}, {what}" if conn in out else what
    return out


def _watch_of(layers: list) -> SocketWatch:
    """The biggest layer's socket: the one the verdict reads (a pull's longest connection)."""
    lp, w = max(layers, key=lambda x: x[0].layer.size) if layers else (None, None)
    return w if w is not None else SocketWatch(READ_SIZE)


def _step_row(st: dict) -> dict:
    fine = st["status"] == 200 or (st["step"] == "ping" and st["status"] == 401)   # a ping's 401: auth asked for
    return {"kind": st["step"], "point": st["url"], "parallel": 1, "ttfb_ms": st["ms"], "failures": int(not fine),
            "error": "" if st["status"] == 200 else f"HTTP {st['status']}" + (" (authentication asked)" if fine else ""),
            "hops": hops_text(st["hops"]) if len(st["hops"]) > 1 else ""}


def _layer_row(lp: LayerPull, w: SocketWatch | None) -> dict:
    r, d = lp.result, lp.layer
    return {"kind": "layer", "point": f"{d.digest[:19]} {format_size(d.size)}", "parallel": 1,
            "MBps": round(r.mbps, 1), "ttfb_ms": round(r.ttfb_ms, 1), "failures": int(not r.ok),
            "verified": r.sha256_ok is not False, "checked": r.check, "http": r.http, "tls": r.tls,
            "hops": hops_text(r.hops) + (f"; resumed {len(lp.resumes)}x at byte "
                                         + ", ".join(str(x["offset"]) for x in lp.resumes) if lp.resumes else ""),
            "client_cpu_pct": (w.summary().get("client_cpu_pct") if w else None),
            "error": r.error}


def oci_notes(s: Session, img: Image, client: OciClient, layers: list, single: PullResult,
              fastest: float | None, ranges: str) -> list[str]:
    """The OCI pull in words: auth, platform, where each layer came from, the aggregate against the fastest layer."""
    out = [f"authentication: {s.auth_kind}" + (f" (credentials from {s.credentials.source})" if s.credentials and
                                                s.auth_kind != "anonymous" else "")]
    token = [st for st in s.steps if st["step"] == "token"]
    if token:
        out.append(f"token from {token[0]['url'].split('?')[0]} for scope {token[0]['scope']!r}: {token[0]['ms']} ms")
    if img.index:
        out.append(f"image index {img.index[:19]}: chose {img.platform} of {', '.join(img.platforms)}")
    out.append(f"manifest {img.digest[:19]} ({img.media_type}): {len(img.layers)} layers, "
               f"{format_size(img.size)}, fetched {client.at_once} at once (containers/image's default is "
               f"{MAX_PARALLEL_DOWNLOADS})")
    for lp, _ in layers:
        hosts = " -> ".join(h["host"] for h in lp.result.hops)
        out.append(f"layer {lp.layer.digest[:19]} {format_size(lp.layer.size)}: {lp.result.mbps:.1f} MB/s from {hosts}"
                   + (f" ({hops_text(lp.result.hops)})" if len(lp.result.hops) > 1 else "")
                   + (f"; {resumes_text(lp.resumes)} (socket samples: each connection in turn)"
                      if lp.resumes else ""))
    if fastest:
        out.append(f"the whole pull: {single.mbps:.1f} MB/s against the fastest single layer's {fastest:.1f} MB/s")
    out.append(f"Range requests on blobs: {ranges}")
    return out
