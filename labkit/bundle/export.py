"""The winning settings as a bundle for sregistry's docker-compose deployment, checked before it is written.

    nginx.conf                     server block (sregistry mounts it as conf.d/default.conf)
    nginx/nginx.conf               main config: workers, sendfile, aio, buffers
    uwsgi.ini                      replaces sregistry's /code/uwsgi.ini
    sysctl.d/60-servelab-tcp.conf  the VM's TCP settings
    docker-compose.override.yml    mounts the files above; ulimits; the containers' TCP sysctls; cpus/cpuset
    daemon.json                    only for DNAT publishing: {"userland-proxy": false}
    servelab-settings.json         the settings, read back by import_bundle()
    README.md                      what changed, why, and the measurements
"""
from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd

from ..lab.checks import nginx_t_deployed, uwsgi_check
from ..config.render import NginxPaths, UwsgiPaths, templates, render_nginx, render_nginx_server, render_uwsgi
from ..config.presets import PROVENANCE, SREGISTRY_SHIPPED

BASE_PRESET = "sregistry-2018-10"
from ..config.modes import SERVE_MODES
from ..config.settings import SYSCTLS, LabSettings, as_text, field_names, setting

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
    "publish.mode": "docker-proxy copies every byte through a user-space process; DNAT (`userland-proxy: "
                    "false`) lets the kernel forward the packets",
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
    **{f"cpu.{m}_cpus": f"CPU time {m} may use (docker-compose `cpus:`, a CFS quota)" for m in ("nginx", "uwsgi", "proxy")},
    **{f"cpu.{m}_cpuset": f"the CPUs {m} may run on (docker-compose `cpuset:`)" for m in ("nginx", "uwsgi", "proxy")},
}


def changes(s: LabSettings, base: LabSettings = SREGISTRY_SHIPPED) -> list[dict]:
    out = []
    for group in ("app", "publish", "uwsgi", "nginx", "kernel", "cpu"):
        for field in field_names(base, group, s):
            a, b = setting(base, group, field), setting(s, group, field)
            if a != b:
                path = f"{group}.{field}"
                out.append({"path": path, "old": as_text(a) or "(default)", "new": as_text(b) or "(default)",
                            "why": WHY.get(path, "")})
    return out


def kernel_sysctls(s: LabSettings) -> dict[str, str]:
    """The kernel settings that differ from the default, by sysctl name."""
    return {key: as_text(v) for field, key in SYSCTLS.items() if (v := getattr(s.kernel, field)) is not None}


def export_bundle(s: LabSettings, out_dir: Path, label: str = "winner", measurements: pd.DataFrame | None = None,
                  image_mib: int | None = None, notes: list[str] | None = None) -> tuple[Path, Path]:
    """Render, check with nginx -t and uwsgi, then write `out_dir/<label>/` and `<label>.tar.gz`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = templates()
    sysctls = kernel_sysctls(s)
    files = {
        "nginx.conf": render_nginx_server(s, DEPLOY_NGINX),
        "nginx/nginx.conf": render_nginx(s, DEPLOY_NGINX),
        "uwsgi.ini": render_uwsgi(s, DEPLOY_UWSGI),
        "sysctl.d/60-servelab-tcp.conf": env.get_template("sysctl.conf.j2").render(sysctls=sysctls),
        "docker-compose.override.yml": env.get_template("compose-override.yml.j2").render(
            nofile=max(65536, 4 * s.nginx.worker_connections), sysctls=sysctls, cpu=s.cpu),
        SETTINGS_FILE: json.dumps(s.model_dump(mode="json"), indent=1) + "\n",
    }
    if s.publish.mode == "dnat":
        files["daemon.json"] = json.dumps({"userland-proxy": False}, indent=1) + "\n"
    table = measurements.to_markdown(index=False) if measurements is not None and len(measurements) else ""
    files["README.md"] = env.get_template("bundle-README.md.j2").render(
        label=label, when=time.strftime("%Y-%m-%d %H:%M"), s=s, changes=changes(s),
        daemon_json="daemon.json" in files, measurements=table, image_mib=image_mib, notes=notes or [],
        base=BASE_PRESET, provenance=PROVENANCE, mode=SERVE_MODES[s.app.serve_mode])
    with tempfile.TemporaryDirectory(prefix="servelab-bundle-", dir=out_dir) as tmp:
        stage = Path(tmp) / label
        for name, text in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)
        nginx_t_deployed(stage / "nginx/nginx.conf", stage / "nginx.conf")
        uwsgi_check(stage / "uwsgi.ini", expect_processes=s.uwsgi.processes)
        final = out_dir / label
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(stage), final)
    tar = out_dir / f"{label}.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(final, arcname=label)
    return final, tar


def import_bundle(path: Path) -> LabSettings:
    """The settings of a bundle (its directory or .tar.gz), checked against its rendered files."""
    path = Path(path)
    if path.is_file():
        with tarfile.open(path) as tf:
            member = next((m for m in tf.getmembers() if m.name.endswith("/" + SETTINGS_FILE)), None)
            if member is None:
                raise ValueError(f"{path}: no {SETTINGS_FILE} in this archive")
            root = member.name.rsplit("/", 1)[0]
            read = {n: tf.extractfile(f"{root}/{n}").read().decode() for n in (SETTINGS_FILE, "nginx/nginx.conf", "uwsgi.ini")}
    else:
        read = {n: (path / n).read_text() for n in (SETTINGS_FILE, "nginx/nginx.conf", "uwsgi.ini")}
    s = LabSettings.model_validate_json(read[SETTINGS_FILE])
    if render_nginx(s, DEPLOY_NGINX) != read["nginx/nginx.conf"] or render_uwsgi(s, DEPLOY_UWSGI) != read["uwsgi.ini"]:
        raise ValueError(f"{path}: the config files were edited after export; they no longer match {SETTINGS_FILE}")
    return s


def diff_against(bundle: Path, base: LabSettings = SREGISTRY_SHIPPED, base_label: str = BASE_PRESET) -> str:
    """Unified diffs of the bundle's nginx and uwsgi files against `base` rendered the same way."""
    import difflib
    out = []
    for name, render, paths in (("nginx/nginx.conf", render_nginx, DEPLOY_NGINX),
                                ("nginx.conf", render_nginx_server, DEPLOY_NGINX),
                                ("uwsgi.ini", render_uwsgi, DEPLOY_UWSGI)):
        diff = difflib.unified_diff(render(base, paths).splitlines(), (Path(bundle) / name).read_text().splitlines(),
                                    f"{base_label}/{name}", f"{Path(bundle).name}/{name}", lineterm="")
        out.append("\n".join(diff) or f"{name}: unchanged")
    return "\n".join(out)
