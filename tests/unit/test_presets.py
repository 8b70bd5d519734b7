"""Each preset's rendered nginx.conf, nginx/nginx.conf and uwsgi.ini against the upstream files at its commit.

The upstream directives are data here, read from singularityhub/sregistry at the commits the
presets name (labkit.config.presets.PROVENANCE). Every upstream directive must be in the
rendered file with the same value, and the rendered file may hold nothing upstream does not,
except what NOT_MODELLED / EXTRA below list with the reason.
"""
from collections import Counter

import crossplane
import pytest

from labkit.bundle.export import DEPLOY_NGINX, DEPLOY_UWSGI
from labkit.config.presets import ALIASES, PRESETS, PROVENANCE, preset
from labkit.config.render import render_nginx, render_nginx_server, render_uwsgi

# uwsgi.ini at 0d1274df (blob 697157c3, from d037140; the same at master 10fc5d5a)
UWSGI_2018_10 = [("master", "true"), ("processes", "4"), ("threads", "4"), ("socket", ":3031"),
                 ("chdir", "/code/"), ("post-buffering", "true"), ("log-date", "true"), ("max-requests", "5000"),
                 ("http-timeout", "3600000"), ("socket-timeout", "120"), ("wsgi-file", "shub/wsgi.py"),
                 ("ignore-sigpipe", "true"), ("ignore-write-errors", "true"), ("disable-write-exception", "true")]
# uwsgi.ini at 7d14e170, the parent of d037140 (blob 92e1eab7, as since bf1e505)
UWSGI_2018_EARLY = [("master", "true"), ("processes", "1"), ("threads", "1"), ("socket", ":3031"),
                    ("chdir", "/code/"), ("post-buffering", "true"), ("log-date", "true"), ("max-requests", "5000"),
                    ("wsgi-file", "shub/wsgi.py")]

# nginx/nginx.conf at 0d1274df and 7d14e170 (blob 8f66c5c5); master adds client_max_body_size in http
_LOG_FORMAT = ("main", "$remote_addr - $remote_user [$time_local] \"$request\" ",
               "$status $body_bytes_sent \"$http_referer\" ", "\"$http_user_agent\" \"$http_x_forwarded_for\"")
MAIN_2018 = [((), "user", ("nginx",)), ((), "worker_processes", ("1",)),
             ((), "error_log", ("/var/log/nginx/error.log", "warn")), ((), "pid", ("/var/run/nginx.pid",)),
             (("events",), "worker_connections", ("1024",)),
             (("http",), "include", ("/etc/nginx/mime.types",)), (("http",), "default_type", ("application/octet-stream",)),
             (("http",), "log_format", _LOG_FORMAT), (("http",), "access_log", ("/var/log/nginx/access.log", "main")),
             (("http",), "sendfile", ("on",)), (("http",), "keepalive_timeout", ("65",)),
             (("http",), "include", ("/etc/nginx/conf.d/*.conf",))]
MAIN_CURRENT = [*MAIN_2018, (("http",), "client_max_body_size", ("8000M",))]

# nginx.conf (the server block) at 0d1274df and 7d14e170 (blob 833c2d31)
_CORS = [(("server",), "add_header", a) for a in (
    ("X-Clacks-Overhead", "GNU Terry Pratchett"), ("X-Clacks-Overhead", "GNU Terry Pratchet"),
    ("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Authorization,DNT,X-CustomHeader,Keep-Alive,User-Agent,X-Requested-With,"
                                     "If-Modified-Since,Cache-Control,Content-Type"))]
_LOCATIONS = [(("server", "location /images"), "alias", ("/var/www/images",)),
              (("server", "location /"), "include", ("/etc/nginx/uwsgi_params.par",)),
              (("server", "location /"), "uwsgi_pass", ("uwsgi:3031",)),
              (("server", "location /"), "uwsgi_max_temp_file_size", ("10024m",)),
              (("server", "location /static"), "alias", ("/var/www/static",))]


def _server(body_size: str):
    return [(("server",), "listen", ("*:80",)), (("server",), "server_name", ("localhost",)),
            (("server",), "client_max_body_size", (body_size,)), (("server",), "client_body_buffer_size", (body_size,)),
            (("server",), "client_body_timeout", ("120",)), *_CORS, *_LOCATIONS]


SERVER_2018 = _server("8000M")
SERVER_CURRENT = _server("10024M")

# https/nginx.conf.https at 0d1274df (blob of that commit): the plain block above, then a server on 443
# (no add_header, no client_body_timeout there), as listed in the file
_TLS_CIPHERS = ("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
                "ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:"
                "DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA")
SERVER_2018_HTTPS = [*SERVER_2018,
                     (("server",), "listen", ("443",)), (("server",), "server_name", ("localhost",)),
                     (("server",), "root", ("html",)),
                     (("server",), "client_max_body_size", ("8000M",)), (("server",), "client_body_buffer_size", ("8000M",)),
                     (("server",), "ssl", ("on",)),
                     (("server",), "ssl_certificate", ("/etc/ssl/certs/chained.pem",)),
                     (("server",), "ssl_certificate_key", ("/etc/ssl/private/domain.key",)),
                     (("server",), "ssl_session_timeout", ("5m",)),
                     (("server",), "ssl_protocols", ("TLSv1", "TLSv1.1", "TLSv1.2")),
                     (("server",), "ssl_ciphers", (_TLS_CIPHERS,)),
                     (("server",), "ssl_session_cache", ("shared:SSL:50m",)),
                     (("server",), "ssl_dhparam", ("/etc/ssl/certs/dhparam.pem",)),
                     (("server",), "ssl_prefer_server_ciphers", ("on",)),
                     *_LOCATIONS]

UPSTREAM = {  # preset: (uwsgi.ini, nginx/nginx.conf, nginx.conf)
    "sregistry-2018-10": (UWSGI_2018_10, MAIN_2018, SERVER_2018),
    "sregistry-2018-early": (UWSGI_2018_EARLY, MAIN_2018, SERVER_2018),
    "sregistry-current": (UWSGI_2018_10, MAIN_CURRENT, SERVER_CURRENT),
    "sregistry-2018-10-https": (UWSGI_2018_10, MAIN_2018, SERVER_2018_HTTPS),
    "sregistry-2018-early-https": (UWSGI_2018_EARLY, MAIN_2018, SERVER_2018_HTTPS),   # https/ unchanged 7d14e170..0d1274df
}
# Upstream directives the rendered files leave out, and why.
NOT_MODELLED = {
    "location /upload": "needs nginx-upload-module (compiled into sregistry's image, not in Debian's nginx); uploads only",
    "location ~* \\.(php|aspx|myadmin|asp)$": "master's deny-all for probing URLs; no pull goes there",
    "root html": "the 443 block's document root: nothing under it is served (every location names its own)",
}
# Upstream spellings nginx 1.22 writes differently: `ssl on` (gone in nginx 1.25.1) is `listen ... ssl`.
SPELLED = {((("server",), "listen", ("443",)), (("server",), "ssl", ("on",))): (("server",), "listen", ("443", "ssl"))}


def _modelled(directives: list) -> Counter:
    """Upstream's directives as the renderer spells them, without what NOT_MODELLED lists by name."""
    c = Counter(d for d in directives if f"{d[1]} {' '.join(d[2])}" not in NOT_MODELLED)
    for olds, new in SPELLED.items():
        if all(c[o] for o in olds):
            for o in olds:
                c[o] -= 1
            c[new] += 1
    return +c


def uwsgi_directives(text: str) -> Counter:
    lines = [ln.strip() for ln in text.splitlines()]
    return Counter(tuple(part.strip() for part in ln.split("=", 1)) for ln in lines
                   if ln and not ln.startswith(("#", "[")))


def nginx_directives(text: str, tmp_path, name: str) -> Counter:
    f = tmp_path / name.replace("/", "-")
    f.write_text(text)
    parsed = crossplane.parse(str(f), single=True, check_ctx=False, check_args=False, comments=False)
    assert parsed["status"] == "ok", parsed["errors"]
    out = Counter()

    def walk(block, ctx):
        for d in block:
            if "block" in d:
                label = d["directive"] if not d["args"] else f"{d['directive']} {' '.join(d['args'])}"
                walk(d["block"], (*ctx, label))
            else:
                out[(ctx, d["directive"], tuple(d["args"]))] += 1
    walk(parsed["config"][0]["parsed"], ())
    return out


def _norm(c: Counter) -> Counter:
    """nginx sizes are case-insensitive (8000M = 8000m)."""
    return Counter({(ctx, d, tuple(a.lower() if d.startswith("client_") or d.endswith("_size") else a for a in args)): n
                    for (ctx, d, args), n in c.items()})


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_rendered_uwsgi_ini_has_upstreams_directives_and_values(name):
    ours = uwsgi_directives(render_uwsgi(PRESETS[name], DEPLOY_UWSGI))
    assert ours == Counter(UPSTREAM[name][0]), (name, ours - Counter(UPSTREAM[name][0]),
                                                Counter(UPSTREAM[name][0]) - ours)


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_rendered_nginx_configs_have_upstreams_directives_and_values(name, tmp_path):
    s = PRESETS[name]
    main = _norm(nginx_directives(render_nginx(s, DEPLOY_NGINX), tmp_path, "nginx/nginx.conf"))
    server = _norm(nginx_directives(render_nginx_server(s, DEPLOY_NGINX), tmp_path, "nginx.conf"))
    want_main, want_server = _norm(Counter(UPSTREAM[name][1])), _norm(_modelled(UPSTREAM[name][2]))
    assert main == want_main, (name, "extra", main - want_main, "missing", want_main - main)
    assert server == want_server, (name, "extra", server - want_server, "missing", want_server - server)


def test_every_preset_says_where_it_comes_from():
    assert set(PROVENANCE) == set(PRESETS)
    for name, p in PROVENANCE.items():
        assert p.repo in ("singularityhub/sregistry", "distribution/distribution", "goharbor/harbor") \
            and len(p.commit) == 40 and p.files, name
    # the OCI registry's presets are checked against their upstream files in test_oci_registry.py
    assert set(UPSTREAM) | {"seed-poster", "recommended", "seed-poster-https", "distribution-2.8",
                            "harbor-front"} == set(PRESETS)


def test_the_old_name_is_an_alias_that_says_what_it_points_to():
    assert ALIASES["sregistry-shipped"] == "sregistry-2018-10"
    assert preset("sregistry-shipped") is PRESETS["sregistry-2018-10"]
    with pytest.raises(ValueError, match="sregistry-shipped = sregistry-2018-10"):
        preset("sregistry-1999")


def test_the_seed_posters_changes_are_exactly_the_ones_he_lists():
    base, seed = PRESETS["sregistry-2018-10"], PRESETS["seed-poster"]
    diff = {f"{g}.{f}": getattr(getattr(seed, g), f) for g in ("nginx", "uwsgi")
            for f in type(getattr(seed, g)).model_fields
            if getattr(getattr(seed, g), f) != getattr(getattr(base, g), f)}
    assert diff == {"uwsgi.processes": 128, "uwsgi.threads": 1, "nginx.worker_processes": 32,
                    "nginx.access_log": False, "nginx.worker_connections": 2048, "nginx.aio": "threads",
                    "nginx.sendfile": False}
    ini = render_uwsgi(seed, DEPLOY_UWSGI)
    for line in ("http-timeout = 3600000", "socket-timeout = 120", "ignore-sigpipe = true",
                 "ignore-write-errors = true", "disable-write-exception = true"):
        assert line in ini


def test_the_https_seed_poster_is_the_seed_poster_on_the_https_setup():
    https, seed = PRESETS["sregistry-2018-10-https"], PRESETS["seed-poster-https"]
    assert seed.tls == https.tls and seed.nginx == PRESETS["seed-poster"].nginx
    assert seed.uwsgi == PRESETS["seed-poster"].uwsgi and https.changed(tls={"enabled": False}).tls.enabled is False
    assert https.model_dump(exclude={"tls"}) == PRESETS["sregistry-2018-10"].model_dump(exclude={"tls"})
