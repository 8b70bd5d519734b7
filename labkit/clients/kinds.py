"""The client kinds by the name `client.kind` gives: the one table every choice of a kind reads.

Adding a kind is one module (a ClientKind subclass, labkit.clients.kind) and one row here, its name
also in labkit.config.settings.CLIENT_KINDS (settings validate names without importing the clients;
a unit test holds the two equal).
"""
from __future__ import annotations

from ..config.settings import ClientSettings
from .command import Command
from .curl import Curl
from .curl_ranged import CurlRanged
from .enroot_style import EnrootStyle
from .kind import API, ClientKind
from .oci_own import OciOwn
from .oras_style import OrasStyle
from .own import Own
from .podman import Podman
from .singularity26 import Singularity26
from .skopeo import Skopeo
from .sregistry_cli import SregistryCli

KINDS: dict[str, type[ClientKind]] = {k.name: k for k in (Own, Curl, SregistryCli, Singularity26, Command, CurlRanged,
                                                         OciOwn, Skopeo, Podman, OrasStyle, EnrootStyle)}


def client_kind(settings: ClientSettings) -> ClientKind:
    """The kind `settings.kind` names, built from the client's settings."""
    return KINDS[settings.kind](settings)


OWN_BY_API: dict[str, type[ClientKind]] = {api: k for k in (Own, OciOwn) for api in k.apis}   # labkit's own, by API


def own_client(api: API = "sregistry") -> ClientKind:
    """labkit's own verifying client for the registry's API (sregistry's, or OCI's /v2/), discarding what
    it pulls: the client at every other vantage point."""
    return OWN_BY_API[api]()


OWN = Own.name             # the kind a PullRun names when labkit's own client pulled
