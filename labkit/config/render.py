"""Config files from Jinja2 templates: the live lab and the exported bundle use the same ones."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .modes import ACCEL_PREFIX, SERVE_MODES
from .settings import LabSettings
from .sslconf import conf_commands


@dataclass(frozen=True)
class NginxPaths:
    listen: str
    uwsgi_upstream: str
    images_dir: str
    pid: str
    error_log: str
    access_log: str
    uwsgi_params: str = "/etc/nginx/uwsgi_params"
    mime_types: str = "/etc/nginx/mime.types"
    user: str | None = None
    temp_dir: str | None = None
    server_include: str | None = None
    host_header: str | None = None       # lab only: HTTP_HOST for the app (Debian's uwsgi_params drops the port)
    static_dir: str | None = None        # sregistry's /static alias (the bundle; the lab has no static files)
    proxy_pass: str | None = None        # an nginx in front of another (a load balancer): every request to this URL
    accel_prefix: str = ACCEL_PREFIX
    # the TLS server block (written when tls.enabled and it has listen_tls: an nginx that terminates TLS):
    # where it listens, its certificate files. The bundle keeps sregistry's own paths (https/docker-compose.yml
    # mounts the host's /etc/ssl): placeholders for the operator's files; no key is ever written into a bundle.
    listen_tls: str | None = "443"
    tls_certificate: str = "/etc/ssl/certs/chained.pem"
    tls_certificate_key: str = "/etc/ssl/private/domain.key"
    tls_dhparam: str = "/etc/ssl/certs/dhparam.pem"
    server_template: str = "nginx-server.conf.j2"   # the server block: sregistry's, or an OCI registry's front


OCI_FRONT = "nginx-oci-server.conf.j2"   # the server block of nginx in front of an OCI registry (/v2/ proxied)


@dataclass(frozen=True)
class RegistryPaths:
    """Where an OCI registry (distribution) listens and keeps its blobs (its filesystem driver's root)."""
    addr: str
    rootdirectory: str


@dataclass(frozen=True)
class UwsgiPaths:
    socket: str
    deploy: bool = False
    http_socket: str = ""
    pidfile: str = ""
    app_options: tuple[tuple[str, str], ...] = ()   # lab only: the ini lines that load the registry app


def lab_nginx_paths(run: Path, listen: str, upstream: str, images: Path, temp: Path | None = None,
                    name: str = "nginx", protocol: str = "uwsgi", listen_tls: str | None = None,
                    tls_dir: Path | None = None) -> NginxPaths:
    """An nginx of the lab: its files in the run directory, named after its service; its upstream
    spoken to with uwsgi_pass, or (`protocol` "http") proxied to over HTTP. `listen_tls`: it terminates
    TLS there too, with the lab's certificate files in `tls_dir` (labkit.lab.conditions.tls: server.pem, server.key,
    dhparam.pem)."""
    http = protocol == "http"
    tls = tls_dir or run / "tls"
    return NginxPaths(listen=listen, uwsgi_upstream="" if http else upstream, images_dir=str(images),
                      proxy_pass=f"http://{upstream}" if http else None,
                      pid=str(run / f"{name}.pid"), error_log=str(run / f"{name}-error.log"),
                      access_log=str(run / f"{name}-access.log"), user="root",
                      temp_dir=str(temp or run / f"{name}-temp"), host_header="$http_host", listen_tls=listen_tls,
                      tls_certificate=str(tls / "server.pem"), tls_certificate_key=str(tls / "server.key"),
                      tls_dhparam=str(tls / "dhparam.pem"))


@cache
def templates() -> Environment:
    """The Jinja2 environment of labkit's templates: the lab, the bundle and the report all render from it."""
    env = Environment(loader=PackageLoader("labkit.config", "templates"), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False))
    env.filters["onoff"] = lambda v: "on" if v else "off"
    return env


def _tls(s: LabSettings) -> dict:
    return {**s.tls.model_dump(), "commands": conf_commands(s.tls.conf_command)}


def render_nginx(s: LabSettings, p: NginxPaths) -> str:
    return templates().get_template("nginx.conf.j2").render(n=s.nginx, m=SERVE_MODES[s.app.serve_mode],
                                                            t=_tls(s), p=p)


def render_nginx_server(s: LabSettings, p: NginxPaths) -> str:
    return templates().get_template(p.server_template).render(n=s.nginx, m=SERVE_MODES[s.app.serve_mode],
                                                                   t=_tls(s), p=p)


def render_registry_config(s: LabSettings, p: RegistryPaths) -> str:
    """distribution's config.yml (shaped like its config-example.yml at v2.8.2)."""
    return templates().get_template("distribution-config.yml.j2").render(r=s.registry, p=p)


def render_uwsgi(s: LabSettings, p: UwsgiPaths) -> str:
    """uwsgi.ini: in the lab it loads labkit's registry app (p.app_options); in the bundle, sregistry's."""
    return templates().get_template("uwsgi.ini.j2").render(u=s.uwsgi, m=SERVE_MODES[s.app.serve_mode], p=p)


@dataclass(frozen=True)
class PublishedRule:
    """One published port as Docker's rules see it (host_ip None: every local address, Docker's 0.0.0.0)."""
    host_port: int
    container_ip: str
    container_port: int
    host_ip: str | None = None


@dataclass(frozen=True)
class LabAccept:
    """A forward the lab needs that Docker would drop (a measuring hop, not a pull): said in the rule's comment."""
    ip: str
    port: int
    why: str


def render_nat(table: str, bridge: str, subnet: str, rules: list[PublishedRule], hairpin: bool = False,
               lab_accepts: list[LabAccept] = ()) -> str:
    """Docker's rules for published ports with `"iptables": true` as one nftables table (nat.nft.j2
    says which libnetwork rule each line is). `hairpin`: Docker's hairpin mode, `userland-proxy: false`."""
    return templates().get_template("nat.nft.j2").render(table=table, bridge=bridge, subnet=subnet, rules=rules,
                                                         hairpin=hairpin, lab_accepts=list(lab_accepts))
