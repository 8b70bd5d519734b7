"""Configs judged by the real programs: `nginx -t`, and uwsgi's own parser in strict mode."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigRejected
from ..in_netns import exec_prefix
from .tools import tool


def nginx_t(conf: Path, ns: str | None = None) -> None:
    """`nginx -t` on a config whose paths exist here, in the namespace that owns its listen address."""
    res = subprocess.run([*exec_prefix(ns), tool("nginx"), "-t", "-c", str(conf), "-e", "/dev/null"],
                         capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise ConfigRejected(f"nginx -t rejected {conf.name}: {res.stderr.strip()}")


def nginx_t_deployed(main_conf: Path, server_conf: Path, uwsgi_params: str = "/etc/nginx/uwsgi_params.par",
                     user: str = "nginx", upstream_host: str = "uwsgi") -> None:
    """`nginx -t` on the exported files as they will sit in sregistry's nginx container.

    A private mount namespace gives nginx what the container has: /etc/nginx with the main
    config and the server block in conf.d, sregistry's uwsgi_params.par, the `nginx` user
    and the `uwsgi` host name (nginx resolves upstreams while testing). Nothing of the
    host is changed.
    """
    with tempfile.TemporaryDirectory(prefix="servelab-nginx-t-") as tmp:
        t = Path(tmp)
        etc = t / "nginx"
        shutil.copytree("/etc/nginx", etc, symlinks=True)
        (etc / "conf.d").mkdir(exist_ok=True)
        for f in (etc / "conf.d").glob("*"):
            f.unlink()
        shutil.copy(main_conf, etc / "nginx.conf")
        shutil.copy(server_conf, etc / "conf.d" / "default.conf")
        rel = Path(uwsgi_params).relative_to("/etc/nginx")   # sregistry mounts it there
        shutil.copy("/etc/nginx/uwsgi_params", etc / rel)
        passwd = Path("/etc/passwd").read_text() + f"{user}:x:101:101::/nonexistent:/usr/sbin/nologin\n"
        group = Path("/etc/group").read_text() + f"{user}:x:101:\n"
        hosts = f"127.0.0.1 localhost\n127.0.0.1 {upstream_host}\n"
        for name, text in (("passwd", passwd), ("group", group), ("hosts", hosts)):
            (t / name).write_text(text)
        script = (f"mount --bind {etc} /etc/nginx && mount --bind {t}/passwd /etc/passwd && "
                  f"mount --bind {t}/group /etc/group && mount --bind {t}/hosts /etc/hosts && "
                  f"exec {tool('nginx')} -t -c /etc/nginx/nginx.conf")
        res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                             capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise ConfigRejected(f"nginx -t rejected the exported nginx config: {res.stderr.strip()}")


def uwsgi_check(ini: Path, expect_processes: int | None = None) -> None:
    """uwsgi parses the ini in strict mode (unknown directives are errors) and exits."""
    res = subprocess.run([tool("uwsgi"), "--strict", "--ini", str(ini), "--get", "processes"],
                         capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise ConfigRejected(f"uwsgi rejected {ini.name}: {res.stderr.strip().splitlines()[-1]}")
    if expect_processes is not None and res.stdout.strip() != str(expect_processes):
        raise ConfigRejected(f"uwsgi read processes = {res.stdout.strip()!r} from {ini.name}, "
                             f"expected {expect_processes}")
