"""An image pulled from an OCI registry the way enroot does (`enroot import docker://...`): curl for every request.

    python -m labkit.clients.enroot_pull BASE REPOSITORY TAG DEST [--connections 10] [--cacert CA] [--curl PATH]

NVIDIA/enroot @8ea147d337da60cb1c557140f3a85cdf0d620968, src/docker.sh: every request one curl process with
enroot's options (lines 20-26: `--proto =https` (=http,https with ENROOT_ALLOW_HTTP), `--retry
$ENROOT_TRANSFER_RETRIES --connect-timeout $ENROOT_CONNECT_TIMEOUT --max-time $ENROOT_TRANSFER_TIMEOUT -SsL`),
in its order (docker::_download, lines 128-190):
  1. `curl -I` the manifest URL: does the registry ask for a token (docker::_authenticate, line 34)
  2. GET the manifest as a manifest list / index (line 148; the platform's entry followed when it is one)
  3. GET the image manifest (line 158), then the config blob (line 167)
  4. the layers: one curl per layer blob, up to ENROOT_MAX_CONNECTIONS at once (GNU parallel -j, line 183),
     each blob's sha256 checked against its digest ("Checksum mismatch: <digest>", lines 117-122).
The defaults, conf/enroot.conf.in:43-52 and enroot.in:90-93: ENROOT_MAX_CONNECTIONS 10, ENROOT_CONNECT_TIMEOUT
30, ENROOT_TRANSFER_TIMEOUT 0, ENROOT_TRANSFER_RETRIES 0. So a blob is one connection: enroot spends its
connections on layers, not on ranges of one blob. Not reproduced: enroot's `--shuf` order and `--retries 2`
of GNU parallel, its layer cache, and what it does with a blob after the check (gunzip | zstd into the cache,
lines 111-115); here each blob is written as it arrives to DEST/<hex> (the manifest as DEST/manifest.json)
and hashed when its curl ends, in a thread of this driver.

Standard library and its sibling driver only (it runs as a program of its own; its start-up is part of every pull it makes).
Exit status 1 on any error, with curl's message or ours.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

from .curl_ranged_pull import driver_args

CONNECTIONS = 10            # ENROOT_MAX_CONNECTIONS (conf/enroot.conf.in:43, enroot.in:90)
CONNECT_TIMEOUT = 30        # ENROOT_CONNECT_TIMEOUT (conf/enroot.conf.in:46, enroot.in:91)
TRANSFER_TIMEOUT = 0        # ENROOT_TRANSFER_TIMEOUT (conf/enroot.conf.in:49, enroot.in:92): no limit
RETRIES = 0                 # ENROOT_TRANSFER_RETRIES (conf/enroot.conf.in:52, enroot.in:93)
ACCEPT_LIST = "Accept: application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json"
ACCEPT_MANIFEST = "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
ARCH = "amd64"
MANIFEST_FILE = "manifest.json"      # labkit.clients.oci_pulled.MANIFEST_FILE (this program imports nothing of labkit)


def curl_options(curl: str, base: str, cacert: str | None) -> list[str]:
    """enroot's curl_opts (src/docker.sh:20-26), the lab's CA added where the path has TLS."""
    proto = "=http,https" if base.startswith("http:") else "=https"
    return [curl, "--proto", proto, "--retry", str(RETRIES), "--connect-timeout", str(CONNECT_TIMEOUT),
            "--max-time", str(TRANSFER_TIMEOUT), "-SsL", *(["--cacert", cacert] if cacert else [])]


def platform_entry(body: bytes, arch: str = ARCH) -> str | None:
    """The digest of `arch`'s manifest when `body` is a manifest list / index (jq at docker.sh:149), else None."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    return next((m["digest"] for m in entries or [] if (m.get("platform") or {}).get("architecture") == arch), None)


def blobs_of(body: bytes) -> tuple[str, list[str]]:
    """(config digest, layer digests in the order enroot fetches them: reversed, docker.sh:159) of a manifest."""
    doc = json.loads(body)
    try:
        return doc["config"]["digest"], [d["digest"] for d in doc["layers"]][::-1]
    except (KeyError, TypeError):
        raise SystemExit("error: could not parse digest information from the manifest") from None


def failed(url: str, rc: int, said: bytes) -> SystemExit:
    """A curl that failed, in one line naming the URL and what curl said (its first line)."""
    first = next((ln.strip() for ln in said.decode(errors="replace").splitlines() if ln.strip()), "(no message)")
    return SystemExit(f"error: {url}: curl exit {rc}: {first}")


def _get(opts: list[str], *args: str) -> bytes:
    p = subprocess.run([*opts, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode:
        raise failed(args[-1], p.returncode, p.stderr)
    return p.stdout


def _checked(path: str, digest: str, bad: list[str]) -> None:
    algorithm, _, hexpart = digest.partition(":")
    with open(path, "rb") as fh:
        if hashlib.file_digest(fh, algorithm).hexdigest() != hexpart:
            bad.append(digest)


def fetch_blobs(opts: list[str], blob_url: str, dest: str, digests: list[str], at_once: int) -> None:
    """One curl per blob, `at_once` of them running; each blob hashed when its curl ends."""
    waiting, running, errors, bad, hashing = list(digests), {}, [], [], []
    while waiting or running:
        while waiting and len(running) < at_once:
            d = waiting.pop(0)
            path = os.path.join(dest, d.partition(":")[2])
            running[subprocess.Popen([*opts, "-f", "-o", path, "--", blob_url + d], stderr=subprocess.PIPE)] = (d, path)
        pid, status = os.wait()
        done = next((p for p in running if p.pid == pid), None)
        if done is None:
            continue
        d, path = running.pop(done)
        done.returncode = os.waitstatus_to_exitcode(status)
        if done.returncode:
            errors.append(failed(blob_url + d, done.returncode, done.stderr.read()))
            waiting.clear()
            continue
        done.stderr.close()
        hashing.append(threading.Thread(target=_checked, args=(path, d, bad)))
        hashing[-1].start()
    for t in hashing:
        t.join()
    if errors:
        raise errors[0]
    if bad:
        raise SystemExit(f"error: Checksum mismatch: {bad[0]}")


def main(argv: list[str] | None = None) -> int:
    a = driver_args("labkit.clients.enroot_pull", __doc__, ["base", "repository", "tag", "dest"], argv, CONNECTIONS)
    opts = curl_options(a.curl, a.base, a.cacert)
    url_manifest = f"{a.base}/v2/{a.repository}/manifests/{a.tag}"
    blob_url = f"{a.base}/v2/{a.repository}/blobs/"
    _get(opts, "-I", "-o", os.devnull, "--", url_manifest)
    entry = platform_entry(_get(opts, "-H", ACCEPT_LIST, "--", url_manifest))
    if entry:
        url_manifest = f"{a.base}/v2/{a.repository}/manifests/{entry}"
    body = _get(opts, "-f", "-H", ACCEPT_MANIFEST, "--", url_manifest)
    with open(os.path.join(a.dest, MANIFEST_FILE), "wb") as f:
        f.write(body)
    config, layers = blobs_of(body)
    fetch_blobs(opts, blob_url, a.dest, [config], 1)
    fetch_blobs(opts, blob_url, a.dest, layers, a.connections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
