"""Test images: random bytes of a chosen size, their sha256 kept in a catalog the registry app serves."""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..units import GiB, MiB

CATALOG = "catalog.json"
_BLOCK = 4 * MiB


@dataclass(frozen=True)
class Image:
    id: int
    collection: str
    name: str
    tag: str
    file: str
    size: int
    sha256: str
    secret: str
    add_date: str

    @property
    def uri(self) -> str:
        return f"{self.collection}/{self.name}:{self.tag}"


def load_catalog(images_dir: Path) -> list[Image]:
    path = Path(images_dir) / CATALOG
    if not path.exists():
        return []
    return [Image(**e) for e in json.loads(path.read_text())["images"]]


def _save_catalog(images_dir: Path, images: list[Image]) -> None:
    tmp = Path(images_dir) / (CATALOG + ".tmp")
    tmp.write_text(json.dumps({"images": [asdict(i) for i in images]}, indent=1))
    tmp.replace(Path(images_dir) / CATALOG)


def ensure_image(images_dir: Path, size: int, collection: str = "library", name: str = "servelab",
                 tag: str | None = None, progress=None) -> Image:
    """The image of this size (made once, then reused while its file is intact)."""
    if size < 1 or size > 64 * GiB:
        raise ValueError(f"image size {size} bytes is outside 1 B .. 64 GiB")
    tag = tag or f"{size}b"
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(images_dir)
    for img in catalog:
        if (img.collection, img.name, img.tag) == (collection, name, tag):
            f = images_dir / img.file
            if f.exists() and f.stat().st_size == img.size == size:
                return img
    catalog = [i for i in catalog if (i.collection, i.name, i.tag) != (collection, name, tag)]
    fname = f"{collection}-{name}-{tag}.sif"
    digest = hashlib.sha256()
    tmp = images_dir / (fname + ".part")
    with open(tmp, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(_BLOCK, left))
            fh.write(block)
            digest.update(block)
            left -= len(block)
            if progress:
                progress(len(block))
    tmp.replace(images_dir / fname)
    img = Image(id=max((i.id for i in catalog), default=0) + 1, collection=collection, name=name,
                tag=tag, file=fname, size=size, sha256=digest.hexdigest(),
                secret=secrets.token_hex(8), add_date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _save_catalog(images_dir, [*catalog, img])
    return img


def install_image(img: Image, src_dir: Path, dst_dir: Path) -> Path:
    """Copy one image from the image cache to another directory (a lab's disk), with a catalog of it alone."""
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / img.file
    shutil.copyfile(Path(src_dir) / img.file, dst)
    _save_catalog(dst_dir, [img])
    return dst
