"""The OCI image the lab pushes into an OCI registry: built in Python as a local OCI image layout.

    img = ensure_oci_layout(images_dir / "oci", image_size=64 * MiB, layers=3)
    img.layout, img.ref, img.manifest_digest, img.layer_digests

Layer sizes come from the lab's image size (`layer_sizes`): with n layers, n - 1 small ones (each a 16th
of the image, at least 4 KiB) and one large last layer with the rest, standing for a SIF (what
`apptainer push oras://` stores as one blob). Each layer is a gzip'd tar holding one file of
deterministic pseudo-random bytes (incompressible, as a SIF's squashfs is), gzip'd so that `skopeo copy`
to a registry keeps every digest (containers/image recompresses only uncompressed layers). Same size and
layer count: the same bytes and digests on every machine and run. The layout (image-spec v1.1 image-layout:
`oci-layout`, `index.json`, `blobs/sha256/...`) is written once and reused.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import SettingsError
from ..units import KiB, format_size

REPOSITORY, TAG = "servelab/image", "latest"
OCI_ROOT = "distribution"      # an OCI registry's filesystem driver root, under the VM's images directory
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MIN_LAYER = 4 * KiB


@dataclass(frozen=True)
class OciImage:
    """An image in a local OCI layout: where it is, its tag, and the digests a pull must end with."""
    layout: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    layer_sizes: tuple[int, ...]         # the blobs' sizes as pushed (gzip'd)
    repository: str = REPOSITORY

    @property
    def ref(self) -> str:
        """The image's name in a registry: `<repository>:<tag>`."""
        return f"{self.repository}:{self.tag}"

    @property
    def largest(self) -> tuple[str, int]:
        """The large layer (the SIF's stand-in): its digest and size."""
        i = max(range(len(self.layer_sizes)), key=self.layer_sizes.__getitem__)
        return self.layer_digests[i], self.layer_sizes[i]

    @property
    def size(self) -> int:
        return sum(self.layer_sizes)


def blob_files(root: Path) -> list[Path]:
    """The blob data files an OCI registry keeps under its filesystem driver `root` (distribution's layout:
    docker/registry/v2/blobs/<algorithm>/<2 hex>/<hex>/data); [] where there is none."""
    return sorted(Path(root).glob("docker/registry/v2/blobs/*/*/*/data"))


def layer_sizes(image_size: int, layers: int) -> list[int]:
    """The layers' content sizes: n - 1 small (image / 16 each, at least 4 KiB), the last one the rest."""
    if layers < 1:
        raise SettingsError(f"registry.layers {layers}: at least 1")
    small = max(image_size // 16, MIN_LAYER)
    big = image_size - small * (layers - 1)
    if big < MIN_LAYER:
        raise SettingsError(f"image size {format_size(image_size)} is too small for {layers} layers "
                            f"({layers - 1} of {format_size(small)} and a large one): use fewer layers or a larger image")
    return [small] * (layers - 1) + [big]


def _content(index: int, size: int) -> bytes:
    return random.Random(f"servelab-oci-layer-{index}-{size}").randbytes(size)


def layer_blob(index: int, size: int) -> tuple[bytes, str]:
    """(gzip'd tar, the digest of the tar uncompressed: the config's diff_id) for layer `index`."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        name = "image.sif" if index < 0 else f"layer{index}/data"
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, 0, 0o644
        tar.addfile(info, io.BytesIO(_content(index, size)))
    raw = tar_bytes.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0, filename="") as gz:
        gz.write(raw)
    return out.getvalue(), "sha256:" + hashlib.sha256(raw).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build_blobs(image_size: int, layers: int) -> tuple[dict[str, bytes], dict]:
    """Every blob of the image by digest, and its manifest (a dict); nothing written."""
    sizes = layer_sizes(image_size, layers)
    blobs, descs, diff_ids = {}, [], []
    for i, size in enumerate(sizes):
        blob, diff_id = layer_blob(-1 if i == len(sizes) - 1 else i, size)
        d = _descriptor(LAYER, blob)
        blobs[d["digest"]] = blob
        descs.append(d)
        diff_ids.append(diff_id)
    config = _canonical({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    cdesc = _descriptor(CONFIG, config)
    blobs[cdesc["digest"]] = config
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": cdesc, "layers": descs}
    return blobs, manifest


def ensure_oci_layout(root: Path, image_size: int, layers: int, tag: str = TAG) -> OciImage:
    """The image as an OCI layout under `root` (one directory per size and layer count), written if absent."""
    layout = Path(root) / f"{image_size}-{layers}"
    index_file = layout / "index.json"
    if not index_file.is_file():
        blobs, manifest = build_blobs(image_size, layers)
        mbytes = _canonical(manifest)
        mdesc = {**_descriptor(MANIFEST, mbytes), "annotations": {"org.opencontainers.image.ref.name": tag}}
        blob_dir = layout / "blobs" / "sha256"
        blob_dir.mkdir(parents=True, exist_ok=True)
        for digest, data in {**blobs, mdesc["digest"]: mbytes}.items():
            (blob_dir / digest.split(":", 1)[1]).write_bytes(data)
        (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        tmp = layout / "index.json.tmp"    # written last, atomically: its presence means the layout is whole
        tmp.write_text(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                   "manifests": [mdesc]}))
        tmp.rename(index_file)
    return read_layout(layout, tag)


def read_layout(layout: Path, tag: str = TAG) -> OciImage:
    """The image tagged `tag` in an OCI layout (one the lab wrote, or one a client pulled into)."""
    index = json.loads((Path(layout) / "index.json").read_text())
    mdesc = next((m for m in index["manifests"]
                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag), None)
    if mdesc is None:
        raise SettingsError(f"{layout}: no manifest tagged {tag!r} in index.json")
    digest = mdesc["digest"]
    manifest = json.loads((Path(layout) / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes())
    return OciImage(Path(layout), tag, digest, manifest["config"]["digest"],
                    tuple(d["digest"] for d in manifest["layers"]), tuple(d["size"] for d in manifest["layers"]))
