"""Authentication as registries ask for it: the WWW-Authenticate challenge of a 401, then a Bearer
token from the realm it names or Basic credentials.

Docker's token specification (distribution/distribution @0d6b721dc3ceacb5d678c25b718b2f40a507c2d8
docs/content/spec/auth/token.md): a 401 carries
    Www-Authenticate: Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"
the client GETs `realm?service=...&scope=...` (with Basic credentials when it has some, else anonymously),
reads `token` (or its OAuth 2.0 name `access_token`) from the JSON answer, and retries with
`Authorization: Bearer <token>`. A registry with htpasswd auth (distribution's `auth: htpasswd:`,
cmd/registry/config-example.yml @v2.8.2) answers `Basic realm="..."` instead.

Credentials come from `--user USER:PASSWORD`, else the first of $REGISTRY_AUTH_FILE (podman's and
skopeo's), $DOCKER_CONFIG/config.json, ~/.docker/config.json that has an `auths` entry for the
registry's host:port (or its host alone): `{"auths": {"host:port": {"auth": base64("user:password")}}}`.
Credential helpers (credsStore) are not run: the probe names the file and says so.
The challenge's key-values are read by oras-py (oras.auth.utils.parse_auth_header), Basic is encoded by
it (oras.auth.utils.get_basic_auth).
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from oras.auth.utils import get_basic_auth, parse_auth_header

from ...errors import HttpStatusError, SettingsError


class AuthError(HttpStatusError):
    """The registry refused us, or could not say how to be let in: the error names the step (a failed
    pull of kind "http", labkit.clients.failures)."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(status, message)


@dataclass(frozen=True)
class Challenge:
    scheme: str                 # "bearer" or "basic"
    realm: str = ""
    service: str = ""
    scope: str = ""

    def token_url(self, scope: str | None = None) -> str:
        """The realm with the service and scope the challenge named (or `scope` given: the repository's pull)."""
        params = {k: v for k, v in (("service", self.service), ("scope", scope or self.scope)) if v}
        return self.realm + ("&" if "?" in self.realm else "?") + urlencode(params) if params else self.realm


def parse_challenge(header: str | None, url: str) -> Challenge:
    """A 401's WWW-Authenticate header as a Challenge; AuthError when it is missing or unknown."""
    if not header or not header.strip():
        raise AuthError(f"{url}: HTTP 401 without a WWW-Authenticate challenge: the registry does not say "
                        "how to authenticate")
    scheme = header.strip().split(None, 1)[0].lower()
    if scheme not in ("bearer", "basic"):
        raise AuthError(f"{url}: HTTP 401 asks for {header.split()[0]!r} authentication; this client speaks "
                        "Bearer (a token service) and Basic")
    h = parse_auth_header(header)
    if scheme == "bearer":
        if not h.realm:
            raise AuthError(f"{url}: Bearer challenge without a realm: {header!r}")
        if urlsplit(h.realm).scheme not in ("http", "https"):
            raise AuthError(f"{url}: Bearer realm {h.realm!r} is not an http(s) URL")
    return Challenge(scheme, h.realm or "", h.service or "", h.scope or "")


def read_token(body: bytes, url: str) -> str:
    """The token from a token endpoint's JSON answer (`token`, or `access_token`)."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AuthError(f"token endpoint {url}: the answer is not JSON: {body[:120]!r}") from None
    token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
    if not token or not isinstance(token, str):
        raise AuthError(f"token endpoint {url}: the answer has neither `token` nor `access_token`")
    return token


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str                 # --user, or the file they came from

    @property
    def basic(self) -> str:
        """The Authorization header's value for Basic."""
        return "Basic " + get_basic_auth(self.username, self.password)

    @classmethod
    def of_user(cls, user: str) -> "Credentials":
        name, sep, password = user.partition(":")
        if not sep or not name:
            raise SettingsError("--user: give USER:PASSWORD")
        return cls(name, password, "--user")

    @classmethod
    def find(cls, netloc: str, user: str | None = None, env: Mapping[str, str] | None = None,
             home: Path | None = None) -> "Credentials | None":
        """--user, else the first credentials file with an entry for `netloc` (host:port) or its host."""
        if user:
            return cls.of_user(user)
        env = os.environ if env is None else env
        for path in auth_files(env, home):
            found = _from_file(path, netloc)
            if found:
                return found
        return None


def auth_files(env: Mapping[str, str], home: Path | None = None) -> list[Path]:
    """Where credentials are looked for, in order (those that exist)."""
    home = home or Path.home()
    out = [Path(env["REGISTRY_AUTH_FILE"])] if env.get("REGISTRY_AUTH_FILE") else []
    if env.get("DOCKER_CONFIG"):
        out.append(Path(env["DOCKER_CONFIG"]) / "config.json")
    out.append(home / ".docker" / "config.json")
    return [p for p in out if p.is_file()]


def _from_file(path: Path, netloc: str) -> Credentials | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(f"credentials file {path}: not readable JSON ({exc})") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    host = netloc.rsplit(":", 1)[0]
    for key in (netloc, host, f"https://{netloc}", f"http://{netloc}", f"https://{host}"):
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                name, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise SettingsError(f"credentials file {path}: auths[{key!r}].auth is not base64 of user:password") from None
            if not sep:
                raise SettingsError(f"credentials file {path}: auths[{key!r}].auth decodes without a ':'")
            return Credentials(name, password, str(path))
    return None
