"""Kind `podman`: Debian's podman 4.3.1 pulling into a throwaway storage of its own (no daemon, no host store).

    podman --root {dir}/storage --runroot /run/servelab-podman/<hash of dir> --tmpdir {dir}/libpod --storage-driver vfs
           --events-backend none pull --cert-dir {certdir} {host}:{port}/{repo}:{tag}

(labkit.clients.oci_program.cert_options: --tls-verify=false over plain http), TMPDIR={dir}/tmp for the blobs in flight (podman's own --help: "use the
environment variable 'TMPDIR' to change the temporary storage location for container images"). The store is
the pull's directory, removed with it; vfs, because it needs no mounts (each layer a plain directory). A pull
here is what a compute node's `podman pull` does: every blob fetched and checked against its digest, then
each layer decompressed and unpacked into the store.

How many layers at once (`connections`): podman 4.3.1 pulls through containers/common's libimage (Debian:
golang-github-containers-common 0.50.1; containers/common tag v0.50.1), which sets MaxParallelDownloads from
containers.conf's `image_parallel_copies` (libimage/copier.go:308-313; "If this is zero, container engines
will fall back to containers/image defaults", pkg/config/config.go:295-298; Debian's
/usr/share/containers/containers.conf leaves it at 0); containers/image v5.23.1 then takes its default 6
(copy/copy.go:44) as storage's PutBlob is thread-safe (storage/storage_dest.go:109). So up to 6 at once.

podman keeps no compressed layer, so what it stored is checked after the pull (not timed) from its own words
and its store: the image ID it printed is the config's digest, `podman image inspect` names the manifest
digest it pulled, and `podman save --format oci-dir` gives back the config (its bytes against its digest) and
each layer as podman unpacked it (each tar's sha256 against the config's rootfs.diff_ids, which the config's
digest covers). Its bytes are the image's (the layers' compressed sizes, what crossed the network).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

from ..records import Verify
from ..units import MiB
from .kind import OciImageRef, Target
from .oci_pulled import blob_path, check_blobs, reference
from .oci_program import OciProgram, cert_options

RUN = "/run/servelab-podman"
ID = re.compile(r"^[0-9a-f]{64}$")
CHECK_TIMEOUT = 300


def runroot(workdir: str) -> str:
    """The pull's run directory: podman refuses one longer than 50 characters ("the specified runroot is longer
    than 50 characters"), so a short one of its own under RUN, named after the pull's directory."""
    return f"{RUN}/{hashlib.sha256(workdir.encode()).hexdigest()[:16]}"


def storage_options(workdir: str) -> list[str]:
    """podman's global options for a store of its own under the pull's directory (its run directory beside)."""
    return ["--root", f"{workdir}/storage", "--runroot", runroot(workdir), "--tmpdir", f"{workdir}/libpod",
            "--storage-driver", "vfs", "--events-backend", "none"]


def store_bytes(layers: list[int] | tuple[int, ...]) -> int:
    """The bytes one pull leaves in its directory at most, for layers of these (compressed) sizes: the blobs in
    flight under TMPDIR; vfs's store, where each layer's directory holds the whole root filesystem up to it (the
    vfs driver copies its parent's tree before applying a layer: containers/storage v1.43.0, 04d8b90f,
    drivers/vfs/driver.go:195-199, the release Debian's podman 4.3.1 is built with: its Built-Using names
    golang-github-containers-storage 1.43.0+ds1-8), so layer i costs the sum of layers 1..i unpacked; and `podman save`'s copy for the check.
    Unpacked is taken as compressed: the lab's layers are incompressible bytes (labkit.lab.oci_image)."""
    return sum(layers) * 2 + sum(sum(layers[:i + 1]) for i in range(len(layers)))


def podman_argv(values: dict[str, str]) -> list[str]:
    return ["podman", *storage_options(values["layout"]), "pull", *cert_options(values), values["image"]]


def printed_id(output: str) -> str | None:
    """The image ID `podman pull` prints last (64 hex digits on a line of its own), or None."""
    ids = [ln.strip() for ln in output.splitlines() if ID.match(ln.strip())]
    return ids[-1] if ids else None


def unpacked_digest(f: Path) -> str:
    """sha256 of a layer as a tar: its bytes, gunzipped first when they are gzip (podman save may compress)."""
    h = hashlib.sha256()
    with open(f, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        src = gzip.GzipFile(fileobj=raw) if gz else raw
        while chunk := src.read(MiB):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def stored_wrong(saved: Path, image: OciImageRef, verify: Verify) -> list[str]:
    """What is wrong with the `oci-dir` podman saved: the config against its digest, and each layer it holds,
    as a tar, against the config's rootfs.diff_ids in order (by sha256 when `verify` is sha256, else the count)."""
    _, _, wrong = check_blobs(image, saved, "oci", verify, layers=(), manifest=False)
    if wrong:
        return [wrong]
    diff_ids = json.loads(blob_path(saved, image.config_digest, "oci").read_bytes()).get("rootfs", {}).get("diff_ids", [])
    index = json.loads((saved / "index.json").read_text())
    held = json.loads(blob_path(saved, index["manifests"][0]["digest"], "oci").read_bytes())["layers"]
    if len(held) != len(diff_ids) or len(held) != len(image.layers):
        return [f"its store holds {len(held)} layers; the config names {len(diff_ids)}, the image has {len(image.layers)}"]
    if verify != "sha256":
        return []
    got = [unpacked_digest(blob_path(saved, d["digest"], "oci")) for d in held]
    return [f"layer {i}: as podman unpacked it, its tar hashes to {g[:19]}, not the config's diff_id {want[:19]}"
            for i, (g, want) in enumerate(zip(got, diff_ids)) if g != want]


class Podman(OciProgram):
    name = "podman"
    connections = 6           # containers/image's default through libimage (above)

    def values(self, t, url, workdir):
        for sub in ("tmp", "libpod"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        return super().values(t, url, workdir)

    def argv(self, values: dict[str, str]) -> list[str]:
        return podman_argv(values)

    def room(self, t: Target) -> int:
        return store_bytes([size for _, size in t.oci.layers]) if t.oci else t.size

    def cleanup(self, workdir: Path) -> None:
        shutil.rmtree(runroot(str(workdir)), ignore_errors=True)

    def env(self, values, workdir, secrets):
        return {**super().env(values, workdir, secrets), "TMPDIR": str(workdir / "tmp")}

    def check(self, workdir: Path, t: Target, verify: Verify, exited_ok: bool,
              output: str = "") -> tuple[int, bool | None, str]:
        sha = verify == "sha256"
        if not exited_ok:
            return 0, False if sha else None, ""
        image, wrong = reference(t.host, t.port, t.oci), []
        got = printed_id(output)
        if got != t.oci.config_digest.partition(":")[2]:
            wrong.append(f"podman printed image ID {got or '(none)'}, not the config's digest {t.oci.config_digest[:19]}")

        def podman(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([shutil.which("podman") or "podman", *storage_options(str(workdir)), *args],
                                  capture_output=True, text=True, timeout=CHECK_TIMEOUT)
        said = podman("image", "inspect", "--format", "{{.Digest}}", image)
        if said.returncode or said.stdout.strip() != t.oci.manifest_digest:
            wrong.append(f"podman image inspect says {(said.stdout.strip() or said.stderr.strip())[:200]!r}, "
                         f"not the manifest's digest {t.oci.manifest_digest[:19]}")
        out = podman("save", "--format", "oci-dir", "-o", str(workdir / "saved"), image)
        wrong += [f"podman save: {out.stderr.strip()[:200]}"] if out.returncode else \
            stored_wrong(workdir / "saved", t.oci, verify)
        return (0 if wrong else t.oci.size), (not wrong) if sha else None, "; ".join(wrong)
