"""A pull the way an OCI client makes it: ping, manifest (an index resolved for the platform), config,
then every layer, one at a time or N at once.

containers/image (what podman, skopeo and CRI-O pull with) fetches up to 6 layers at once by default:
`maxParallelDownloads = uint(6)` ("Let's follow Firefox by limiting it to 6"), containers/image
@df7e80d2d19872b61f352a8a182ec934dc0c2346 copy/copy.go line 39, used when both ends allow concurrent
blob copies (line 275). MAX_PARALLEL_DOWNLOADS is that default.

The bytes of each layer are read by `fetch_layer(open_blob, descriptor)`: the caller's loop (the lab's
measured one, labkit.clients.puller.pull_image) given a function that opens the blob's GET (auth and
redirects done); it checks the bytes against the layer's digest as they stream and returns its result.
The body it reads resumes with `Range: bytes=N-` when the connection is cut and the server accepts Range
(labkit.clients.oci.resume, as containers/image does); each resume is in the layer's LayerPull.resumes.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ...errors import SettingsError
from ...records import PullResult
from .blobs import Digest, DigestMismatch
from .manifest import ACCEPT, DEFAULT_PLATFORM, INDEXES, Descriptor, Image, media_type, read_image, select_platform
from .resume import MAX_RESUMES, ResumingBlob
from .session import OciError, Session

MAX_PARALLEL_DOWNLOADS = 6
MAX_AT_ONCE = 32


@dataclass
class LayerPull:
    """One layer fetched: its descriptor, what the loop measured (a labkit.records.PullResult) and each
    resume of its body on a cut connection (offset, cut, status, host, ms, dropped: labkit.clients.oci.resume)."""
    layer: Descriptor
    result: Any
    resumes: list[dict] = field(default_factory=list)


def _manifest(session: Session, ref: str, name: str) -> tuple[str, dict, str]:
    url = session.ref.url("manifest", ref)
    t0 = time.perf_counter()
    got = session.open(url, {"Accept": ACCEPT})
    try:
        status, body = got.resp.status, got.resp.read()
        ctype, said = got.resp.getheader("Content-Type"), got.resp.getheader("Docker-Content-Digest")
    finally:
        got.close()
    if status != 200:
        raise OciError(f"{url}: HTTP {status} {body[:160]!r}: no such manifest" if status == 404
                       else f"{url}: HTTP {status} {body[:160]!r}")
    if ref.startswith(("sha256:", "sha512:")):          # the bytes checked before they are read as JSON
        Digest.parse(ref).check(body, f"manifest {url}")
        digest = ref
    else:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if said and said.startswith("sha256:") and said != digest:
            raise DigestMismatch(f"manifest {url}: the bytes hash to {digest}, the registry says {said}")
    kind, doc = media_type(body, ctype, url)
    session.step(name, url, t0, status, got.hops, media_type=kind, digest=digest, bytes=len(body))
    return kind, doc, digest


def resolve(session: Session, platform: str = DEFAULT_PLATFORM) -> Image:
    """The image the reference names: its manifest (by tag or digest), through an index if it is one."""
    kind, doc, digest = _manifest(session, session.ref.ref, "manifest")
    if kind not in INDEXES:
        return read_image(doc, kind, digest, session.ref.url("manifest", session.ref.ref))
    entry, offered = select_platform(doc, platform, f"index {session.ref}")
    ikind, idoc, idigest = _manifest(session, entry.digest, f"manifest {entry.platform}")
    image = read_image(idoc, ikind, idigest, session.ref.url("manifest", entry.digest))
    image.index, image.platform, image.platforms = digest, entry.platform, offered
    return image


def fetch_config(session: Session, image: Image) -> dict:
    """The image's config blob, checked against its digest (small: read whole)."""
    d = image.config
    url = session.ref.url("blob", d.digest)
    t0 = time.perf_counter()
    got = session.open(url)
    try:
        status, body = got.resp.status, got.resp.read()
    finally:
        got.close()
    if status != 200:
        raise OciError(f"config {d.digest}: HTTP {status} from {url}")
    Digest.parse(d.digest).check(body, f"config {url}")
    return session.step("config", url, t0, status, got.hops, digest=d.digest, bytes=len(body))


def range_check(session: Session, d: Descriptor) -> str:
    """Whether the registry (or where it redirects) serves a Range of the blob: 'accepted (206)' or why not."""
    got = session.open(session.ref.url("blob", d.digest), {"Range": "bytes=0-0"})
    try:
        status = got.resp.status
        where = got.hops[-1]["host"] if got.hops else ""
    finally:
        got.close()
    return {206: f"accepted (206 from {where})", 200: f"ignored (200 and the whole blob from {where})"}.get(
        status, f"HTTP {status} from {where}")


def check_at_once(n: int) -> None:
    if not 1 <= n <= MAX_AT_ONCE:
        raise SettingsError(f"layers at once: {n} is outside 1..{MAX_AT_ONCE} (containers/image's default is "
                            f"{MAX_PARALLEL_DOWNLOADS})")


def pull_layers(session: Session, layers: list[Descriptor], fetch_layer: Callable[[Callable, Descriptor], Any],
                at_once: int = MAX_PARALLEL_DOWNLOADS, max_resumes: int = MAX_RESUMES) -> list[LayerPull]:
    """Every layer through `fetch_layer`, `at_once` of them at a time; results in the manifest's order.
    A layer's body cut mid-way resumes with Range up to `max_resumes` times (0: never) where the server accepts it."""
    check_at_once(at_once)

    def one(d: Descriptor) -> LayerPull:
        url, opened = session.ref.url("blob", d.digest), []

        def open_blob() -> ResumingBlob:
            body = ResumingBlob(session.open(url), lambda headers: session.open(url, headers), d.size, max_resumes)
            opened.append(body)
            return body
        result = fetch_layer(open_blob, d)
        return LayerPull(d, result, [r for body in opened for r in body.resumes])
    if at_once == 1 or len(layers) <= 1:
        return [one(d) for d in layers]
    with ThreadPoolExecutor(max_workers=min(at_once, len(layers)), thread_name_prefix="layer") as pool:
        return list(pool.map(one, layers))


def whole(layers: list[LayerPull], t0: float, cpu_s: float) -> PullResult:
    """The image's pull from its layers': bytes summed over the wall time; failed if any layer failed, the layer named."""
    res = [lp.result for lp in layers]
    t1 = max((r.end for r in res), default=time.perf_counter())
    bad = [lp for lp in layers if not lp.result.ok]
    big = max(layers, key=lambda lp: lp.layer.size) if layers else None
    first = res[0] if res else PullResult(False, 0, 0.0, 0.0, None)
    return PullResult(ok=not bad, bytes=sum(r.bytes for r in res), seconds=t1 - t0,
                      ttfb_ms=min((r.ttfb_ms for r in res if r.ttfb_ms), default=0.0),
                      sha256_ok=all(r.sha256_ok for r in res) if res else None,
                      error="; ".join(f"layer {lp.layer.digest[:19]}: {lp.result.error}" for lp in bad),
                      start=t0, end=t1, kind=bad[0].result.kind if bad else "", cpu_s=cpu_s,
                      wait_s=sum(r.wait_s for r in res), check=", ".join(sorted({r.check for r in res if r.check})),
                      hops=big.result.hops if big else [], http=first.http, tls=first.tls)
