"""Kind `skopeo`: Debian's skopeo 1.9.3 copying the image into an OCI layout, as HPC sites stage images.

    skopeo --insecure-policy copy --src-cert-dir {certdir} docker://{host}:{port}/{repo}:{tag} oci:{dir}:{tag}

(labkit.clients.oci_program.cert_options: --src-tls-verify=false over plain http). skopeo copies with containers/image; Debian builds skopeo 1.9.3
against its golang-github-containers-image 5.23.1 (installed here: 5.23.1-4), i.e. containers/image v5.23.1
@a3bfb8695c8e2a6ce73cb5957c646d2243299151. How many layers it fetches at once (`connections`):
- copy/copy.go:42-44: `maxParallelDownloads = uint(6)` ("Let's follow Firefox by limiting it to 6");
- copy/copy.go:262-271: that many at once only when the destination's PutBlob and the source's GetBlob are
  thread-safe, else one at a time;
- docker/docker_image_src.go:142 HasThreadSafeGetBlob true; oci/layout/oci_dest.go:68 HasThreadSafePutBlob
  true; directory/directory_dest.go:108 false.
So `oci:` fetches up to 6 layers at once (min(6, layers): the lab's 3-layer image, 3), `dir:` one at a time.
skopeo checks every blob against its digest as it copies (the destination's PutBlob is given the digest);
the lab then checks what it kept (labkit.clients.oci_pulled): the manifest, every layer and the config.
"""
from __future__ import annotations

from typing import ClassVar

from .oci.pull import MAX_PARALLEL_DOWNLOADS
from .oci_pulled import Layout
from .oci_program import OciProgram, cert_options

AT_ONCE: dict[Layout, int] = {"oci": MAX_PARALLEL_DOWNLOADS, "dir": 1}     # layers at once, by destination


def skopeo_argv(values: dict[str, str], layout: Layout = "oci") -> list[str]:
    """One `skopeo copy` from the registry into the pull's directory as an `oci:` layout or a `dir:`."""
    dest = f"oci:{values['layout']}:{values['tag']}" if layout == "oci" else f"dir:{values['layout']}"
    return ["skopeo", "--insecure-policy", "copy", *cert_options(values, "src-"), f"docker://{values['image']}", dest]


class Skopeo(OciProgram):
    name = "skopeo"
    layout: ClassVar[Layout] = "oci"
    connections = AT_ONCE["oci"]

    def argv(self, values: dict[str, str]) -> list[str]:
        return skopeo_argv(values, self.layout)
