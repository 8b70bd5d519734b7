from pathlib import Path


from labkit.app import uwsgi_app_options
from labkit.config.render import UwsgiPaths, lab_nginx_paths, render_nginx, render_uwsgi
from labkit.config.presets import SREGISTRY_SHIPPED


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
    assert "module = labkit.app.wsgi:application" in lab and "wsgi-disable-file-wrapper" not in lab
    it = render_uwsgi(SREGISTRY_SHIPPED.changed(app={"serve_mode": "fileresponse-iter"}), UwsgiPaths(
        socket=":3031", http_socket=":8000", pidfile="/p",
        app_options=tuple(uwsgi_app_options("/c.json", "fileresponse-iter", 4096))))
    assert "wsgi-disable-file-wrapper = true" in it
    dep = render_uwsgi(SREGISTRY_SHIPPED, UwsgiPaths(socket=":3031", deploy=True))
    assert "wsgi-file = shub/wsgi.py" in dep and "servelab" not in dep and "http-socket" not in dep


def test_presets_render_to_their_golden_files():
    """tests/golden/ holds each preset's deployable configs; `python scripts/golden.py` rewrites them."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("golden", Path(__file__).parents[2] / "scripts" / "golden.py")
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    for name, text in golden.rendered().items():
        assert (golden.GOLDEN / name).read_text() == text, f"{name} differs from its golden file"
