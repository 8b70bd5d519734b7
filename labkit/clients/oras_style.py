"""Kind `oras-style`: the image pulled as `apptainer pull oras://` pulls a SIF: the manifest, the config, then
the one SIF blob on one stream, written to its file.

apptainer/apptainer @917d66577963ca297352a22e13c86f1748ddc645, internal/pkg/client/oras/oras.go: DownloadImage
(lines 46-124) reads the image with go-containerregistry's remote.Image (remoteImage, lines 376-401: the
manifest), refuses a manifest with more than one layer ("ORAS SIF image should have a single layer", line 56)
or a layer that is not a SIF media type, writes the image (config and the one layer) into a temporary OCI
layout (layout.AppendImage, line 102), then copies the SIF blob out of it to the destination (lines 113-124).
One blob, one GET: one connection for the image's bytes.

Here with labkit's own OCI client (labkit.clients.oci: ping, manifest, config checked against its digest)
and its measured loop (labkit.clients.puller.pull_image: 1 MiB reads, sha256 checked as the bytes stream,
written to the destination as they arrive), in this process, a thread per pull. The lab's image has a few
layers (a docker image) where an oras:// image has one: this pulls the largest, the SIF's stand-in, and the
manifest's digest must be the image's. Not reproduced: the copy out of the temporary layout (apptainer writes
the SIF twice, the second time from local disk).
"""
from __future__ import annotations

import os
import threading
import time

from ..errors import LabError
from ..records import PullResult, Verify
from .follow import Follow
from .kind import ClientKind, Target, Where
from .oci import DigestMismatch, Reference, Session, pull_layers, resolve
from .oci.pull import fetch_config
from .program import check_room
from .puller import _failed, pull_image, together
from .registry_api import open_get


def largest(layers) -> object:
    """The layer an oras-style pull takes: the largest (the SIF's stand-in), the first of equals."""
    return max(layers, key=lambda d: d.size)


def oras_pull(t: Target, sink, verify: Verify, timeout: float, deadline: float,
              first_byte: threading.Event | None = None, start_at: threading.Barrier | None = None) -> PullResult:
    """One pull: ping, manifest (its digest the image's), config (checked), the largest blob on one GET to `sink`."""
    if start_at is not None:
        start_at.wait(timeout)
    t0, c0 = time.perf_counter(), time.thread_time()
    ref = Reference("https" if t.trust else "http", t.host, t.port, t.oci.repository, t.oci.tag)
    follow = Follow(other_hosts=True)
    session = Session(ref, lambda url, headers: open_get(t.ns, url, timeout, t.trust, follow, headers))
    try:
        session.ping()
        image = resolve(session)
        if image.digest != t.oci.manifest_digest:
            raise DigestMismatch(f"manifest {ref}: the registry's is {image.digest[:19]}, the image's "
                                 f"{t.oci.manifest_digest[:19]}")
        fetch_config(session, image)
        blob = largest(image.layers)
    except Exception as exc:  # noqa: BLE001 - a failed pull is a result, not a crash
        return _failed(t0, 0, 0.0, exc, time.thread_time() - c0)
    before = time.thread_time() - c0
    [got] = pull_layers(session, [blob], lambda opener, d: pull_image(
        t.ns, ref.url("blob", d.digest), d.digest.partition(":")[2], timeout, max(1.0, deadline - (time.perf_counter() - t0)),
        verify=verify, first_byte=first_byte, sink=sink, t0=t0, opener=opener), at_once=1)
    r = got.result
    r.cpu_s += before
    return r


class OrasStyle(ClientKind):
    name = "oras-style"
    apis = ("oci",)
    cpu = "threads"

    def pull(self, t: Target, where: Where, parallel: int = 1, verify: Verify = "sha256", timeout: float = 30,
             deadline: float = 600, first_byte: threading.Event | None = None) -> list[PullResult]:
        self.require_api(t)
        if where.dest_root is None:
            raise LabError(f"client.kind {self.name!r} writes the SIF to a file: it needs a destination directory")
        check_room(where.dest_root, parallel, max(size for _, size in t.oci.layers))
        tag = f"{os.getpid()}-{time.monotonic_ns()}"
        sinks = [where.dest_root / f"{tag}-{i}.sif" for i in range(parallel)]
        try:
            if parallel == 1:
                return [oras_pull(t, sinks[0], verify, timeout, deadline, first_byte)]
            return together(parallel, lambda barrier, i: oras_pull(t, sinks[i], verify, timeout, deadline,
                                                                    start_at=barrier), timeout)
        finally:
            for s in sinks:
                s.unlink(missing_ok=True)
