"""The lab's TLS: a certificate authority made at `up`, a certificate for the VM, nginx's files.

With `tls.enabled`, `up` makes (with the `cryptography` package) a CA and a server certificate
signed by it, for the VM's name and the addresses a pull dials for https (the VM's, where Docker
publishes the port, and the nginx container's, for pulls from inside the VM), RSA 2048 as
sregistry's scripts/generate_cert.sh asks its ACME CA for (`default_bits = 2048`; singularityhub/sregistry
0d1274df). With `tls.dhparam`, nginx also gets DH parameters: the RFC 7919 group ffdhe4096
(sregistry makes 4096-bit ones with `openssl dhparam`), written by `openssl genpkey`.

Everything lives in the lab's run dir (`data/run/<lab>/tls`, 0700, keys 0600), is recorded as the
lab's own (ended with it, and by the next start after a killed owner), and is removed at `down`.
Clients are given the CA's certificate to verify against (`client()`); no key leaves the directory.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from ...config.settings import LabSettings
from ...path import FRONT, Plan
from ...app.catalog import Image
from ...clients.registry_api import Trust
from ..host import ownership
from ..host.tools import tool
from .base import Condition, Ground

VM_NAME = "registry.servelab.test"      # the VM's name in the certificate (.test: RFC 6761, never on the internet)
KEY_BITS = 2048
DAYS = 7


def _rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "servelab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "servelab lab CA"):
    """(key, certificate) of a self-signed CA, valid for DAYS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    key = _rsa_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server_cert(ca_key, ca_cert, names: list[str], addresses: list[str]):
    """(key, certificate) for a TLS server known by `names` (DNS) and `addresses` (IP), signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID
    key = _rsa_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addresses)]
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=DAYS))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_server_files(d: Path, addresses: list[str], dhparam: bool) -> None:
    """CA, server certificate (chained, as nginx's ssl_certificate wants: server then CA), key, DH parameters."""
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_cert = make_ca(f"servelab lab CA {secrets.token_hex(4)}")    # a name of its own: another CA never matches it
    key, cert = make_server_cert(ca_key, ca_cert, [VM_NAME], addresses)
    _write(d / "ca.pem", pem_cert(ca_cert), 0o644)
    _write(d / "server.pem", pem_cert(cert) + pem_cert(ca_cert), 0o644)
    _write(d / "server.key", pem_key(key), 0o600)
    if dhparam:
        write_dhparam(d / "dhparam.pem")


def write_dhparam(path: Path) -> None:
    """RFC 7919's ffdhe4096 group as nginx's ssl_dhparam file (no search for a prime: it is the standard one)."""
    subprocess.run([tool("openssl"), "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe4096",
                    "-out", str(path)], check=True, capture_output=True)


def tls_addresses(plan: Plan) -> list[str]:
    """Where an https pull dials: the nodes Docker publishes nginx's port on, nginx's own, and the
    host's 127.0.0.1 where a vantage dials it (the VM loopback's pulls and health checks)."""
    p = plan
    return [p.ip(pb.node) for pb in p.path.published if pb.container_port == FRONT] + \
           [p.ip(s.node) for s in p.path.services if s.program == "nginx" or s.tls] + \
           (["127.0.0.1"] if any(v.arrives == "loopback" for v in p.path.vantages) else [])


class LabTls(Condition):
    """The lab's TLS files as a condition: made at `up` when TLS is on, removed at `down`; DH parameters
    made before nginx reloads with `tls.dhparam` turned on. (TLS turned on or off while the lab runs
    moves the published port: the Lab ends and makes it again with the new plan.)"""

    def __init__(self, ground: Ground, addresses: list[str]):
        self.lab = ground.lab
        self.dir = ground.run_dir / "tls"
        self.addresses = addresses
        self.on = False

    @property
    def cafile(self) -> Path:
        return self.dir / "ca.pem"

    def up(self, s: LabSettings, image: Image | None = None) -> list[str]:
        self.on = s.tls.enabled
        if not self.on:
            return []
        ownership.own(self.lab, "tls", "dir", {"path": str(self.dir)})
        write_server_files(self.dir, self.addresses, s.tls.dhparam)
        return [f"tls: a lab CA and a certificate for {VM_NAME} ({', '.join(dict.fromkeys(self.addresses))}) "
                f"in {self.dir}"]

    def adopt(self, s: LabSettings, image: Image | None = None) -> None:
        """A lab another process brought up: its files are where they were made."""
        self.on = s.tls.enabled and self.cafile.is_file()

    def before_change(self, step: str, s: LabSettings) -> None:
        """DH parameters for a live change that turns `tls.dhparam` on (before nginx reloads)."""
        if step == "nginx" and s.tls.dhparam and self.on and not (self.dir / "dhparam.pem").is_file():
            write_dhparam(self.dir / "dhparam.pem")

    def trust(self) -> Trust | None:
        """What a client needs to verify the lab's nginx: its CA (None: TLS is off)."""
        return Trust(str(self.cafile)) if self.on else None

    def down(self) -> list[str]:
        self.on = False
        if not self.dir.is_dir():
            return []
        shutil.rmtree(self.dir, ignore_errors=True)
        ownership.disown(self.lab, "tls")
        return [f"rm -r {self.dir}"]
