"""What an OCI pull left on disk, checked by digest: the manifest, every layer's bytes and the config.

The clients of today each write the blobs their own way; the check reads them where each puts them:

    oci    an OCI image layout (skopeo `oci:DIR`, `podman save --format oci-dir`): blobs/<alg>/<hex>
    dir    containers/image's `dir:` transport: <hex> files beside manifest.json
    flat   one file per blob named by its hex digest, the manifest as manifest.json (the enroot-style driver)

`check_blobs` answers as labkit.clients.program.Program.check does: (bytes of the layers found, sha256
matched or None when only lengths were asked for, what is wrong or ''), each problem naming the blob.
It runs after the program ended, so it is not part of the pull's time (each client verified its own
bytes while pulling, as containers/image and enroot do; this checks what they kept).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from ..records import Verify
from .kind import OciImageRef

Layout = Literal["oci", "dir", "flat"]
MANIFEST_FILE = "manifest.json"       # the dir: transport's name for it (containers/image directory/directory_transport.go)


def blob_path(root: Path, digest: str, layout: Layout) -> Path:
    """Where a layout keeps the blob `digest` (algorithm:hex)."""
    algorithm, _, hexpart = digest.partition(":")
    return root / "blobs" / algorithm / hexpart if layout == "oci" else root / hexpart


def manifest_path(root: Path, image: OciImageRef, layout: Layout) -> Path:
    """Where a layout keeps the manifest's own bytes."""
    return blob_path(root, image.manifest_digest, layout) if layout == "oci" else root / MANIFEST_FILE


def hashes_to(f: Path, digest: str) -> bool:
    """Whether the file's bytes hash to `digest` (algorithm:hex)."""
    algorithm, _, hexpart = digest.partition(":")
    with open(f, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest() == hexpart


def check_blobs(image: OciImageRef, root: Path, layout: Layout, verify: Verify,
                layers: tuple[tuple[str, int], ...] | None = None, manifest: bool = True) -> tuple[int, bool | None, str]:
    """The image's layers (or only `layers`), its config and (if `manifest`) its manifest under `root`:
    (bytes of the layers found, every digest matched (None: verify="length"), what is wrong or '')."""
    wanted = [("layer", d, size) for d, size in (image.layers if layers is None else layers)]
    wanted.append(("config", image.config_digest, None))
    n, wrong = 0, []
    for what, digest, size in wanted:
        f = blob_path(root, digest, layout)
        short = digest[:19]
        if not f.is_file():
            wrong.append(f"{what} {short} not written")
            continue
        got = f.stat().st_size
        n += got if what == "layer" else 0
        if size is not None and got != size:
            wrong.append(f"{what} {short}: {got} of {size} bytes")
        elif verify == "sha256" and not hashes_to(f, digest):
            wrong.append(f"{what} {short}: its bytes do not hash to its digest")
    if manifest and verify == "sha256":
        m = manifest_path(root, image, layout)
        if not m.is_file():
            wrong.append(f"manifest {image.manifest_digest[:19]} not written")
        elif not hashes_to(m, image.manifest_digest):
            wrong.append(f"manifest: its bytes do not hash to {image.manifest_digest[:19]}")
    return n, (not wrong) if verify == "sha256" else None, "; ".join(wrong)


def reference(host: str, port: int, image: OciImageRef) -> str:
    """`host:port/repository:tag`, as skopeo (after docker://), podman and apptainer (after oras://) take it."""
    return f"{host}:{port}/{image.ref}"
