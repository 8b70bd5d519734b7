"""The seed's client: `singularity pull shub://<registry>/<collection>/<name>:<tag>` as Singularity 2.6.1 did it.

Written here in Python 3 from what sylabs/singularity at tag 2.6.1 (9103f0155259fdf1159277bca3c2d347571cba0d)
does, not copied from it:
- libexec/cli/pull.exec: the pull folder is $SINGULARITY_CACHEDIR if set, else $SINGULARITY_PULLFOLDER,
  else the current directory; the finished image is made executable (`chmod +x`).
- libexec/python/shub/api.py `SingularityApiConnection.get_manifest`: GET
  `https://<registry>/api/container/<collection>/<name>:<tag>` (sutils.py `add_http`: https unless
  SINGULARITY_NOHTTPS); `download_image`: the manifest's `image` URL is downloaded to
  `<folder>/<collection>-<name>-<tag>` (`get_default_name` for a registry's manifest), gunzipped
  (`gzip -d -f`) when it is gzipped, then renamed to `<that>.simg`. No checksum anywhere.
- libexec/python/base.py `ApiConnection.download_atomically`: into `<file>.<random name>`, then
  `os.rename` onto `<file>`; on an error the temporary file is removed. `ApiConnection.stream`:
  urllib2 with Accept/Content-Type JSON headers and User-Agent "Singularity", then
  `response.read(chunk_size)` of 1 MiB and a write, one progress-bar update per chunk (counting 1 MiB a chunk).

    python -m labkit.clients.singularity26_pull HOST:PORT collection/name:tag [--cafile CA] [--http]

It prints where the image is, as Singularity does ("Done. Container is at: <path>"); exit status 1
on any error, with its message (the lab's pull then names it).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import ssl
import string
import sys
import urllib.request
from pathlib import Path

CHUNK = 1 << 20                    # size literal: stdlib only; base.py ApiConnection.stream: chunk_size = 1 << 20
BAR = 35                           # api.py download_image: show_progress(..., length=35)
HEADERS = {"Accept": "application/json", "Content-Type": "application/json; charset=utf-8",
           "User-Agent": "Singularity"}


def pull_folder(env: dict[str, str], cwd: str) -> Path:
    """pull.exec: SINGULARITY_CACHEDIR first, then SINGULARITY_PULLFOLDER, then the current directory."""
    return Path(env.get("SINGULARITY_CACHEDIR") or env.get("SINGULARITY_PULLFOLDER") or cwd)


def split_uri(uri: str) -> tuple[str, str, str]:
    """'collection/name:tag' -> (collection, name, tag); tag 'latest' when absent (shell.py parse_image_uri)."""
    coll, _, rest = uri.partition("/")
    name, _, tag = rest.partition(":")
    if not coll or not name:
        raise ValueError(f"{uri!r}: a shub:// image is collection/name[:tag]")
    return coll, name, tag or "latest"


def image_name(manifest: dict) -> str:
    """api.py get_default_name for a registry's manifest: <collection>-<name>-<tag>, slashes as '-'."""
    version = str(manifest.get("tag") or manifest.get("branch") or "latest").replace("/", "-")
    name = str(manifest["name"])
    if "frozen" in manifest and manifest.get("collection"):
        name = f"{manifest['collection']}-{name}"
    return f"{name.replace('/', '-')}-{version}"


def progress_line(done: int, total: int, length: int = BAR) -> str:
    """One progress-bar update (message.py show_progress's layout: '=' done, '|' head, '-' to go)."""
    shown = min(length, int(length * done // total)) if total else length
    bar = "=" * shown + ("|" + "-" * (length - shown - 1) if shown < length else "")
    return f"\rProgress |{bar}| {min(100.0, 100 * done / total if total else 100):5.1f}% "


def opener(cafile: str | None):
    """urllib's opener; https verified against `cafile` when given (the lab's CA), else the system's."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))


def stream(op, url: str, dest: Path, out) -> int:
    """base.py stream: read 1 MiB, write it, update the bar; the bytes written."""
    req = urllib.request.Request(url, headers=HEADERS)
    n = 0
    with op.open(req) as resp, open(dest, "wb") as f:
        total = int(resp.headers.get("Content-Length") or 0)
        shown = 0
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            f.write(chunk)
            n += len(chunk)
            if total:
                shown += CHUNK             # the bar counts whole chunks, as Singularity's did
                out.write(progress_line(shown, total))
                out.flush()
    out.write("\n")
    return n


def download_atomically(op, url: str, file: Path, out) -> Path:
    """base.py download_atomically: a temporary name beside the file, renamed onto it when complete."""
    tmp = file.with_name(f"{file.name}.{''.join(random.choices(string.ascii_lowercase + string.digits, k=8))}")
    try:
        stream(op, url, tmp, out)
        os.rename(tmp, file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return file


def is_gzip(path: Path) -> bool:
    """sutils.py get_image_format says GZIP for a name ending in gz (and image-type for the magic)."""
    if path.name.endswith("gz"):
        return True
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def gunzip(path: Path) -> Path:
    """`gzip -d -f` on `<path>.gz` (renamed so first, as download_image does)."""
    gz = path if path.name.endswith(".gz") else path.rename(path.with_name(path.name + ".gz"))
    plain = gz.with_name(gz.name[:-3])
    with gzip.open(gz, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
    gz.unlink()
    return plain


def pull(registry: str, uri: str, folder: Path, https: bool = True, cafile: str | None = None, out=sys.stdout) -> Path:
    """The whole pull: manifest, image into the folder atomically, gunzip if gzipped, `<name>.simg`, chmod +x."""
    coll, name, tag = split_uri(uri)
    op = opener(cafile)
    base = f"{'https' if https else 'http'}://{registry}"
    with op.open(urllib.request.Request(f"{base}/api/container/{coll}/{name}:{tag}", headers=HEADERS)) as resp:
        manifest = json.loads(resp.read().decode("utf-8"))
    url = manifest.get("image")
    if not url:
        raise RuntimeError(f"{coll}/{name}:{tag} is not ready for download (no image URL in its manifest)")
    folder.mkdir(parents=True, exist_ok=True)
    file = download_atomically(op, url, folder / image_name(manifest), out)
    if is_gzip(file):
        file = gunzip(file)
    final = file.rename(file.with_name(file.name + ".simg"))
    final.chmod(final.stat().st_mode | 0o111)
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labkit.clients.singularity26_pull", description=__doc__.splitlines()[0])
    ap.add_argument("registry", help="HOST:PORT of the registry (shub://HOST:PORT/...)")
    ap.add_argument("uri", help="collection/name:tag")
    ap.add_argument("--http", action="store_true", help="plain http (SINGULARITY_NOHTTPS=1)")
    ap.add_argument("--cafile", help="the CA to verify the registry's certificate with")
    a = ap.parse_args(argv)
    https = not a.http and os.environ.get("SINGULARITY_NOHTTPS", "").lower() not in ("1", "true", "yes")
    try:
        final = pull(a.registry, a.uri, pull_folder(dict(os.environ), os.getcwd()), https, a.cafile)
    except Exception as exc:  # noqa: BLE001 - a failed pull: its message and exit status 1, as Singularity
        print(f"ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"Done. Container is at: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
