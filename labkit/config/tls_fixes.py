"""Fixes for a TLS-bound registry server, as settings changes, each with the clients that can use it.

    for f in FIXES: s = f.apply(preset("sregistry-2018-10-https"))

Each is measured one pull and N at once on the seed's CPU model (benchmarks/bench_tls.py). The clients
are the seed's: compute nodes on CentOS 7 (OpenSSL 1.0.2k: TLS 1.2, AES-GCM, no ChaCha20-Poly1305, which
OpenSSL has from 1.1.0: no crypto/chacha in OpenSSL_1_0_2k 081314d0), pulling with Singularity 2.6
(Python 2.7's urllib2 on that OpenSSL) or sregistry-cli (requests). Pure data.
"""
from __future__ import annotations

from dataclasses import dataclass

from .settings import LabSettings


@dataclass(frozen=True)
class Fix:
    name: str
    changes: dict[str, dict]      # settings group -> fields (LabSettings.changed)
    helps: str                    # one pull, N pulls, or neither
    clients: str                  # which clients can use it
    speeds_up: bool = True        # False: measured for the record, never offered as a throughput fix
    oci_clients: str = ""         # which clients of an OCI registry can use it ("": as `clients`)

    def apply(self, s: LabSettings) -> LabSettings:
        groups = {g: dict(v) for g, v in self.changes.items()}
        if "tls" in groups and "ciphers_first" in groups["tls"]:
            first = groups["tls"].pop("ciphers_first")
            rest = [c for c in s.tls.ciphers.split(":") if c != first]
            groups["tls"]["ciphers"] = ":".join([first, *rest])
        return s.changed(**groups)


GO_TLS = ("Go's crypto/tls, the TLS of containers/image (podman, skopeo, Apptainer's docker://) and of oras, "
          "offers ECDHE-RSA-AES128-GCM-SHA256 and ECDHE-RSA-CHACHA20-POLY1305 by default (golang/go 01cdd365 "
          "src/crypto/tls/cipher_suites.go, cipherSuites); curl (enroot) on OpenSSL 1.1.0 or later offers both too")

FIXES = (
    Fix("AES-128-GCM first", {"tls": {"ciphers_first": "ECDHE-RSA-AES128-GCM-SHA256"}}, "one pull and N",
        "every client of sregistry's list: CentOS 7's OpenSSL 1.0.2k offers ECDHE-RSA-AES128-GCM-SHA256",
        oci_clients="every client: " + GO_TLS),
    Fix("ChaCha20-Poly1305 preferred", {"tls": {"ciphers_first": "ECDHE-RSA-CHACHA20-POLY1305"}}, "one pull and N",
        "clients on OpenSSL 1.1.0 or later only (CentOS 8, Ubuntu 18.04+); CentOS 7's 1.0.2k does not offer it "
        "and falls back to the next suite (AES-256-GCM: no gain for the seed's compute nodes)",
        oci_clients="every client of today's: " + GO_TLS),
    Fix("plain http on the cluster network", {"tls": {"enabled": False}}, "one pull and N",
        "every client pointed at http://registry:80 (sregistry's https setup keeps port 80 open); sregistry-cli: "
        "SREGISTRY_REGISTRY_NOHTTPS; Singularity 2.6.1: SINGULARITY_NOHTTPS (sylabs/singularity 2.6.1 9103f015 "
        "libexec/python/defaults.py DISABLE_HTTPS, read by sutils.py add_http for shub://); only where the "
        "cluster network is trusted",
        oci_clients="containers/image clients with the registry marked insecure (registries.conf `insecure = "
                    "true`, or --tls-verify=false: podman, skopeo), Apptainer's `--no-https` "
                    "(apptainer/apptainer 917d6657 cmd/internal/cli/apptainer.go:230-236), enroot's ENROOT_ALLOW_HTTP "
                    "(NVIDIA/enroot 8ea147d conf/enroot.conf.in:61, src/docker.sh:20); only where the cluster "
                    "network is trusted"),
    Fix("more nginx workers", {"nginx": {"worker_processes": "auto"}}, "N pulls, not one (one connection = one worker)",
        "every client"),
    Fix("ssl_buffer_size 4k", {"tls": {"buffer_size": "4k"}}, "neither for throughput: 16k (nginx's default) is "
        "already the largest TLS record; smaller records only bring the first byte sooner", "every client",
        speeds_up=False),
)
