"""Digests: `algorithm:hex` parsed, and a blob's bytes checked against theirs as they stream.

The spec (opencontainers/distribution-spec @967efdc079b91785ad18c77cc4f8991a47feefbf spec.md, "Pulling
blobs") has the client verify a blob against its digest; the digest grammar is the image spec's
(`algorithm:encoded`, sha256 and sha512 registered). A mismatch is a DigestMismatch naming both.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ...errors import LabkitError, SettingsError

ALGORITHMS = {"sha256": 64, "sha512": 128}
DIGEST = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


class DigestMismatch(LabkitError, ValueError):
    """A blob or manifest whose bytes do not hash to the digest it was asked for."""


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> "Digest":
        m = DIGEST.match(text or "")
        if not m:
            raise SettingsError(f"digest {text!r}: not algorithm:hex (e.g. sha256:<64 hex digits>)")
        algo, hexpart = m.groups()
        if algo not in ALGORITHMS:
            raise SettingsError(f"digest {text!r}: algorithm {algo!r} is not one of {', '.join(ALGORITHMS)}")
        if len(hexpart) != ALGORITHMS[algo] or not re.fullmatch(r"[0-9a-f]+", hexpart):
            raise SettingsError(f"digest {text!r}: {algo} wants {ALGORITHMS[algo]} lower-case hex digits")
        return cls(algo, hexpart)

    @property
    def text(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"

    def hasher(self):
        return hashlib.new(self.algorithm)

    def check(self, data: bytes, what: str) -> None:
        """Whole bytes (a manifest, a config) against the digest; DigestMismatch naming `what` if not."""
        got = hashlib.new(self.algorithm, data).hexdigest()
        if got != self.hex:
            raise DigestMismatch(f"{what}: the bytes hash to {self.algorithm}:{got[:16]}..., "
                                 f"not {self.short}... as asked ({len(data)} bytes)")
