"""Where a pull may go: the manifest's image URL, redirects, and which CA file is trusted (pure).

    image_url("http://127.0.0.1/containers/1/download/x", "http://reg:8080", Follow())  -> (the URL on reg:8080, a note)
    next_hop("http://reg:8080/d", 302, "http://minio:9000/b?sig", start, Follow(other_hosts=True), hops=1)
    ca_file(cacert=None, env=os.environ)  -> (path or None, where it came from)

A registry is asked at the host the user gave. sregistry writes the image URL from its DOMAIN_NAME
setting (http://127.0.0.1 by default), so an image URL naming another host is by default fetched
from the given host (its path and query), and said; with `Follow(other_hosts=True)` (`--follow-hosts`)
it is fetched where it points. Redirects (301, 302, 303, 307, 308: later sregistry versions answer a
download with one to a MinIO presigned URL) are followed up to `Follow.max_hops`; one to another
host name only with `other_hosts` (a presigned URL cannot be moved to another host: its signature names
it); one to the same host on another scheme or port (http to https) is followed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..errors import HttpStatusError

REDIRECTS = (301, 302, 303, 307, 308)
MAX_HOPS = 5              # curl's and requests' defaults are larger (50, 30); a registry needs one or two
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")    # requests' variable first, as requests reads it


class RedirectRefused(HttpStatusError):
    """A redirect the policy does not follow (to another host without --follow-hosts, or one too many)."""


@dataclass(frozen=True)
class Follow:
    """How far a pull may go from the host it was given: other hosts (`--follow-hosts`) and redirect hops."""
    other_hosts: bool = False
    max_hops: int = MAX_HOPS

    def __post_init__(self):
        if not 0 <= self.max_hops <= 20:
            raise ValueError(f"redirects: max_hops {self.max_hops} is outside 0..20")


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port made explicit."""
    u = urlsplit(url)
    return u.scheme, (u.hostname or "").lower(), u.port or (443 if u.scheme == "https" else 80)


def netloc(url: str) -> str:
    """host:port of a URL, as a hop is reported."""
    _, host, port = origin(url)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def image_url(image: str, base: str, follow: Follow) -> tuple[str, str]:
    """The URL to pull the manifest's `image` from, and a note ('' when it is the given host's own)."""
    u = urlsplit(image)
    if image and not u.scheme and not u.netloc:               # a relative URL: on the given host
        image = urljoin(base + "/", image)
        u = urlsplit(image)
    if u.scheme not in ("http", "https") or not u.hostname or not u.path:
        raise ValueError(f"the manifest names no http(s) image URL ({image!r})")
    if origin(image) == origin(base):
        return image, ""
    if follow.other_hosts:
        return image, (f"the manifest's image URL names {u.scheme}://{u.netloc}, another host than {base}: "
                       "fetched from there (--follow-hosts)")
    b = urlsplit(base)
    return (urlunsplit((b.scheme, b.netloc, u.path, u.query, "")),
            f"the manifest's image URL names {u.scheme}://{u.netloc} (sregistry builds it from DOMAIN_NAME); "
            f"the probe fetches its path from {base}, the host it was given (--follow-hosts: fetch it from there)")


def next_hop(url: str, status: int, location: str | None, start: str, follow: Follow, hops: int) -> str:
    """The URL a redirect from `url` leads to, if the policy follows it; else RedirectRefused naming why.
    `start`: the URL the pull began at (its host is the allowed one); `hops`: redirects followed so far."""
    if not location:
        raise RedirectRefused(status, f"HTTP {status} from {netloc(url)} without a Location header")
    target = urljoin(url, location)
    if urlsplit(target).scheme not in ("http", "https"):
        raise RedirectRefused(status, f"HTTP {status} from {netloc(url)} to {target!r}: not an http(s) URL")
    if hops >= follow.max_hops:
        raise RedirectRefused(status, f"HTTP {status} from {netloc(url)}: more than {follow.max_hops} redirects "
                                      f"(the last to {target})")
    if origin(target)[1] != origin(start)[1] and not follow.other_hosts:
        raise RedirectRefused(status, f"HTTP {status} from {netloc(url)} to another host, {netloc(target)}: "
                                      "not followed (give --follow-hosts to follow it)")
    return target


def ca_file(cacert: str | None, env: Mapping[str, str]) -> tuple[str | None, str]:
    """The CA file an https client trusts, and where that choice came from: `--cacert`, else
    REQUESTS_CA_BUNDLE, else SSL_CERT_FILE (OpenSSL reads that one itself too), else the system's (None)."""
    if cacert:
        return cacert, "--cacert"
    for var in CA_VARIABLES:
        if env.get(var):
            return env[var], var
    return None, "the system's CAs"
