"""The winning settings as a bundle for sregistry's docker-compose deployment, checked before it is written
(for an OCI registry, registry.kind "distribution": nginx in front of distribution, labkit.bundle.oci).

    nginx.conf                     server block (sregistry mounts it as conf.d/default.conf)
    nginx/nginx.conf               main config: workers, sendfile, aio, buffers
    uwsgi.ini                      replaces sregistry's /code/uwsgi.ini
    sysctl.d/60-servelab-tcp.conf  the VM's TCP settings
    docker-compose.override.yml    mounts the files above; ulimits; the containers' TCP sysctls; cpus/cpuset
    daemon.json                    only where publishing differs from Docker's defaults (iptables, userland-proxy, ip)
    servelab-settings.json         the settings, read back by import_bundle()
    README.md                      what changed, why, and the measurements
"""
from __future__ import annotations

import difflib
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from ..config.render import NginxPaths, UwsgiPaths, templates, render_nginx, render_nginx_server, render_uwsgi
from ..config.presets import DISTRIBUTION_2_8, PROVENANCE, SREGISTRY_SHIPPED
from . import oci

BASE_PRESET = "sregistry-2018-10"
OCI_BASE_PRESET = "distribution-2.8"
from ..config.modes import SERVE_MODES
from ..config.settings import SYSCTLS, LabSettings, PublishSettings, as_text, field_names, setting

SETTINGS_FILE = "servelab-settings.json"
DEPLOY_NGINX = NginxPaths(listen="*:80", uwsgi_upstream="uwsgi:3031", images_dir="/var/www/images",
                          pid="/var/run/nginx.pid", error_log="/var/log/nginx/error.log",
                          access_log="/var/log/nginx/access.log", uwsgi_params="/etc/nginx/uwsgi_params.par",
                          user="nginx", server_include="/etc/nginx/conf.d/*.conf", static_dir="/var/www/static")
DEPLOY_UWSGI = UwsgiPaths(socket=":3031", deploy=True)

WHY = {
    "app.serve_mode": "how the image leaves the app: `accel` lets nginx send the file with sendfile "
                      "(X-Accel-Redirect) and frees the uwsgi worker after the headers; `fileresponse` has "
                      "uwsgi sendfile() it and holds a worker for the whole pull",
    "app.chunk_size": "FileResponse's block size when Django iterates the file (no wsgi.file_wrapper)",
    "publish.iptables": "with Docker's rules (the default) the kernel DNATs a compute node's pull; without them "
                        "docker-proxy copies every byte in user space (docker/libnetwork portmapper/mapper.go)",
    "publish.userland_proxy": "docker-proxy carries only the VM's own 127.0.0.1 and hairpin while iptables is on: "
                              "a compute node's pull is DNATed either way (iptables/iptables.go ProgramChain)",
    "publish.ip": "the address published ports are bound to (the NAT rule's `-d` and docker-proxy's socket)",
    "uwsgi.processes": "each streamed pull holds a worker for its whole duration: with one worker, parallel "
                       "pulls (and the manifest requests) queue behind it",
    "uwsgi.threads": "more requests per worker process",
    "uwsgi.harakiri": "harakiri kills a request that runs longer than this: a 1.5 GB pull at 32 MB/s takes "
                      "47 s, so 20 s ends it mid-download (a failed pull)",
    "uwsgi.socket_timeout": "how long uwsgi waits on a blocked socket read/write before it gives up on the request",
    "uwsgi.offload_threads": "lets uwsgi hand file transfers to offload threads",
    "uwsgi.buffer_size": "the uwsgi request header buffer",
    "uwsgi.post_buffering": "uploads buffered before the app sees them (sregistry's `true` parses as 0: off)",
    "uwsgi.http_timeout": "uwsgi's own HTTP router only (sregistry's ini starts none)",
    "uwsgi.ignore_sigpipe": "quietens logs about clients that went away",
    "uwsgi.ignore_write_errors": "quietens logs about clients that went away",
    "uwsgi.disable_write_exception": "no Python exception when a client went away mid-write",
    "uwsgi.max_requests": "worker recycling after this many requests",
    "nginx.sendfile": "sendfile lets the kernel copy file pages to the socket; off reads through user space "
                      "(the seed's tweak measured slower)",
    "nginx.aio": "asynchronous file reads; with sendfile off every byte is read into nginx's buffers",
    "nginx.tcp_nopush": "with sendfile, send full packets (TCP_CORK)",
    "nginx.worker_processes": "nginx worker processes",
    "nginx.worker_connections": "connections per nginx worker",
    "nginx.access_log": "one log line per request",
    "nginx.uwsgi_buffering": "nginx reads the uwsgi response into buffers and temp files before sending",
    "nginx.uwsgi_max_temp_file_size": "how much of a buffered response nginx may spill to a temp file",
    "nginx.uwsgi_buffers": "nginx's buffers for a uwsgi response",
    "nginx.uwsgi_buffer_size": "nginx's first buffer for a uwsgi response",
    "nginx.output_buffers": "nginx's buffers for reading files when sendfile is off",
    "nginx.sendfile_max_chunk": "bytes one sendfile() call may send before nginx serves other connections",
    "nginx.directio": "read large files bypassing the page cache",
    "nginx.keepalive_timeout": "idle keep-alive connection lifetime",
    "kernel.tcp_rmem": "TCP receive buffer (min default max): caps the receive window",
    "kernel.tcp_wmem": "TCP send buffer (min default max): caps what a sender keeps in flight",
    "kernel.congestion_control": "TCP congestion control algorithm",
    "tls.enabled": "https at nginx (sregistry's https/nginx.conf.https): every byte is encrypted by the nginx "
                   "worker holding the connection, one core per connection",
    "tls.ciphers": "the suites the server offers; with prefer_server_ciphers on, the first one the client also "
                   "has wins (AES-256-GCM costs 14 AES rounds a block, AES-128-GCM 10; ChaCha20-Poly1305 is "
                   "fastest on a CPU without AES-NI, for clients that have it: not CentOS 7's OpenSSL 1.0.2k)",
    "tls.prefer_server_ciphers": "the server's order of suites wins over the client's",
    "tls.protocols": "the TLS versions nginx accepts",
    "tls.buffer_size": "bytes per TLS record nginx writes (ssl_buffer_size)",
    "tls.conf_command": "OpenSSL settings nginx passes through (ssl_conf_command)",
    "tls.session_cache": "TLS sessions resumed without a full handshake",
    "tls.dhparam": "DH parameters for DHE suites",
    "nginx.proxy_buffering": "nginx reads the registry's response into buffers and temp files before sending; off "
                             "passes each blob's bytes on as they come (Harbor's nginx: goharbor/harbor v2.15.2 "
                             "make/photon/prepare/templates/nginx/nginx.https.conf.jinja)",
    "nginx.proxy_request_buffering": "nginx reads a push's body whole before passing it to the registry",
    "nginx.proxy_max_temp_file_size": "how much of a buffered registry response nginx may spill to a temp file",
    "nginx.proxy_read_timeout": "seconds nginx waits for the next byte from the registry before it ends the pull",
    "nginx.proxy_send_timeout": "seconds nginx waits while sending a request to the registry",
    "nginx.proxy_http_version": "the HTTP version nginx speaks to the registry",
    "registry.blobdescriptor_cache": "config.yml's storage.cache.blobdescriptor: blob metadata kept in memory",
    "registry.health_storagedriver": "config.yml's health.storagedriver check",
    "registry.log_level": "the registry's log level",
    **{f"cpu.{m}_cpus": f"CPU time {m} may use (docker-compose `cpus:`, a CFS quota)"
       for m in ("nginx", "uwsgi", "proxy", "registry")},
    **{f"cpu.{m}_cpuset": f"the CPUs {m} may run on (docker-compose `cpuset:`)" for m in ("nginx", "uwsgi", "proxy", "registry")},
}
GROUPS = {"sregistry": ("app", "publish", "uwsgi", "nginx", "tls", "kernel", "cpu"),
          "distribution": ("registry", "publish", "nginx", "tls", "kernel", "cpu")}


def changes(s: LabSettings, base: LabSettings = SREGISTRY_SHIPPED) -> list[dict]:
    out = []
    for group in GROUPS[s.registry.kind]:
        for field in field_names(base, group, s):
            a, b = setting(base, group, field), setting(s, group, field)
            if a != b:
                path = f"{group}.{field}"
                out.append({"path": path, "old": as_text(a) or "(default)", "new": as_text(b) or "(default)",
                            "why": WHY.get(path, "")})
    return out


def daemon_json(s: LabSettings) -> dict:
    """daemon.json's publishing keys where `s` differs from Docker's defaults (empty: nothing to merge)."""
    default, out = PublishSettings(), {}
    for key, field in (("iptables", "iptables"), ("userland-proxy", "userland_proxy"), ("ip", "ip")):
        if getattr(s.publish, field) != getattr(default, field):
            out[key] = getattr(s.publish, field)
    if out.get("ip") == "eth0":
        out["ip"] = "<the VM's address>"
    return out


def kernel_sysctls(s: LabSettings) -> dict[str, str]:
    """The kernel settings that differ from the default, by sysctl name."""
    return {key: as_text(v) for field, key in SYSCTLS.items() if (v := getattr(s.kernel, field)) is not None}


def export_bundle(s: LabSettings, out_dir: Path, label: str = "winner", measurements: pd.DataFrame | None = None,
                  image_mib: int | None = None, notes: list[str] | None = None, *,
                  check: Callable[[Path, LabSettings], None]) -> tuple[Path, Path]:
    """Render, `check(stage_dir, s)` (the real programs judge the files: labkit.experiments.bundles.check_bundle
    runs nginx -t and uwsgi; it raises to refuse), then write `out_dir/<label>/` and `<label>.tar.gz`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = templates()
    sysctls = kernel_sysctls(s)
    nofile = max(65536, 4 * s.nginx.worker_connections)
    ocireg = s.registry.kind == "distribution"
    files = {
        **config_files(s),
        "sysctl.d/60-servelab-tcp.conf": env.get_template("sysctl.conf.j2").render(sysctls=sysctls),
        "docker-compose.override.yml": oci.compose_override(s, nofile, sysctls) if ocireg else
        env.get_template("compose-override.yml.j2").render(nofile=nofile, sysctls=sysctls, cpu=s.cpu, tls=s.tls),
        SETTINGS_FILE: json.dumps(s.model_dump(mode="json"), indent=1) + "\n",
    }
    if daemon := daemon_json(s):
        files["daemon.json"] = json.dumps(daemon, indent=1) + "\n"
    table = measurements.to_markdown(index=False) if measurements is not None and len(measurements) else ""
    base, base_s = (OCI_BASE_PRESET, DISTRIBUTION_2_8) if ocireg else (BASE_PRESET, SREGISTRY_SHIPPED)
    files["README.md"] = env.get_template("bundle-oci-README.md.j2" if ocireg else "bundle-README.md.j2").render(
        label=label, when=time.strftime("%Y-%m-%d %H:%M"), s=s, changes=changes(s, base_s),
        daemon_json="daemon.json" in files, measurements=table, image_mib=image_mib, notes=notes or [],
        base=base, provenance=PROVENANCE, mode=SERVE_MODES[s.app.serve_mode], tls_paths=DEPLOY_NGINX)
    with tempfile.TemporaryDirectory(prefix="servelab-bundle-", dir=out_dir) as tmp:
        stage = Path(tmp) / label
        for name, text in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)
        check(stage, s)
        final = out_dir / label
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(stage), final)
    tar = out_dir / f"{label}.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(final, arcname=label)
    return final, tar


def config_files(s: LabSettings) -> dict[str, str]:
    """The configs a bundle for `s` holds, as deployed: sregistry's nginx and uwsgi files, or (an OCI registry)
    nginx's and the registry's config.yml (labkit.bundle.oci)."""
    if s.registry.kind == "distribution":
        return oci.config_files(s)
    return {"nginx.conf": render_nginx_server(s, DEPLOY_NGINX), "nginx/nginx.conf": render_nginx(s, DEPLOY_NGINX),
            "uwsgi.ini": render_uwsgi(s, DEPLOY_UWSGI)}


def import_bundle(path: Path) -> LabSettings:
    """The settings of a bundle (its directory or .tar.gz), checked against its rendered files."""
    path = Path(path)
    if path.is_file():
        with tarfile.open(path) as tf:
            member = next((m for m in tf.getmembers() if m.name.endswith("/" + SETTINGS_FILE)), None)
            if member is None:
                raise ValueError(f"{path}: no {SETTINGS_FILE} in this archive")
            root = member.name.rsplit("/", 1)[0]
            read = lambda n: tf.extractfile(f"{root}/{n}").read().decode()   # noqa: E731
            s = LabSettings.model_validate_json(read(SETTINGS_FILE))
            got = {n: read(n) for n in config_files(s)}
    else:
        s = LabSettings.model_validate_json((path / SETTINGS_FILE).read_text())
        got = {n: (path / n).read_text() for n in config_files(s)}
    if got != config_files(s):
        raise ValueError(f"{path}: the config files were edited after export; they no longer match {SETTINGS_FILE}")
    return s


def diff_against(bundle: Path, base: LabSettings = SREGISTRY_SHIPPED, base_label: str = BASE_PRESET) -> str:
    """Unified diffs of the bundle's nginx and uwsgi files against `base` rendered the same way."""
    out = []
    for name, render, paths in (("nginx/nginx.conf", render_nginx, DEPLOY_NGINX),
                                ("nginx.conf", render_nginx_server, DEPLOY_NGINX),
                                ("uwsgi.ini", render_uwsgi, DEPLOY_UWSGI)):
        diff = difflib.unified_diff(render(base, paths).splitlines(), (Path(bundle) / name).read_text().splitlines(),
                                    f"{base_label}/{name}", f"{Path(bundle).name}/{name}", lineterm="")
        out.append("\n".join(diff) or f"{name}: unchanged")
    return "\n".join(out)
