"""A local OCI image layout built in Python (no network): layers of random bytes in tar files, a config,
a manifest per platform and, if asked, an index over them.

The layout is the OCI image spec's (oci-layout, index.json, blobs/sha256/<hex>); `skopeo copy oci:DIR:TAG
docker://...` pushes it to a registry, tests/integration/foreign_oci.py serves it as one.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Layout:
    root: Path
    tag: str
    manifests: dict[str, str] = field(default_factory=dict)    # platform -> manifest digest
    layers: dict[str, list[tuple[str, int]]] = field(default_factory=dict)   # platform -> [(digest, size)]
    top: str = ""                                               # what the tag names (manifest or index)

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.split(":")[1]

    def size(self, platform: str = "linux/amd64") -> int:
        return sum(n for _, n in self.layers[platform])


def _put(root: Path, data: bytes) -> tuple[str, int]:
    hexd = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / hexd).write_bytes(data)
    return f"sha256:{hexd}", len(data)


def _layer(size: int) -> bytes:
    """A tar holding one file of `size` random bytes (a real layer, as skopeo and registries expect);
    gzipped, so that `skopeo copy` pushes it as it is (it compresses an uncompressed layer for docker://)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data.bin")
        info.size, info.mtime = size, 0
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def build(root: Path, layer_sizes: list[int], platforms: tuple[str, ...] = ("linux/amd64",),
          tag: str = "1", index: bool | None = None) -> Layout:
    """The layout at `root`: per platform its own layers (random, `layer_sizes` of data each) and config;
    the tag names the manifest, or an index when there are several platforms (or `index`)."""
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    out = Layout(root, tag)
    descs = []
    for plat in platforms:
        os_, arch, *var = plat.split("/")
        tars = [_layer(n) for n in layer_sizes]
        layers = [_put(root, gzip.compress(t, mtime=0)) for t in tars]
        diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
        config = json.dumps({"architecture": arch, "os": os_, **({"variant": var[0]} if var else {}),
                             "rootfs": {"type": "layers", "diff_ids": diff_ids},
                             "config": {}}).encode()
        cfg = _put(root, config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                               "config": {"mediaType": CONFIG, "digest": cfg[0], "size": cfg[1]},
                               "layers": [{"mediaType": LAYER, "digest": d, "size": n} for d, n in layers]}).encode()
        m = _put(root, manifest)
        out.manifests[plat], out.layers[plat] = m[0], layers
        descs.append({"mediaType": MANIFEST, "digest": m[0], "size": m[1],
                      "platform": {"os": os_, "architecture": arch, **({"variant": var[0]} if var else {})}})
    if index if index is not None else len(platforms) > 1:
        idx = _put(root, json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": descs}).encode())
        top = {"mediaType": INDEX, "digest": idx[0], "size": idx[1]}
    else:
        top = {k: descs[0][k] for k in ("mediaType", "digest", "size")}
    out.top = top["digest"]
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**top, "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return out
