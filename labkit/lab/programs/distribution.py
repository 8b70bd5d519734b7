"""An OCI registry in the registry container (settings.registry.kind "distribution") and nginx in front of it.

    DistributionRegistry  Debian's docker-registry 2.8 (distribution/distribution v2.8.2), `serve config.yml`:
                          the filesystem driver's root on the VM's storage (where sregistry's images are),
                          listening in the registry container's namespace; ready when GET /v2/ answers 200;
                          stopped by its pid (SIGTERM), restarted to change settings (it reads config.yml at start)
    OciFront              nginx proxying /v2/ to it (labkit/config/templates/nginx-oci-server.conf.j2);
                          otherwise the path's nginx (TLS with the lab's CA, reloaded with SIGHUP)

Once it runs, the lab stocks it (`stock`): the OCI image built as a local layout (labkit.lab.oci_image) is pushed
with `skopeo copy oci:... docker://...` from inside the registry container's namespace to its own address: no
network beyond the lab. Its reference and digests are then the registry's (`image`), and a health check asks
for the manifest at every vantage point (`fetch_manifest`: GET /v2/<name>/manifests/<tag>, its digest checked).
Debian's package ships a systemd unit; the lab never starts it (scripts/setup.sh blocks service starts).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

from ...config.render import OCI_FRONT, RegistryPaths, render_registry_config
from ...config.settings import LabSettings
from ...errors import HttpStatusError, ServiceError
from ...in_netns import exec_prefix
from ...path import ServiceSpec
from ...units import format_size
from ...clients.registry_api import Trust, base_url, get
from ..host.tools import tool
from ..oci_image import MANIFEST, OCI_ROOT, OciImage, blob_files, ensure_oci_layout, read_layout
from .base import Service, Site
from .nginx import Nginx

ACCEPT = {"Accept": MANIFEST}     # distribution 2.8 answers an OCI manifest only to a client that accepts it


class DistributionRegistry(Service):
    def __init__(self, site: Site, spec: ServiceSpec, settings: LabSettings):
        super().__init__(site, spec, settings)
        self.config = self.file(".yml")
        self.image: OciImage | None = None

    @property
    def root(self) -> Path:
        """The filesystem driver's rootdirectory: on the VM's storage as it is now (a live change to
        storage.disk moves it onto the new disk)."""
        return self.site.images_dir.resolve() / OCI_ROOT

    def render(self, s: LabSettings) -> str:
        return render_registry_config(s, RegistryPaths(f"{self.ready_at[0]}:{self.ready_at[1]}", str(self.root)))

    def argv(self) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.render(self.settings))
        return [tool("docker-registry"), "serve", str(self.config)]

    @property
    def url(self) -> str:
        return f"http://{self.ready_at[0]}:{self.ready_at[1]}"

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Listening, and GET /v2/ answered 200 (the API's version check: no auth in the lab)."""
        super().wait_ready(timeout)
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                status, body = get(self.ns, f"{self.url}/v2/", timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status} {body[:200]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise ServiceError(f"{self.name}: GET /v2/ did not answer 200 within {timeout:.0f}s ({last}):\n"
                           f"{self.log_since_start()}")

    def start(self, *args, **kw) -> None:
        super().start(*args, **kw)
        if self.image is not None and not self.holds(self.image):   # restarted on another disk: stocked again
            self.wait_ready()
            self.push(self.image)

    def holds(self, img: OciImage) -> bool:
        """Whether every blob of `img` is under the driver's root (a new disk starts empty)."""
        have = {p.parent.name for p in blob_files(self.root)}
        return all(d.split(":", 1)[1] in have for d in (*img.layer_digests, img.config_digest))

    def change(self, s: LabSettings) -> str:
        self.settings = s
        self.restart()
        return f"{self.name}: restarted with the new config.yml"

    # --- its image ------------------------------------------------------------------
    def stock(self, image_size: int, layouts: Path, push: bool = True) -> str:
        """The lab's OCI image (its layout under `layouts`, written once) pushed into this registry with skopeo
        from inside its namespace (with `push` False: only known, e.g. by a lab attached to a running one)."""
        img = ensure_oci_layout(layouts, image_size, self.settings.registry.layers)
        if push:
            self.push(img)
        self.image = img
        self.fetch_manifest(self.ns, *self.ready_at, timeout=10)
        sizes = ", ".join(format_size(n) for n in img.layer_sizes)
        return (f"{self.name}: {'pushed' if push else 'serves'} {img.ref} ({len(img.layer_sizes)} layers: "
                f"{sizes}; manifest {img.manifest_digest[:19]})")

    def push(self, img: OciImage) -> None:
        """`skopeo copy` of the image's layout into this registry, from inside its namespace."""
        dest = f"docker://{self.ready_at[0]}:{self.ready_at[1]}/{img.ref}"
        # no signature policy in the lab (--insecure-policy); plain http to the registry's own port
        argv = [*exec_prefix(self.ns), tool("skopeo"), "--insecure-policy", "copy", "--quiet",
                "--dest-tls-verify=false", f"oci:{img.layout}:{img.tag}", dest]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if res.returncode:
            raise ServiceError(f"{self.name}: skopeo copy to {dest} failed: {res.stderr.strip()}")

    def fetch_manifest(self, ns: str | None, host: str, port: int, timeout: float = 10,
                       trust: Trust | None = None) -> dict:
        """The image's manifest (GET /v2/<name>/manifests/<tag>) asked at host:port from namespace `ns`,
        its bytes checked against the digest pushed."""
        img = self.image
        if img is None:
            raise ServiceError(f"{self.name}: no image pushed yet (the lab stocks it when it comes up)")
        url = f"{base_url(host, port, trust)}/v2/{img.repository}/manifests/{img.tag}"
        status, body = get(ns, url, timeout, trust, headers=ACCEPT)
        if status != 200:
            raise HttpStatusError(status, f"manifest {img.ref} from {host}:{port}: HTTP {status} {body[:200]!r}")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if digest != img.manifest_digest:
            raise ServiceError(f"manifest {img.ref} from {host}:{port} is {digest}, not the {img.manifest_digest} pushed")
        return json.loads(body)


class OciFront(Nginx):
    """nginx in front of the OCI registry: /v2/ proxied to it (nginx-oci-server.conf.j2)."""
    server_template = OCI_FRONT


__all__ = ["DistributionRegistry", "OciFront", "read_layout"]
