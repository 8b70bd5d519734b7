"""Kind `curl-ranged`: one image over N connections at once, each curl fetching its own byte range.

labkit.clients.curl_ranged_pull: the image's length from a first one-byte range request, then
`connections` curls, each `-r <start>-<end>`, writing in place; a server without Range support (200
to the probe) is pulled over one connection, and said. N is enroot's default connection count,
ENROOT_MAX_CONNECTIONS=10 (NVIDIA/enroot at 8ea147d, enroot.in:90 and conf/enroot.conf.in:43). enroot
spends them on layers, one curl per layer blob, up to that many at once (src/docker.sh:183, GNU parallel
-j); a SIF image is one file, so here they go to ranges of it. Given the manifest's image URL ({url}).
"""
from __future__ import annotations

import sys

from .curl_ranged_pull import CONNECTIONS
from .program import CurlDriver

PROGRAM = "labkit.clients.curl_ranged_pull"


class CurlRanged(CurlDriver):
    name = "curl-ranged"
    connections = CONNECTIONS
    needs_url = True

    def argv(self, values: dict[str, str]) -> list[str]:
        ca = values.get("cacert")
        return [sys.executable, "-m", PROGRAM, values["url"], values["dest"], "--connections", str(self.connections),
                *(["--cacert", ca] if ca else [])]
