"""Presets: whole settings for the serving path, each pinned to where its values come from."""
from __future__ import annotations

from .settings import AppSettings, LabSettings, NginxSettings, SettingsError, UwsgiSettings

# --- presets ---------------------------------------------------------------
# sregistry as shipped: singularityhub/sregistry nginx/nginx.conf (worker_processes 1,
# worker_connections 1024, sendfile on, access_log on, keepalive_timeout 65),
# nginx.conf (location / { uwsgi_pass uwsgi:3031; uwsgi_max_temp_file_size 10024m; }),
# uwsgi.ini (master, processes 1, threads 1, socket :3031, post-buffering, harakiri 20,
# max-requests 5000); nginx's own defaults for everything not set there.
SREGISTRY_SHIPPED = LabSettings(
    nginx=NginxSettings(uwsgi_max_temp_file_size="10024m"),
    uwsgi=UwsgiSettings(processes=1, threads=1, harakiri=20, max_requests=5000),
    app=AppSettings(serve_mode="stream", chunk_size=4096),
)

# The seed poster's tweaks (shared/seed/sregistry-serving-performance.txt):
# uwsgi processes=128 threads=1 socket-timeout=120 (no harakiri); nginx worker_processes 32,
# access_log off, worker_connections 2048, asynchronous IO on, sendfile off. Not modelled:
# http-timeout (no uwsgi http router here) and ignore-sigpipe / ignore-write-errors /
# disable-write-exception (they only quieten logs about clients that went away).
SEED_POSTER = SREGISTRY_SHIPPED.changed(
    nginx={"worker_processes": 32, "worker_connections": 2048, "access_log": False,
           "aio": "threads", "sendfile": False},
    uwsgi={"processes": 128, "threads": 1, "harakiri": 0, "socket_timeout": 120},
)

# What the lab's own one-knob-at-a-time sweep justifies (data/recorded/sweep-one-at-a-time-256MiB.csv,
# 256 MiB image, 5 parallel pulls, full path, MB/s single / aggregate):
#   serve_mode stream 194/323 -> file_wrapper 392/451 -> accel 1482/3109  (nginx sends the file)
#   publish    userland-proxy 1719/2786 -> dnat 3710/4127                  (no copy through docker-proxy)
#   sendfile   on 3206/4139 vs off 1941/1982                                (keep it on, as shipped)
# uwsgi processes 1/4/16, tcp_nopush, worker_processes, tcp_wmem moved results less than
# the run-to-run spread (~15%): left as shipped.
RECOMMENDED = SREGISTRY_SHIPPED.changed(app={"serve_mode": "accel"}, publish={"mode": "dnat"})

PRESETS: dict[str, LabSettings] = {
    "sregistry-shipped": SREGISTRY_SHIPPED,
    "seed-poster": SEED_POSTER,
    "recommended": RECOMMENDED,
}



def preset(name: str) -> LabSettings:
    try:
        return PRESETS[name]
    except KeyError:
        raise SettingsError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
