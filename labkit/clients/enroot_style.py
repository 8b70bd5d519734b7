"""Kind `enroot-style`: the image pulled as enroot pulls it, with curl (labkit.clients.enroot_pull): a HEAD and
the manifest (list, then image), the config, then one curl per layer blob, up to ENROOT_MAX_CONNECTIONS = 10
at once (NVIDIA/enroot @8ea147d337da60cb1c557140f3a85cdf0d620968 conf/enroot.conf.in:43, enroot.in:90;
src/docker.sh:183), each blob's sha256 checked in the pull as enroot checks it. So `connections` is one per
layer, at most 10: the lab's 3-layer image takes 3, its large layer on one of them.
"""
from __future__ import annotations

import sys

from .enroot_pull import CONNECTIONS
from .oci_pulled import Layout
from .oci_program import OciProgram
from .program import CurlDriver

PROGRAM = "labkit.clients.enroot_pull"


class EnrootStyle(OciProgram, CurlDriver):
    name = "enroot-style"
    connections = CONNECTIONS
    layout: Layout = "flat"

    def argv(self, values: dict[str, str]) -> list[str]:
        ca = values.get("cacert")
        return [sys.executable, "-m", PROGRAM, values["base"], values["repository"], values["tag"],
                values["layout"], "--connections", str(self.connections), *(["--cacert", ca] if ca else [])]
