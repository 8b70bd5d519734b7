"""Kind `oci`: labkit's own OCI client (labkit.clients.oci) pulling the lab's image from an OCI registry's `/v2/`.

One pull is what a containers/image client (podman, skopeo, Apptainer's `docker://`) makes: the `/v2/` ping,
the manifest by tag (its bytes checked against the digest the registry was stocked with), the config blob
(checked against its digest), then every layer, MAX_PARALLEL_DOWNLOADS (6) at once as containers/image does
by default (containers/image @df7e80d2d19872b61f352a8a182ec934dc0c2346 copy/copy.go line 39,
`maxParallelDownloads = uint(6)`; labkit.clients.oci.pull). Each layer is read by the lab's measured loop
(labkit.clients.puller.pull_image: 1 MiB reads, sha256 hashed beside the reads as the bytes stream, checked
against the layer's digest at its end; a cut resumed with Range where the registry accepts it); the bytes
are discarded (client.dest memory) or each layer written to a file under the destination. Its CPU is the
pulling threads' own (every layer's thread and its hashing thread), as for kind `labkit`; on a time-dilated
lab (`Where.own_process`) the same pulls run in a child process held by the compute node's CPU group
(labkit.clients.own_child).

A pull is one PullResult (labkit.clients.oci.pull.whole): the layers' bytes over the pull's wall time, failed
naming the layer when any layer failed or did not hash to its digest.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from ..errors import SettingsError
from ..records import PullResult, Verify
from .follow import Follow
from .own_child import pull_in_child
from .kind import ClientKind, OciImageRef, Target, Where
from .oci import MAX_PARALLEL_DOWNLOADS, Digest, DigestMismatch, Image, Reference, Session, pull_layers, resolve
from .oci.pull import fetch_config, whole
from .program import places
from .puller import _failed, _queued, pull_image, together
from .registry_api import open_get


def expected(image: Image, want: OciImageRef) -> None:
    """DigestMismatch unless the registry's manifest is the one stocked: its digest, config and layers."""
    got = (image.digest, image.config.digest, tuple((d.digest, d.size) for d in image.layers))
    if got != (want.manifest_digest, want.config_digest, want.layers):
        raise DigestMismatch(f"manifest {want.ref}: the registry serves {image.digest[:19]} (config "
                             f"{image.config.digest[:19]}, {len(image.layers)} layers), not the "
                             f"{want.manifest_digest[:19]} it was stocked with")


class OciOwn(ClientKind):
    name = "oci"
    cpu = "threads"
    discards = True
    apis = ("oci",)
    connections = MAX_PARALLEL_DOWNLOADS      # at most: one per layer in flight
    at_once = MAX_PARALLEL_DOWNLOADS

    def pull(self, t: Target, where: Where, parallel: int = 1, verify: Verify = "sha256", timeout: float = 30,
             deadline: float = 600, first_byte: threading.Event | None = None) -> list[PullResult]:
        if t.oci is None:
            raise SettingsError(f"client.kind {self.name!r} speaks the OCI distribution API (/v2/) only; this "
                                "target is sregistry's one file")
        if where.own_process:        # a compute node's CPU group holds the pulls (labkit.clients.own_child)
            return pull_in_child(t, where, self.settings, parallel, verify, timeout, deadline, first_byte)
        dirs = places(self.settings.writes, where, parallel, t.size)     # a directory per pull, a file per layer
        try:
            if parallel == 1:
                return [self.one(t, verify, timeout, deadline, None, first_byte, dirs[0] if dirs else None)]
            return together(parallel, lambda barrier, i: self.one(t, verify, timeout, deadline, barrier, first_byte,
                                                                 dirs[i] if dirs else None), timeout)
        finally:
            for d in dirs or []:
                shutil.rmtree(d, ignore_errors=True)

    def one(self, t: Target, verify: Verify, timeout: float, deadline: float, start_at: threading.Barrier | None,
            first_byte: threading.Event | None, sink_dir: Path | None) -> PullResult:
        """One pull: ping, manifest, config; then (after `start_at`, with the other pulls) every layer."""
        ref = Reference("https" if t.trust else "http", t.host, t.port, t.oci.repository, t.oci.tag)
        follow = Follow(other_hosts=True)           # a registry may send blobs elsewhere by design
        session = Session(ref, lambda url, headers: open_get(t.ns, url, timeout, t.trust, follow, headers))
        t0, c0, q0 = time.perf_counter(), time.thread_time(), _queued()
        try:
            session.ping()
            image = resolve(session)
            expected(image, t.oci)
            fetch_config(session, image)
            if start_at is not None:
                start_at.wait(timeout)
                t0 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - a failed pull is a result, not a crash
            return _failed(t0, 0, 0.0, exc, time.thread_time() - c0)
        if sink_dir is not None:
            sink_dir.mkdir(parents=True, exist_ok=True)
        prep_cpu, prep_wait = time.thread_time() - c0, _queued() - q0

        def fetch(opener, d) -> PullResult:      # timed from the pull's start: its TTFB is the image's first byte
            return pull_image(t.ns, ref.url("blob", d.digest), Digest.parse(d.digest).hex, timeout, deadline,
                              verify=verify, first_byte=first_byte, opener=opener, t0=t0,
                              sink=sink_dir / d.digest.replace(":", "-") if sink_dir else None)
        layers = pull_layers(session, image.layers, fetch, self.settings.layers_at_once or self.at_once)
        r = whole(layers, t0, prep_cpu + sum(lp.result.cpu_s for lp in layers))
        r.wait_s += prep_wait
        return r
