"""A file's sha256 as its bytes arrived at a destination that does not keep them (the lab's shared file
system with `client.fs_keep` off, labkit.lab.conditions.sharedfs): the file system streams each file's
writes into a sha256 and answers it as an extended attribute, so a client's file is verified without
its bytes being stored or read back.

    streamed(path)      -> Streamed(sha256, bytes, whole) or None (the file system keeps the bytes: hash the file)

`whole` is False when the writes did not arrive as one stream (a gap never filled, a rewrite of bytes
already hashed): the digest then covers only the first `bytes` and cannot verify the file.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

XATTR = "user.servelab.sha256"


@dataclass(frozen=True)
class Streamed:
    sha256: str
    bytes: int
    whole: bool

    def encode(self) -> bytes:
        return f"{self.sha256} {self.bytes} {'whole' if self.whole else 'broken'}".encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Streamed":
        hexd, n, whole = raw.decode().split()
        return cls(hexd, int(n), whole == "whole")

    def matches(self, sha256: str, size: int) -> bool:
        return self.whole and self.bytes == size and self.sha256 == sha256


def streamed(path: Path) -> Streamed | None:
    """The streamed digest of `path`, or None where its file system keeps bytes (no such attribute)."""
    try:
        return Streamed.decode(os.getxattr(path, XATTR))
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            return None
        raise
