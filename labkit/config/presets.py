"""Presets: whole settings for the serving path, each pinned to the files its values come from.

The sregistry presets come from singularityhub/sregistry (below); `distribution-2.8` and `harbor-front`
(registry.kind "distribution") from distribution/distribution and goharbor/harbor at the tags named.

Every value below was read from singularityhub/sregistry at the commit named (the files
`uwsgi.ini`, `nginx.conf` = the server block mounted as conf.d/default.conf, and
`nginx/nginx.conf` = the main config baked into sregistry's nginx image); whatever a file does
not set stays at the program's default. `tests/unit/test_presets.py` holds the upstream directives
as data and checks the rendered files against them, directive by directive.

Not modelled, in every preset: nginx's `/upload` location (it needs nginx-upload-module, which
sregistry compiles into its image and Debian's nginx does not have; it serves uploads, not
pulls) and `/static` in the lab (no static files there; the bundle keeps it).
"""
from __future__ import annotations

from dataclasses import dataclass

from .settings import (AppSettings, ClientSettings, LabSettings, NginxSettings, RegistrySettings, SettingsError, TlsSettings,
                       UwsgiSettings)

SREGISTRY = "singularityhub/sregistry"


@dataclass(frozen=True)
class Provenance:
    repo: str
    commit: str
    files: tuple[str, ...]
    note: str
    tag: str | None = None                   # the release tag the commit is, if any
    also: tuple["Provenance", ...] = ()      # further files, from another repository or commit

    def __str__(self) -> str:
        at = f"{self.tag} = {self.commit[:10]}" if self.tag else self.commit[:10]
        return f"{self.repo} at {at} ({', '.join(self.files)}): {self.note}" + "".join(f"; {a}" for a in self.also)


_FILES = ("uwsgi.ini", "nginx.conf", "nginx/nginx.conf")
_HTTPS_FILES = ("uwsgi.ini", "https/nginx.conf.https", "nginx/nginx.conf", "https/docker-compose.yml")

# 0d1274df (2018-10-25), the version current when the seed was written. uwsgi.ini as changed in
# d037140 ("updating uwsgi to handle downloads"); nginx.conf and nginx/nginx.conf as in 7d14e170.
_NGINX_2018 = NginxSettings(worker_processes=1, worker_connections=1024, sendfile=True, access_log=True,
                            keepalive_timeout=65, uwsgi_max_temp_file_size="10024m",
                            client_max_body_size="8000m", client_body_buffer_size="8000m",
                            client_body_timeout=120, cors_headers=True)
SREGISTRY_2018_10 = LabSettings(
    nginx=_NGINX_2018,
    uwsgi=UwsgiSettings(processes=4, threads=4, post_buffering="true", log_date=True, max_requests=5000,
                        http_timeout=3600000, socket_timeout=120, ignore_sigpipe=True,
                        ignore_write_errors=True, disable_write_exception=True),
    app=AppSettings(serve_mode="fileresponse"),
)

# 7d14e170 (2018-09-01), the parent of d037140: one process, one thread; harakiri already
# removed by bf1e505 (2018-02, "No Harakiri").
SREGISTRY_2018_EARLY = LabSettings(
    nginx=_NGINX_2018,
    uwsgi=UwsgiSettings(processes=1, threads=1, post_buffering="true", log_date=True, max_requests=5000),
    app=AppSettings(serve_mode="fileresponse"),
)

# master 10fc5d5a (2024-07-02): uwsgi.ini unchanged since d037140; the server block allows 10024M
# bodies (and adds a `deny all` location for .php/.asp URLs, not modelled: no pull goes there).
SREGISTRY_CURRENT = SREGISTRY_2018_10.changed(
    nginx={"client_max_body_size": "10024m", "client_body_buffer_size": "10024m",
           "http_client_max_body_size": "8000m"})

# The seed poster's changes (shared/seed/sregistry-serving-performance.txt) on top of 2018-10:
# uwsgi processes 128, threads 1 (http-timeout, socket-timeout and the ignore-* options he lists
# are 2018-10's own); nginx worker_processes 32, access log off, worker_connections 2048,
# "asynchronous IO" (`aio threads`: Debian's nginx has no file AIO, `aio on` fails its -t), sendfile off.
SEED_POSTER = SREGISTRY_2018_10.changed(
    nginx={"worker_processes": 32, "worker_connections": 2048, "access_log": False, "aio": "threads",
           "sendfile": False},
    uwsgi={"processes": 128, "threads": 1},
)

# What the lab's own one-knob-at-a-time sweep from sregistry-2018-10 keeps, on the faithful publish path
# (Docker's defaults: iptables on, so a compute node's pull is DNATed; docker-proxy carries none of it).
# 256 MiB, 5 parallel, full path, each trial 3 repeats; MB/s one pull / 5 together, median (slowest-fastest);
# data/recorded/sweep-from-2018-10-256MiB.csv, made by
#   labkit sweep --preset sregistry-2018-10 --image-mib 256 --parallel 5 --repeats 3
#     --knob app.serve_mode=fileresponse,fileresponse-iter,accel,nginx-alias --knob publish.userland_proxy=true,false
#     --knob publish.iptables=true,false --knob nginx.sendfile=on,off --knob uwsgi.processes=4,16
# (63 s wall, on a machine shared with other work):
#   serve mode  fileresponse 453 (427-473) / 295 (279-318), fileresponse-iter 203 / 359 -> nginx sends the file:
#               accel 1838 (1653-1878) / 3183 (2466-3435), nginx-alias 2171 (1649-2542) / 3222 (2457-3455);
#               these two overlap, so accel is kept: the view still checks the request before nginx sends
#               (sregistry's private collections need that)
#   userland-proxy  true 2046 (1970-2208) / 3209 (2945-3216), false 1787 (1774-2060) / 2795 (2308-3145):
#               no gain for a compute node (its pull is DNATed either way), so the bundle does not offer it
#   iptables    true 1802 / 2823, false (docker-proxy copies every byte) 1369 (1276-1633) / 2103: keep Docker's default
#   sendfile on 2184 / 3322 vs off 1454 / 1613 (keep it on); uwsgi processes 4 vs 16 within the spread (kept at 4).
RECOMMENDED = SREGISTRY_2018_10.changed(app={"serve_mode": "accel"})

# 0d1274df's HTTPS setup, which its docs recommend (docs/pages/install/server.md "SSL": use the
# docker-compose.yml and nginx.conf in https/): https/nginx.conf.https keeps the plain server block on 80
# and adds one on 443 with `ssl on`, the certificate files from the host's /etc/ssl (https/docker-compose.yml
# mounts /etc/ssl/certs and /etc/ssl/private, publishes "443:443"), ssl_session_timeout 5m, ssl_protocols
# TLSv1 TLSv1.1 TLSv1.2, the cipher list below (AES-256-GCM first), ssl_session_cache shared:SSL:50m,
# ssl_dhparam /etc/ssl/certs/dhparam.pem, ssl_prefer_server_ciphers on. nginx/nginx.conf is unchanged.
SREGISTRY_2018_10_CIPHERS = ("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
                             "ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA:"
                             "ECDHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA")
_TLS_2018 = {"enabled": True, "port": 443, "protocols": "TLSv1 TLSv1.1 TLSv1.2", "ciphers": SREGISTRY_2018_10_CIPHERS,
             "prefer_server_ciphers": True, "session_cache": "shared:SSL:50m", "session_timeout": "5m",
             "dhparam": True}
SREGISTRY_2018_10_HTTPS = SREGISTRY_2018_10.changed(tls=_TLS_2018)
# The same HTTPS setup on the original one process x one thread: https/nginx.conf.https and
# https/docker-compose.yml are the same files at 7d14e170 as at 0d1274df (git diff: no change).
SREGISTRY_2018_EARLY_HTTPS = SREGISTRY_2018_EARLY.changed(tls=_TLS_2018)
# The seed poster's changes on the HTTPS setup (the setting in force for his 40-pull observation).
SEED_POSTER_HTTPS = SEED_POSTER.changed(tls=_TLS_2018)

# --- today's registries: an OCI registry (distribution, registry.kind "distribution") behind nginx --------------
DISTRIBUTION, HARBOR = "distribution/distribution", "goharbor/harbor"
DISTRIBUTION_V2_8_2 = "7c354a4b40feeea21d7eeae4de91c8ff7951e672"      # tag v2.8.2 (Debian 12's docker-registry 2.8.2)
DISTRIBUTION_RECIPE = "0d6b721dc3ceacb5d678c25b718b2f40a507c2d8"      # master; the recipe last changed in dbca4995
HARBOR_V2_15_2 = "080b0220574cc853ae1e2946ce7a5610ba855757"           # tag v2.15.2
HARBOR_NGINX = "make/photon/prepare/templates/nginx/nginx.https.conf.jinja"

# distribution v2.8.2's cmd/registry/config-example.yml (storage.cache.blobdescriptor inmemory, the filesystem
# driver, http.addr :5000, X-Content-Type-Options nosniff, health.storagedriver every 10s, threshold 3: the
# registry group's defaults; its auth htpasswd section is not modelled) behind nginx as distribution's nginx
# recipe fronts it (docs/content/recipes/nginx.md; v2.8.2's docs have no recipe): main config sets only
# `events { worker_connections 1024; }`; the server `listen 443 ssl`, ssl_protocols TLSv1.1 TLSv1.2, ssl_ciphers
# 'EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH', ssl_prefer_server_ciphers on, ssl_session_cache
# shared:SSL:10m, client_max_body_size 0, chunked_transfer_encoding on (nginx's default), location /v2/ with
# proxy_pass, the four proxy_set_header lines and proxy_read_timeout 900. Buffering is left at nginx's
# default: on, responses spooled to temp files up to proxy_max_temp_file_size 1024m. Everything else is nginx's
# default (sendfile off, keepalive_timeout 75, worker_processes 1). The compute node pulls with labkit's own OCI
# client (client.kind "oci": manifest, config, every layer 6 at once as containers/image, each checked by digest).
_OCI_NGINX_DEFAULTS = {"sendfile": False, "keepalive_timeout": 75, "client_max_body_size": "0"}
DISTRIBUTION_2_8 = LabSettings(
    registry=RegistrySettings(kind="distribution"), client=ClientSettings(kind="oci"),
    nginx=NginxSettings(worker_processes=1, worker_connections=1024, proxy_read_timeout=900, **_OCI_NGINX_DEFAULTS),
    tls=TlsSettings(enabled=True, port=443, protocols="TLSv1.1 TLSv1.2",
                    ciphers="EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH", prefer_server_ciphers=True,
                    session_cache="shared:SSL:10m"),
)
# Harbor's nginx in front (v2.15.2's nginx.https.conf.jinja, internal TLS off, strong_ssl_ciphers off):
# worker_processes auto, worker_connections 3096, proxy_http_version 1.1 (http level), ssl_protocols TLSv1.2
# TLSv1.3, its cipher list, ssl_prefer_server_ciphers on, ssl_session_cache shared:SSL:10m, client_max_body_size
# 0, and on /v2/: proxy_buffering off, proxy_request_buffering off, proxy_send_timeout 900, proxy_read_timeout
# 900. In the lab nginx proxies /v2/ to distribution directly (Harbor's core, between them, is not modelled;
# nor its `use epoll; multi_accept on;`, its timed_combined log format, its add_header lines or its map of
# X-Forwarded-Proto). The registry behind it is distribution-2.8's.
HARBOR_FRONT = DISTRIBUTION_2_8.changed(
    nginx={"worker_processes": "auto", "worker_connections": 3096, "proxy_http_version": "1.1",
           "proxy_buffering": False, "proxy_request_buffering": False, "proxy_send_timeout": 900},
    tls={"protocols": "TLSv1.2 TLSv1.3", "ciphers": "!aNULL:kECDH+AESGCM:ECDH+AESGCM:RSA+AESGCM:kECDH+AES:ECDH+AES:RSA+AES:"},
)

PRESETS: dict[str, LabSettings] = {
    "sregistry-2018-10": SREGISTRY_2018_10,
    "sregistry-2018-early": SREGISTRY_2018_EARLY,
    "sregistry-current": SREGISTRY_CURRENT,
    "seed-poster": SEED_POSTER,
    "recommended": RECOMMENDED,
    "sregistry-2018-10-https": SREGISTRY_2018_10_HTTPS,
    "sregistry-2018-early-https": SREGISTRY_2018_EARLY_HTTPS,
    "seed-poster-https": SEED_POSTER_HTTPS,
    "distribution-2.8": DISTRIBUTION_2_8,
    "harbor-front": HARBOR_FRONT,
}

PROVENANCE: dict[str, Provenance] = {
    "sregistry-2018-10": Provenance(SREGISTRY, "0d1274df475696e1b6a65b9b1adc85558cffbd24", _FILES,
                                    "the release current when the seed was written (uwsgi.ini from d037140)"),
    "sregistry-2018-early": Provenance(SREGISTRY, "7d14e170108abebd617c3e4742f6fa1c178c7093", _FILES,
                                       "before d037140: uwsgi 1 process x 1 thread, harakiri gone since bf1e505"),
    "sregistry-current": Provenance(SREGISTRY, "10fc5d5a56711543f52646e8bce66a5995600d1b", _FILES,
                                    "master, 2024-07-02"),
    "seed-poster": Provenance(SREGISTRY, "0d1274df475696e1b6a65b9b1adc85558cffbd24", _FILES,
                              "2018-10 plus the changes listed in shared/seed/sregistry-serving-performance.txt"),
    "recommended": Provenance(SREGISTRY, "0d1274df475696e1b6a65b9b1adc85558cffbd24", _FILES,
                              "2018-10 plus what the lab's sweep keeps: X-Accel-Redirect (published as Docker's "
                              "defaults: the sweep measured no gain from userland-proxy false for compute nodes)"),
    "sregistry-2018-10-https": Provenance(SREGISTRY, "0d1274df475696e1b6a65b9b1adc85558cffbd24", _HTTPS_FILES,
                                          "the HTTPS setup its docs recommend: the plain block plus TLS on 443 "
                                          "(AES-256-GCM first, server's order)"),
    "sregistry-2018-early-https": Provenance(SREGISTRY, "7d14e170108abebd617c3e4742f6fa1c178c7093", _HTTPS_FILES,
                                             "the HTTPS setup on the original 1 process x 1 thread (its https/ "
                                             "files are 0d1274df's)"),
    "seed-poster-https": Provenance(SREGISTRY, "0d1274df475696e1b6a65b9b1adc85558cffbd24", _HTTPS_FILES,
                                    "the HTTPS setup plus the changes listed in shared/seed/sregistry-serving-performance.txt"),
    "distribution-2.8": Provenance(
        DISTRIBUTION, DISTRIBUTION_V2_8_2, ("cmd/registry/config-example.yml",),
        "the registry's shipped config (Debian 12's docker-registry 2.8.2)", tag="v2.8.2",
        also=(Provenance(DISTRIBUTION, DISTRIBUTION_RECIPE, ("docs/content/recipes/nginx.md",),
                         "nginx as distribution's own recipe fronts it (TLS on 443, /v2/ proxied, buffering on)"),)),
    "harbor-front": Provenance(
        HARBOR, HARBOR_V2_15_2, (HARBOR_NGINX,),
        "Harbor's nginx in front (/v2/: proxy_buffering off, proxy_request_buffering off, 900 s timeouts)",
        tag="v2.15.2",
        also=(Provenance(DISTRIBUTION, DISTRIBUTION_V2_8_2, ("cmd/registry/config-example.yml",),
                         "the registry behind it", tag="v2.8.2"),)),
}

# Old names that still work, each pointing at a preset above.
ALIASES = {"sregistry-shipped": "sregistry-2018-10"}
SREGISTRY_SHIPPED = SREGISTRY_2018_10   # the base the bundle's "what changed" table compares with


def preset(name: str) -> LabSettings:
    try:
        return PRESETS[ALIASES.get(name, name)]
    except KeyError:
        raise SettingsError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)} "
                            f"(aliases: {', '.join(f'{a} = {b}' for a, b in ALIASES.items())})") from None
