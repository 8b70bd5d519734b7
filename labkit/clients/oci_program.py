"""What the program kinds that pull from an OCI registry share (skopeo, podman, the enroot-style curls).

Each speaks the OCI distribution API only (`apis`): a target without an image (sregistry's API) is refused
before anything runs. A pull's command line is made from `values`: pull_values' fields and

    image        host:port/repository:tag (no scheme: the clients take the registry as a host)
    base         the registry's URL, https when the path has TLS
    repository   tag
    layout       where the program puts the image: the pull's own directory
    certdir      a directory holding the lab's CA as ca.crt ('' over plain http): containers/image reads
                 every *.crt in --cert-dir / --src-cert-dir as a CA (pkg/tlsclientconfig/tlsclientconfig.go)

and what the program left is checked by digest (labkit.clients.oci_pulled.check_blobs) where its
`layout` keeps the blobs, under the pull's own directory (`blobs_dir`).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from ..records import Verify
from .kind import API, Target
from .oci_pulled import Layout, check_blobs, reference
from .program import Program, pull_values
from .registry_api import base_url

CA_NAME = "ca.crt"


def cert_options(values: dict[str, str], prefix: str = "") -> list[str]:
    """containers/image's TLS options (skopeo's with prefix "src-", podman's without): the lab's CA where the path
    has TLS, nothing for the system's CAs over https, no TLS check over plain http (else it insists on https)."""
    if values.get("certdir"):
        return [f"--{prefix}cert-dir", values["certdir"]]
    return [f"--{prefix}tls-verify=false"] if values["base"].startswith("http:") else []


class OciProgram(Program):
    apis: ClassVar[tuple[API, ...]] = ("oci",)
    layout: ClassVar[Layout] = "oci"

    def values(self, t: Target, url: str, workdir: Path) -> dict[str, str]:
        """pull_values and the image's fields; the lab's CA copied into the pull's directory as ca.crt."""
        v = pull_values(t, url, workdir)
        certdir = ""
        if v["cacert"]:
            d = workdir / "certs"
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(v["cacert"], d / CA_NAME)
            certdir = str(d)
        return {**v, "image": reference(t.host, t.port, t.oci), "base": base_url(t.host, t.port, t.trust),
                "repository": t.oci.repository, "tag": t.oci.tag, "certdir": certdir, "layout": str(workdir)}

    def blobs_dir(self, workdir: Path) -> Path:
        """Where the program's blobs are once it ended (default: its directory)."""
        return workdir

    def check(self, workdir: Path, t: Target, verify: Verify, exited_ok: bool, output: str = "") -> tuple[int, bool | None, str]:
        return check_blobs(t.oci, self.blobs_dir(workdir), self.layout, verify)
