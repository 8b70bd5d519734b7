"""One image by N curl connections at once, each fetching its own byte range (HTTP Range), written in place.

    python -m labkit.clients.curl_ranged_pull URL DEST [--connections 10] [--cacert CA] [--curl PATH]

First one request for the first byte (`-r 0-0`, redirects followed) tells the image's length (206 with
`Content-Range: bytes 0-0/<length>`) and the URL the redirects end at; then `--connections` curls at
once, each `-r <start>-<end>` on that URL, its stdout the destination file opened at its range's offset
(no part files, no copy). A server that answers the range with the whole file (200: no Range support,
as Django's FileResponse) is said on stderr and pulled with one connection. Exit status 1 on any error,
with curl's message or ours; the caller checks the file's length and sha256.

Standard library only (it runs as a program of its own; its start-up is part of every pull it makes).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

CONNECTIONS = 10        # enroot's ENROOT_MAX_CONNECTIONS default (NVIDIA/enroot enroot.in:90, conf/enroot.conf.in:43)
MAX_REDIRS = 5          # labkit.clients.follow.MAX_HOPS (kept as a literal: this program imports nothing of labkit)
NO_RANGES = 63          # curl's exit status for --max-filesize exceeded: the probe was answered with the whole file


def ranges(length: int, n: int) -> list[tuple[int, int]]:
    """`length` bytes split into at most `n` contiguous inclusive ranges, the first ones one byte longer."""
    if length < 1 or n < 1:
        raise ValueError(f"ranges of {length} bytes over {n} connections")
    n = min(n, length)
    step, extra = divmod(length, n)
    out, start = [], 0
    for i in range(n):
        end = start + step + (1 if i < extra else 0)
        out.append((start, end - 1))
        start = end
    return out


def probed(out: str) -> tuple[int, str, int | None]:
    """(status, the URL the redirects ended at, the image's length or None) from the probe's output:
    its headers (-D -, one block per hop) then the write-out line `<status> <url>`."""
    head, _, last = out.rstrip("\n").rpartition("\n")
    status, _, url = last.partition(" ")
    blocks = re.split(r"\r?\n\r?\n", head.strip())
    m = re.search(r"(?im)^content-range:\s*bytes\s+\d+-\d+/(\d+)\s*$", blocks[-1] if blocks else "")
    return int(status or 0), url, int(m.group(1)) if m else None


def curl_argv(curl: str, cacert: str | None) -> list[str]:
    """curl's common options: quiet but for errors, fail on HTTP errors, redirects as labkit follows them."""
    return [curl, "-sS", "-f", "-L", "--max-redirs", str(MAX_REDIRS), "--proto-redir", "=http,https",
            *(["--cacert", cacert] if cacert else [])]


def probe(base: list[str], url: str) -> tuple[str, int | None]:
    """The URL to fetch ranges of and the image's length; length None: the server sends whole files only."""
    p = subprocess.run([*base, "-r", "0-0", "--max-filesize", "1", "-o", os.devnull, "-D", "-",
                        "-w", "%{http_code} %{url_effective}", url], capture_output=True, text=True)
    if p.returncode not in (0, NO_RANGES):
        sys.stderr.write(p.stderr)
        raise SystemExit(p.returncode or 1)
    status, final, length = probed(p.stdout)
    if p.returncode == NO_RANGES or status != 206 or length is None:
        return final or url, None
    return final, length


def fetch(base: list[str], url: str, dest: str, parts: list[tuple[int, int]]) -> None:
    """One curl per range at once, each writing at its offset of `dest`; SystemExit on the first that fails."""
    procs = []
    try:
        for start, end in parts:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.lseek(fd, start, os.SEEK_SET)
                procs.append(subprocess.Popen([*base, "-r", f"{start}-{end}", url], stdout=fd))
            finally:
                os.close(fd)
        failed = [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    bad = [rc for rc in failed if rc]
    if bad:
        raise SystemExit(f"error: {len(bad)} of {len(parts)} range requests failed (curl exit {bad[0]})")


def driver_args(module: str, doc: str, positional: list[str], argv: list[str] | None,
                connections: int = CONNECTIONS) -> argparse.Namespace:
    """A curl driver's command line: its positional words, then --connections, --cacert and --curl."""
    ap = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    for name in positional:
        ap.add_argument(name)
    ap.add_argument("--connections", type=int, default=connections)
    ap.add_argument("--cacert")
    ap.add_argument("--curl", default="curl")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = driver_args("labkit.clients.curl_ranged_pull", __doc__, ["url", "dest"], argv)
    base = curl_argv(a.curl, a.cacert)
    url, length = probe(base, a.url)
    if length is None:
        print("the server answered a Range request with the whole file: one connection", file=sys.stderr)
        return subprocess.run([*base, "-o", a.dest, url]).returncode
    fetch(base, url, a.dest, ranges(length, a.connections))
    if os.path.getsize(a.dest) != length:
        raise SystemExit(f"error: {os.path.getsize(a.dest)} bytes written of {length} (a range answered with more)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
