"""A layer's body that resumes with `Range: bytes=N-` when its connection is cut, where the server accepts Range.

    body = ResumingBlob(first, reopen, size=d.size)   # first: the blob's opened GET; reopen(headers) -> Opened
    n = body.resp.readinto(buf)                       # as an http.client response; a cut resumed inside
    body.resumes                                      # [{"offset", "cut", "status", "host", "ms", "dropped"}]

As containers/image does it (what podman, skopeo and CRI-O pull with): every blob body it GETs is wrapped
(containers/image @df7e80d2d19872b61f352a8a182ec934dc0c2346 docker/docker_client.go line 1072) in its
bodyReader (same commit, docker/body_reader.go), which resumes a body whose read fails with
io.ErrUnexpectedEOF (the body ended before its Content-Length) or ECONNRESET (lines 150-201): after a pause of 1 s plus up to 100 ms of jitter (line 161) it asks for `Range: bytes=<offset>-`
(lines 163-166) and takes only a 206 whose Content-Range starts at that offset and runs to the blob's end
(lines 176-188); a 200 or another status ends the read with the cut's error (lines 189-193). It resumes
the first time always, later only after 1 MiB of progress since the last resume or 60 s since it
(bodyReaderMinimumProgress, bodyReaderMSSinceLastRetry, lines 20-25; errorIfNotReconnecting, lines
220-243), and has no count limit beyond that.

What differs here, and why:
- A server that does not say `Accept-Ranges: bytes` on the blob's answer (RFC 9110 section 14.3) is not
  asked: the cut is the pull's failure, named (containers/image asks anyway). distribution serves a blob it
  does not redirect with Go's http.ServeContent (distribution/distribution @338e645f20a47cbaca4cfcd9b60670503b75bbc9
  registry/storage/blobserver.go), which answers Range and says `Accept-Ranges: bytes`.
- A 200 to the Range request means the server started over: the bytes already had are read again and
  dropped, the rest continues the same stream (counted: a resume with `dropped` bytes), where
  containers/image gives up. The digest is still checked over exactly the bytes the caller got.
- At most MAX_RESUMES resumes per layer, on top of containers/image's progress rule: a probe is a
  diagnosis, a path that cuts a layer more than three times is its finding, to be shown failed rather than
  hidden behind more resumes; and every pull here is bounded in count and time.

The caller's streaming digest (labkit.clients.puller.pull_image's Hasher) runs over the bytes as they come
from each connection in turn: the layer is verified by its digest as it streams, resumed or not.
"""
from __future__ import annotations

import errno
import http.client
import random
import re
import time
from collections.abc import Callable
from typing import Any

from ...units import MiB

MAX_RESUMES = 3
MIN_PROGRESS = 1 * MiB           # containers/image's bodyReaderMinimumProgress
RETRY_AFTER_S = 60.0             # containers/image's bodyReaderMSSinceLastRetry, in seconds
PAUSE_S, JITTER_S = 1.0, 0.1     # containers/image's pause before reconnecting, and its jitter
CUTS = (ConnectionResetError, ConnectionAbortedError, http.client.IncompleteRead)
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class ShortBlob(http.client.IncompleteRead):
    """A layer's body that ended before its size and was not resumed: why, in words."""

    def __init__(self, message: str):
        super().__init__(b"")
        self.message = message

    def __str__(self) -> str:
        return self.message

    __repr__ = __str__


def parse_content_range(value: str | None) -> tuple[int, int, int]:
    """`bytes first-last/size` as (first, last, size; -1 for `*`); ValueError naming the header if not."""
    m = CONTENT_RANGE.match((value or "").strip())
    if not m:
        raise ValueError(f"Content-Range {value!r} is not 'bytes first-last/size'")
    first, last, size = m.groups()
    return int(first), int(last), -1 if size == "*" else int(size)


class ResumingBlob:
    """What a layer's opener returns: the first answer, and as `resp` a body that resumes on a cut.

    Looks like labkit.clients.registry_api.Opened to the reading loop (resp, sock, hops, http, tls,
    close()); `resp` looks like an http.client.HTTPResponse (status, chunked, getheader, readinto): the first
    answer's status and headers. `sock` is the connection being read: after a resume the loop's socket
    samples go on from the new connection (its counters start again: a resumed layer's counts are partial)."""

    def __init__(self, first: Any, reopen: Callable[[dict], Any], size: int, max_resumes: int = MAX_RESUMES,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random):
        self.first, self.current, self.reopen, self.size = first, first, reopen, size
        self.max_resumes, self._sleep, self._clock, self._jitter = max_resumes, sleep, clock, jitter
        self.offset = 0                  # bytes handed to the caller
        self.resumes: list[dict] = []
        self._skip = 0                   # bytes of a 200 (started over) still to drop
        self._last_at, self._last_offset = None, -1
        self.resp = self

    # the first answer, as the loop reads it
    @property
    def status(self) -> int:
        return self.first.resp.status

    @property
    def chunked(self) -> bool:
        return self.first.resp.chunked

    def getheader(self, name: str, default=None):
        return self.first.resp.getheader(name, default)

    @property
    def sock(self):
        return self.current.sock

    @property
    def hops(self) -> list:
        return self.first.hops

    @property
    def http(self) -> str:
        return self.first.http

    @property
    def tls(self) -> str:
        return self.first.tls

    @property
    def accepts_range(self) -> bool:
        return "bytes" in (self.getheader("Accept-Ranges") or "").lower()

    def close(self) -> None:
        self.current.close()

    def readinto(self, buf) -> int:
        """Up to len(buf) bytes of the blob, a cut resumed in between; 0 at its end."""
        view = memoryview(buf)
        while True:
            want = view[:min(len(view), self._skip)] if self._skip else view
            try:
                n = self.current.resp.readinto(want)
            except CUTS as exc:
                self._resume("reset" if isinstance(exc, OSError) else "short", exc)
                continue
            if not n:
                if self._skip or self.offset < self.size:
                    self._resume("short", None)
                    continue
                return 0
            if self._skip:
                self._skip -= n
                continue
            self.offset += n
            return n

    def _refusal(self) -> str:
        """Why this cut is not resumed ('' if it is)."""
        if not self.accepts_range:
            said = self.getheader("Accept-Ranges")
            return ("the server does not accept Range (its answer said "
                    + (f"Accept-Ranges: {said}" if said else "no Accept-Ranges: bytes") + "): not resumed")
        if len(self.resumes) >= self.max_resumes:
            return f"already resumed {len(self.resumes)} times, the most per layer here: not resumed again"
        if self._last_at is None:
            return ""
        progress, since = self.offset - self._last_offset, self._clock() - self._last_at
        if progress >= MIN_PROGRESS or since >= RETRY_AFTER_S:
            return ""
        return (f"only {progress} bytes in {since:.1f} s since the last resume at byte {self._last_offset} "
                f"(containers/image resumes after {MIN_PROGRESS} bytes or {RETRY_AFTER_S:g} s): not resumed")

    def _fail(self, cut: str, exc: BaseException | None, why: str) -> Exception:
        said = f"cut at byte {self.offset} of {self.size}" + (f" ({type(exc).__name__}: {exc})" if exc else
                                                               " (the body ended early)")
        if cut == "reset":
            return ConnectionResetError(errno.ECONNRESET, f"{said}; {why}")
        return ShortBlob(f"{said}; {why}")

    def _resume(self, cut: str, exc: BaseException | None) -> None:
        why = self._refusal()
        if why:
            raise self._fail(cut, exc, why) from None
        self.current.close()
        t0 = self._clock()
        self._sleep(PAUSE_S + JITTER_S * self._jitter())
        try:
            got = self.reopen({"Range": f"bytes={self.offset}-"})
        except (OSError, http.client.HTTPException) as again:
            raise self._fail(cut, exc, f"resuming at byte {self.offset} failed: {type(again).__name__}: {again}") from None
        status = got.resp.status
        host = got.hops[-1]["host"] if got.hops else ""
        why = ""
        if status == 206:
            try:
                first, last, total = parse_content_range(got.resp.getheader("Content-Range"))
                if first != self.offset or last + 1 != self.size or total not in (-1, self.size):
                    why = (f"the answer's Content-Range {got.resp.getheader('Content-Range')!r} does not continue "
                           f"the blob (asked bytes={self.offset}- of {self.size})")
            except ValueError as bad:
                why = str(bad)
        elif status != 200:
            why = f"HTTP {status}"
        if why:
            got.close()
            raise self._fail(cut, exc, f"resuming at byte {self.offset} from {host}: {why}: not resumed")
        self._skip = self.offset if status == 200 else 0
        self.current, self._last_at, self._last_offset = got, self._clock(), self.offset
        self.resumes.append({"offset": self.offset, "cut": cut, "status": status, "host": host,
                             "ms": round((self._last_at - t0) * 1e3, 1), "dropped": self._skip})


def resumes_text(resumes: list[dict]) -> str:
    """A layer's resumes in words: 'resumed 2x: at byte 1048576 (206 from h, 1003 ms), ...' ('' if none)."""
    if not resumes:
        return ""
    return f"resumed {len(resumes)}x: " + ", ".join(
        f"at byte {r['offset']} ({r['status']} from {r['host']}, {r['ms']:g} ms"
        + (f"; started over, {r['dropped']} bytes read again and dropped" if r["dropped"] else "") + ")"
        for r in resumes)
