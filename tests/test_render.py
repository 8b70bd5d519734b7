import shutil
import subprocess
from pathlib import Path

import pytest

from labkit.registry import uwsgi_app_options
from labkit.config.render import UwsgiPaths, lab_nginx_paths, render_nginx, render_uwsgi
from labkit.config.presets import PRESETS, SREGISTRY_SHIPPED
from labkit.lab.tls import write_server_files


def _paths(tmp: Path):
    (tmp / "nginx-temp").mkdir(exist_ok=True)
    return lab_nginx_paths(tmp, "127.0.0.1:18080", "127.0.0.1:13031", tmp / "images")


def test_nginx_renders_the_settings(tmp_path):
    s = SREGISTRY_SHIPPED.changed(nginx={"sendfile": False, "aio": "threads", "access_log": False,
                                         "uwsgi_buffering": False}, app={"serve_mode": "accel"})
    text = render_nginx(s, _paths(tmp_path))
    for line in ["sendfile off;", "aio threads;", "access_log off;", "uwsgi_buffering off;",
                 "uwsgi_max_temp_file_size 10024m;", "uwsgi_pass 127.0.0.1:13031;", "internal;"]:
        assert line in text


def test_uwsgi_renders_lab_and_deploy():
    lab = render_uwsgi(SREGISTRY_SHIPPED, UwsgiPaths(socket=":3031", http_socket=":8000", pidfile="/p",
                                                     app_options=tuple(uwsgi_app_options("/c.json", "fileresponse", 4096))))
    assert "processes = 4\n" in lab and "socket-timeout = 120\n" in lab and "servelab-catalog = /c.json" in lab
    assert "module = labkit.registry.wsgi:application" in lab and "wsgi-disable-file-wrapper" not in lab
    it = render_uwsgi(SREGISTRY_SHIPPED.changed(app={"serve_mode": "fileresponse-iter"}), UwsgiPaths(
        socket=":3031", http_socket=":8000", pidfile="/p",
        app_options=tuple(uwsgi_app_options("/c.json", "fileresponse-iter", 4096))))
    assert "wsgi-disable-file-wrapper = true" in it
    dep = render_uwsgi(SREGISTRY_SHIPPED, UwsgiPaths(socket=":3031", deploy=True))
    assert "wsgi-file = shub/wsgi.py" in dep and "servelab" not in dep and "http-socket" not in dep


@pytest.mark.skipif(not shutil.which("nginx", path="/usr/sbin:/usr/bin"), reason="nginx not installed")
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_passes_nginx_t(name, tmp_path):
    if PRESETS[name].tls.enabled:      # the lab's TLS files, where lab_nginx_paths puts them
        write_server_files(tmp_path / "tls", ["127.0.0.1"], dhparam=PRESETS[name].tls.dhparam)
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx(PRESETS[name], _paths(tmp_path)))
    res = subprocess.run(["nginx", "-t", "-c", str(conf), "-e", str(tmp_path / "err.log")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_presets_render_to_their_golden_files():
    """tests/golden/ holds each preset's deployable configs; `python scripts/golden.py` rewrites them."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("golden", Path(__file__).parents[1] / "scripts" / "golden.py")
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    for name, text in golden.rendered().items():
        assert (golden.GOLDEN / name).read_text() == text, f"{name} differs from its golden file"
