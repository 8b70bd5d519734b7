"""Manifests and indexes in the Docker v2 and OCI media types; the platform's manifest chosen from an index.

    application/vnd.oci.image.manifest.v1+json                  an image: config + layers
    application/vnd.docker.distribution.manifest.v2+json        the same, Docker's name (schema 2)
    application/vnd.oci.image.index.v1+json                     an index: one manifest per platform
    application/vnd.docker.distribution.manifest.list.v2+json   the same, Docker's name (a manifest list)

The names are oras-py's (oras.defaults); the schema is the OCI image spec's (an index's `manifests`
each with a `platform` {os, architecture, variant}). Docker's schema 1 (signed manifests, retired
by distribution v3) is refused with a clear error. An index is resolved as containers/image does
(containers/image @df7e80d2d19872b61f352a8a182ec934dc0c2346 internal/manifest/oci_index.go
chooseInstance: the first entry whose platform matches): os and architecture equal, variant equal
when one is asked for.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import oras.defaults

from ...errors import LabkitError, SettingsError
from .blobs import Digest

OCI_MANIFEST = oras.defaults.default_manifest_media_type
OCI_INDEX = oras.defaults.default_index_media_type
DOCKER_MANIFEST = oras.defaults.docker_manifest_media_type
DOCKER_LIST = oras.defaults.docker_manifest_list_media_type
IMAGES, INDEXES = (OCI_MANIFEST, DOCKER_MANIFEST), (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join([*IMAGES, *INDEXES])
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws")
DEFAULT_PLATFORM = "linux/amd64"


class ManifestError(LabkitError, ValueError):
    """A manifest this client cannot read (not JSON, an unknown media type, fields missing)."""


class PlatformError(ManifestError):
    """An index with no manifest for the platform asked for: the error lists those it has."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: str = ""          # os/architecture[/variant], for an index's entries

    @classmethod
    def of(cls, d: dict, where: str) -> "Descriptor":
        if not isinstance(d, dict) or "digest" not in d or "size" not in d:
            raise ManifestError(f"{where}: a descriptor without digest and size: {str(d)[:120]}")
        try:
            Digest.parse(d["digest"])
        except SettingsError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        if not isinstance(d["size"], int) or d["size"] < 0:
            raise ManifestError(f"{where}: size {d['size']!r} is not a byte count")
        p = d.get("platform") or {}
        plat = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
        return cls(str(d.get("mediaType", "")), d["digest"], d["size"], plat)


@dataclass
class Image:
    """An image manifest read: its config, its layers, and how it was reached (the index, if any)."""
    media_type: str
    digest: str
    config: Descriptor
    layers: list[Descriptor]
    index: str = ""             # the index's digest when the image was chosen from one
    platform: str = ""
    platforms: list[str] = field(default_factory=list)   # every platform the index offered

    @property
    def size(self) -> int:
        return sum(d.size for d in self.layers)


def media_type(body: bytes, content_type: str | None, where: str) -> tuple[str, dict]:
    """The manifest's JSON and its media type (the Content-Type, else the document's own mediaType)."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ManifestError(f"{where}: not a JSON manifest: {body[:120]!r}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: a manifest is a JSON object, got {type(doc).__name__}")
    ct = (content_type or "").split(";")[0].strip()
    kind = ct if ct in (*IMAGES, *INDEXES) else str(doc.get("mediaType") or "")
    if not kind and "manifests" in doc:
        kind = OCI_INDEX                 # the OCI spec lets mediaType be left out
    elif not kind and "layers" in doc:
        kind = OCI_MANIFEST
    if kind in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestError(f"{where}: a Docker schema 1 manifest; this client reads schema 2 and OCI only")
    if kind not in (*IMAGES, *INDEXES):
        raise ManifestError(f"{where}: media type {kind or ct or 'none'!r} is not an image manifest or index "
                            f"({', '.join([*IMAGES, *INDEXES])})")
    return kind, doc


def read_image(doc: dict, kind: str, digest: str, where: str) -> Image:
    if not isinstance(doc.get("layers"), list) or "config" not in doc:
        raise ManifestError(f"{where}: an image manifest without config and layers")
    layers = [Descriptor.of(d, f"{where} layer {i}") for i, d in enumerate(doc["layers"])]
    return Image(kind, digest, Descriptor.of(doc["config"], f"{where} config"), layers)


def parse_platform(text: str) -> tuple[str, str, str]:
    """'linux/amd64' or 'linux/arm64/v8' -> (os, architecture, variant)."""
    parts = (text or "").split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise SettingsError(f"--platform {text!r}: give os/architecture[/variant], e.g. linux/amd64 or linux/arm/v7")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def select_platform(doc: dict, platform: str, where: str) -> tuple[Descriptor, list[str]]:
    """The index's entry for `platform` and every platform it offers; PlatformError naming them if none fits."""
    want_os, want_arch, want_var = parse_platform(platform)
    entries = doc.get("manifests")
    if not isinstance(entries, list) or not entries:
        raise ManifestError(f"{where}: an index without manifests")
    descs = [Descriptor.of(d, f"{where} manifests[{i}]") for i, d in enumerate(entries)]
    offered = [d.platform or "(no platform)" for d in descs]
    for d in descs:
        os_, _, rest = d.platform.partition("/")
        arch, _, var = rest.partition("/")
        if os_ == want_os and arch == want_arch and (not want_var or var == want_var) \
                and d.media_type in ("", *IMAGES):
            return d, offered
    raise PlatformError(f"{where}: no manifest for {platform} in the index; it has {', '.join(offered)} "
                        "(give --platform)")
