"""Image pulls the way a Singularity client makes them: manifest, then the image URL, verified.

Sockets are opened inside the vantage point's namespace, so one Python process can pull
from every node of the lab. Every pull is bounded: an idle timeout per read and a
deadline for the whole pull.
"""
from __future__ import annotations

import hashlib
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from pathlib import Path

from ..errors import HttpStatusError
from ..records import PullResult, Verify
from ..clients.registry_api import Opened, Trust, base_url, fetch_manifest, open_get
from ..clients.follow import Follow, image_url
from .failures import check_by, classify, describe, outcome

READ_SIZE = 1024 * 1024      # bytes per read of the image (Singularity 2.6 and sregistry-cli read 1 MiB)
HASH_BUFFERS = 4             # reads the hashing thread may lag behind the socket (4 MiB)


class Hasher:
    """sha256 of a body in a thread of its own, beside the reads: hashlib lets go of the GIL while it hashes,
    so on two cores one read waits neither for the hash of the one before nor the hash for the next read.

        h = Hasher()
        buf = h.buffer()          # a free buffer (waits while all HASH_BUFFERS are being hashed)
        n = resp.readinto(buf); h.put(buf, n)
        h.close().hexdigest(), h.cpu_s, h.wait_s

    Hashed in the reading thread, a 2 GB/s path gave the client 830 MB/s (1.2 ms of hashing per MiB added
    to each 1 MiB read: benchmarks/bench_pull_client.py, data/recorded/pull-client-accel-64MiB.txt).
    """

    def __init__(self, buffers: int = HASH_BUFFERS, size: int = READ_SIZE):
        self.digest = hashlib.sha256()
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._full: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(buffers):
            self._free.put(bytearray(size))
        self.cpu_s = self.wait_s = 0.0        # the hashing thread's CPU and run-queue wait, once closed
        self._thread = threading.Thread(target=self._run, name="pull-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        c0, q0 = time.thread_time(), _queued()
        while (item := self._full.get()) is not None:
            buf, n = item
            self.digest.update(memoryview(buf)[:n])
            self._free.put(buf)
        self.cpu_s, self.wait_s = time.thread_time() - c0, _queued() - q0

    def buffer(self) -> bytearray:
        return self._free.get()

    def put(self, buf: bytearray, n: int) -> None:
        self._full.put((buf, n))

    def close(self):
        """Wait for the last bytes to be hashed; the digest."""
        if self._thread.is_alive():
            self._full.put(None)
            self._thread.join()
        return self.digest


def pull(ns: str | None, host: str, port: int, uri: str, expect_sha256: str | None = None,
         timeout: float = 30, deadline: float = 600, start_at: threading.Barrier | None = None,
         verify: Verify = "sha256", first_byte: threading.Event | None = None,
         sink: Path | None = None, trust: Trust | None = None, follow: Follow | None = None) -> PullResult:
    """One pull: GET the manifest, then the image it names; verify its length and (by default) sha256.
    `trust`: pull over https, the server's certificate checked against it (labkit.clients.registry_api.Trust).
    `follow`: redirects and other hosts (labkit.clients.follow: an image URL naming another host is
    fetched from `host:port` unless `follow.other_hosts`).

    Hashing costs about 0.65-0.8 s of CPU per GB here, done in a thread beside the reads (Hasher): on a
    2-core machine where the path itself delivers 2 GB/s it still takes a core's share from the path.
    `first_byte` is set when the image's first bytes arrive (to act on a pull in flight).
    `sink`: a file the bytes are written to as they arrive (a client writing to its disk).
    """
    _check_verify(verify)
    t0 = time.perf_counter()
    follow = follow or Follow()
    try:
        man = fetch_manifest(ns, host, port, uri, timeout, trust, follow)
        url, _ = image_url(str(man.get("image") or ""), base_url(host, port, trust), follow)
    except Exception as exc:  # noqa: BLE001 - a failed pull is a result, not a crash
        return _failed(t0, 0, 0.0, exc)
    return pull_image(ns, url, expect_sha256 or man.get("version"), timeout, deadline, start_at,
                      verify, first_byte, sink=sink, t0=t0, trust=trust, follow=follow)


def pull_image(ns: str | None, url: str, expect_sha256: str | None, timeout: float = 30, deadline: float = 600,
               start_at: threading.Barrier | None = None, verify: Verify = "sha256",
               first_byte: threading.Event | None = None, sink: Path | None = None, watch=None,
               t0: float | None = None, trust: Trust | None = None, follow: Follow | None = None,
               opener: Callable[[], Opened] | None = None) -> PullResult:
    """GET the image at `url` (redirects as `follow` says), read it in 1 MiB reads, check it by
    sha256, else by length, else report it unverified (labkit.clients.failures.check_by); TTFB counts
    from `t0` (default: now). A failure's error names what the server did (failures.describe).
    `opener`: opens the GET instead (an OCI blob: its authorization and redirects are the client's,
    labkit.clients.oci); `url` then only names it.

    `watch`, if given, is called with the socket before each read and `watch.finish(sock)` after
    the body (labkit.measure.own_socket.SocketWatch); the socket is a duplicate of the connection's
    descriptor, or None where there is none (the watch then skips its samples and says so).
    """
    _check_verify(verify)
    t0 = time.perf_counter() if t0 is None else t0
    c0, q0 = time.thread_time(), _queued()
    n, ttfb, length, got, hasher, digest = 0, 0.0, -1, None, None, None
    hashed_cpu = hashed_wait = 0.0
    try:
        if start_at is not None:
            start_at.wait(timeout)
            t0 = time.perf_counter()
        got = opener() if opener is not None else open_get(ns, url, timeout, trust, follow)
        resp, out = got.resp, None
        try:
            out = open(sink, "wb") if sink is not None else None
            if resp.status != 200:
                raise HttpStatusError(resp.status, f"HTTP {resp.status} from {got.hops[-1]['host']}")
            length = int(resp.getheader("Content-Length") or -1) if not resp.chunked else -1
            check = check_by(verify, expect_sha256, length)
            hasher = Hasher() if check == "sha256" else None
            buf = bytearray(READ_SIZE)
            stop = t0 + deadline
            while True:
                if watch is not None:
                    watch(got.sock)
                if hasher is not None:
                    buf = hasher.buffer()
                got_n = resp.readinto(buf)
                if not got_n:
                    if hasher is not None:
                        hasher.put(buf, 0)
                    break
                if not n:
                    ttfb = (time.perf_counter() - t0) * 1e3
                    if first_byte is not None:
                        first_byte.set()
                n += got_n
                if out is not None:
                    out.write(memoryview(buf)[:got_n])
                if hasher is not None:
                    hasher.put(buf, got_n)
                if time.perf_counter() > stop:
                    raise PullDeadline(f"pull still running after the {deadline:g} s deadline")
            if watch is not None:
                watch.finish(got.sock)
        finally:
            got.close()
            if out is not None:
                out.close()
            if hasher is not None:
                digest = hasher.close()
                hashed_cpu, hashed_wait = hasher.cpu_s, hasher.wait_s
        t1 = time.perf_counter()
        sha_ok = digest.hexdigest() == expect_sha256 if digest else None
        kind = outcome(n, length, sha_ok)
        return PullResult(ok=not kind, bytes=n, seconds=t1 - t0, ttfb_ms=ttfb, sha256_ok=sha_ok,
                          error=describe(kind, n, length, timeout) if kind else "", start=t0, end=t1, kind=kind,
                          cpu_s=time.thread_time() - c0 + hashed_cpu, wait_s=_queued() - q0 + hashed_wait, check=check, hops=got.hops,
                          http=got.http, tls=got.tls)
    except Exception as exc:  # noqa: BLE001 - a failed pull is a result, not a crash
        r = _failed(t0, n, ttfb, exc, time.thread_time() - c0 + hashed_cpu, _queued() - q0 + hashed_wait, length, timeout)
        if got is not None:
            r.hops, r.http, r.tls = got.hops, got.http, got.tls
        else:
            r.hops = list(getattr(exc, "hops", []))
        return r


class PullDeadline(TimeoutError):
    """The pull was still running at its deadline (a timeout, counted as one)."""


def _check_verify(verify: str) -> None:
    if verify not in ("sha256", "length"):
        raise ValueError(f"verify {verify!r}: use 'sha256' or 'length'")


def _failed(t0: float, n: int, ttfb: float, exc: Exception, cpu_s: float = 0.0, wait_s: float = 0.0,
            length: int = -1, timeout: float = 0.0) -> PullResult:
    t1 = time.perf_counter()
    kind, detail = classify(exc), f"{type(exc).__name__}: {exc}"
    words = detail if isinstance(exc, (PullDeadline, HttpStatusError)) else describe(kind, n, length, timeout, detail)
    return PullResult(ok=False, bytes=n, seconds=t1 - t0, ttfb_ms=ttfb, sha256_ok=False,
                      error=words, start=t0, end=t1, kind=kind, cpu_s=cpu_s, wait_s=wait_s)


def _queued() -> float:
    """Seconds this thread has waited on a run queue (/proc/thread-self/schedstat; 0 where absent)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def pull_parallel(ns, host, port, uri, n: int, expect_sha256=None, timeout=30, deadline=600,
                  verify: Verify = "sha256", sinks: list[Path] | None = None,
                  trust: Trust | None = None) -> list[PullResult]:
    """n pulls at once (they start together once every manifest is in); each to its sink file if given."""
    return together(n, lambda barrier, i: pull(ns, host, port, uri, expect_sha256, timeout, deadline, barrier,
                                               verify, None, sinks[i] if sinks else None, trust), timeout)


def together(n: int, task: Callable[[threading.Barrier, int], PullResult], timeout: float = 30) -> list[PullResult]:
    """`task(barrier, i)` in n threads at once; each waits at the barrier before its image request."""
    check_parallel(n)
    barrier = threading.Barrier(n, timeout=timeout)
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="pull") as pool:
        futures = [pool.submit(task, barrier, i) for i in range(n)]
        return [f.result() for f in futures]


def check_parallel(n: int) -> None:
    if not 1 <= n <= 256:
        raise ValueError(f"parallel pulls: {n} is outside 1..256")


def aggregate_mbps(results: list[PullResult]) -> float:
    """Bytes of all pulls over the wall time from the first start to the last end."""
    if not results:
        return 0.0
    span = max(r.end for r in results) - min(r.start for r in results)
    return sum(r.bytes for r in results) / span / 1e6 if span > 0 else 0.0
