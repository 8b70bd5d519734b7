"""Configs judged by the real programs: `nginx -t`, uwsgi's own parser in strict mode, and an OCI registry's
config.yml by the registry itself (started on it, answering GET /v2/)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import ConfigRejected
from ...in_netns import exec_prefix
from ..host.tools import tool


def nginx_t(conf: Path, ns: str | None = None) -> None:
    """`nginx -t` on a config whose paths exist here, in the namespace that owns its listen address."""
    res = subprocess.run([*exec_prefix(ns), tool("nginx"), "-t", "-c", str(conf), "-e", "/dev/null"],
                         capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise ConfigRejected(f"nginx -t rejected {conf.name}: {res.stderr.strip()}")


def nginx_t_deployed(main_conf: Path, server_conf: Path, uwsgi_params: str = "/etc/nginx/uwsgi_params.par",
                     user: str = "nginx", upstream_host: str = "uwsgi", tls=None) -> None:
    """`nginx -t` on the exported files as they will sit in sregistry's nginx container.

    A private mount namespace gives nginx what the container has: /etc/nginx with the main
    config and the server block in conf.d, sregistry's uwsgi_params.par, the `nginx` user
    and the `uwsgi` host name (nginx resolves upstreams while testing). With `tls` (the paths
    the config names), a throwaway CA-signed certificate, key and DH parameters sit where the
    operator's will (their directories mounted over). Nothing of the host is changed.
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
                  + "".join(f"mount --bind {src} {dst} && " for src, dst in _throwaway_tls(t, tls))
                  + f"exec {tool('nginx')} -t -c /etc/nginx/nginx.conf")
        res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                             capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise ConfigRejected(f"nginx -t rejected the exported nginx config: {res.stderr.strip()}")


def _throwaway_tls(t: Path, tls) -> list[tuple[Path, str]]:
    """A CA-signed certificate, its key and DH parameters at the paths `tls` names (temp directories to
    mount over theirs): what nginx -t needs to load the TLS server block. Never the operator's files."""
    if tls is None:
        return []
    from ..conditions.tls import make_ca, make_server_cert, pem_cert, pem_key, write_dhparam
    ca_key, ca = make_ca("servelab nginx -t throwaway CA")
    key, cert = make_server_cert(ca_key, ca, ["localhost"], ["127.0.0.1"])
    mounts: dict[str, Path] = {}
    for path, make in ((tls.tls_certificate, lambda p: p.write_bytes(pem_cert(cert) + pem_cert(ca))),
                       (tls.tls_certificate_key, lambda p: p.write_bytes(pem_key(key))),
                       (tls.tls_dhparam, write_dhparam)):
        d = str(Path(path).parent)
        if d not in mounts:
            mounts[d] = t / f"tls{len(mounts)}"
            mounts[d].mkdir()
        make(mounts[d] / Path(path).name)
    return [(src, dst) for dst, src in mounts.items()]


def uwsgi_check(ini: Path, expect_processes: int | None = None) -> None:
    """uwsgi parses the ini in strict mode (unknown directives are errors) and exits."""
    res = subprocess.run([tool("uwsgi"), "--strict", "--ini", str(ini), "--get", "processes"],
                         capture_output=True, text=True, timeout=30)
    if res.returncode:
        raise ConfigRejected(f"uwsgi rejected {ini.name}: {res.stderr.strip().splitlines()[-1]}")
    if expect_processes is not None and res.stdout.strip() != str(expect_processes):
        raise ConfigRejected(f"uwsgi read processes = {res.stdout.strip()!r} from {ini.name}, "
                             f"expected {expect_processes}")


REGISTRY_CHECK = """ip link set lo up
REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$2" "$1" serve "$3" >"$4" 2>&1 &
pid=$!
code=000
for i in $(seq 200); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$5/v2/")
  [ "$code" = 200 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
kill $pid 2>/dev/null; wait $pid 2>/dev/null
echo "GET /v2/: HTTP $code"
[ "$code" = 200 ]
"""


def registry_check(config: Path, port: int) -> None:
    """distribution's registry (Debian's docker-registry) started on `config` in a network namespace of its own
    (only loopback: the config's `addr` port taken by nobody else), its filesystem root in a temp directory
    (distribution's REGISTRY_<SECTION>_<KEY> override of that one key: distribution/distribution v2.8.2
    docs/configuration.md, configuration/parser.go overwriteFields), and asked GET /v2/ on 127.0.0.1:`port`:
    accepted only once it answers 200; its own words otherwise."""
    with tempfile.TemporaryDirectory(prefix="servelab-registry-check-") as tmp:
        log = Path(tmp) / "registry.log"
        res = subprocess.run(["unshare", "--net", "sh", "-c", REGISTRY_CHECK, "check", tool("docker-registry"),
                              str(Path(tmp) / "root"), str(config), str(log), str(port)],
                             capture_output=True, text=True, timeout=60)
        if res.returncode:
            lines = log.read_text().strip().splitlines() if log.exists() else []
            # its own words: a panic's first line, else its last lines (a Go panic's trace follows the message)
            said = [ln for ln in lines if ln.startswith(("panic:", "configuration error"))][:1] or lines[-3:]
            raise ConfigRejected(f"the registry did not serve on {config.name} ({res.stdout.strip()}): "
                                 + " | ".join(said))
