"""An image reference as the probe takes it: `http[s]://host[:port]/repo/name[:tag|@digest]`.

The repository name and the tag follow the grammar of the OCI distribution spec
(opencontainers/distribution-spec @967efdc079b91785ad18c77cc4f8991a47feefbf spec.md, lines 151 and 160):
    name  [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*
    tag   [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
The path after the host is split by oras-py's reference parser (oras.container.Container); the scheme
is the user's (the probe never guesses https from http), the tag `latest` when none is given, as
oras and docker do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import oras.container

from ...errors import SettingsError
from .blobs import Digest

NAME = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
FORM = "http[s]://host[:port]/repo/name:tag (or ...@sha256:<64 hex>)"


@dataclass(frozen=True)
class Reference:
    scheme: str
    host: str
    port: int
    repository: str
    tag: str
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Reference":
        """`text` checked whole; a SettingsError names the part that is wrong and the form expected."""
        u = urlsplit(text)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise SettingsError(f"{text!r}: give the image as {FORM}")
        if u.query or u.fragment:
            raise SettingsError(f"{text!r}: no query or fragment in an image reference ({FORM})")
        try:
            port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise SettingsError(f"{text!r}: the port is not a number 1..65535") from None
        path = u.path.strip("/")
        if not path:
            raise SettingsError(f"{text!r}: no repository after the host ({FORM})")
        if path.startswith("v2/"):
            raise SettingsError(f"{text!r}: give the repository, not the API path (the probe asks /v2/... itself)")
        try:
            c = oras.container.Container(path, registry=f"{u.hostname}:{port}")
        except ValueError as exc:
            raise SettingsError(f"{text!r}: {exc}") from None
        repo = f"{c.namespace}/{c.repository}" if c.namespace else c.repository
        if not NAME.match(repo):
            raise SettingsError(f"{text!r}: repository {repo!r} is not a valid name (lower case letters, digits, "
                                "separators . _ __ -, components split by /)")
        if not TAG.match(c.tag):
            raise SettingsError(f"{text!r}: tag {c.tag!r} is not valid ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})")
        try:
            digest = Digest.parse(c.digest).text if c.digest else None
        except SettingsError as exc:
            raise SettingsError(f"{text!r}: {exc}") from None
        return cls(u.scheme, u.hostname, port, repo, c.tag, digest)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ref(self) -> str:
        """What the manifest is asked for by: the digest when one is given, else the tag."""
        return self.digest or self.tag

    def url(self, kind: str, ref: str) -> str:
        """The URL of a manifest or blob: /v2/<name>/<kind>s/<ref> (end-3 and end-2 in the spec)."""
        return f"{self.base}/v2/{self.repository}/{kind}s/{ref}"

    def __str__(self) -> str:
        return f"{self.base}/{self.repository}" + (f"@{self.digest}" if self.digest else f":{self.tag}")
