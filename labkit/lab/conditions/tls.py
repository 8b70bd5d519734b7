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

from ...registry.client import Trust
from ..host import ownership
from ..host.tools import tool

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


class LabTls:
    """The lab's TLS files: made at `up` when TLS is on, removed at `down`."""

    def __init__(self, lab: str, run_dir: Path):
        self.lab = lab
        self.dir = run_dir / "tls"
        self.on = False

    @property
    def cafile(self) -> Path:
        return self.dir / "ca.pem"

    def up(self, enabled: bool, dhparam: bool, addresses: list[str]) -> list[str]:
        self.on = enabled
        if not enabled:
            return []
        ownership.own(self.lab, "tls", "dir", {"path": str(self.dir)})
        write_server_files(self.dir, addresses, dhparam)
        return [f"tls: a lab CA and a certificate for {VM_NAME} ({', '.join(dict.fromkeys(addresses))}) in {self.dir}"]

    def adopt(self, enabled: bool) -> None:
        """A lab another process brought up: its files are where they were made."""
        self.on = enabled and self.cafile.is_file()

    def ensure_dhparam(self) -> None:
        """DH parameters for a live change that turns `tls.dhparam` on."""
        if self.on and not (self.dir / "dhparam.pem").is_file():
            write_dhparam(self.dir / "dhparam.pem")

    def client(self) -> Trust | None:
        """What a client needs to verify the lab's nginx: its CA (None: TLS is off)."""
        return Trust(str(self.cafile)) if self.on else None

    def down(self) -> list[str]:
        self.on = False
        if not self.dir.is_dir():
            return []
        shutil.rmtree(self.dir, ignore_errors=True)
        ownership.disown(self.lab, "tls")
        return [f"rm -r {self.dir}"]
