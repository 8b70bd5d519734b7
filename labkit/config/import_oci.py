"""`labkit import` of an OCI registry's files: distribution's config.yml, Harbor's harbor.yml and the
nginx.conf Harbor generates. Pure: text in, entries in the Ledger out (labkit.config.importer reads the files).

The lab rebuilds sregistry's path (nginx -> uwsgi -> Django); an OCI registry's own process is not
part of it yet, so most of these files' directives are named and ignored, each with why. What maps
onto the lab's settings is modelled:

    harbor.yml   `https` (certificate, private_key) -> tls.enabled: Harbor's nginx terminates TLS (its
                 nginx.https.conf.jinja is rendered when https is set); `https.port`, else `http.port`
                 -> publish.host_port: Harbor's docker-compose publishes them to nginx's 8443 / 8080
                 (goharbor/harbor v2.15.2 @080b0220574cc853ae1e2946ce7a5610ba855757
                 make/photon/prepare/templates/docker_compose/docker-compose.yml.jinja lines 318, 320)
    nginx.conf   (Harbor's, from make/photon/prepare/templates/nginx/nginx.https.conf.jinja at the same tag)
                 worker_processes, worker_connections, sendfile, keepalive_timeout, access_log,
                 ssl_protocols, ssl_ciphers, ssl_prefer_server_ciphers, `listen ... ssl` -> nginx.* / tls.*;
                 the proxying to Harbor's core (upstream, proxy_*) is named, not modelled
    config.yml   distribution's (cmd/registry/config-example.yml and configuration/configuration.go at
                 v2.8.2 @7c354a4b40feeea21d7eeae4de91c8ff7951e672): nothing maps onto the lab's nginx or
                 uwsgi; every key is named with why (TLS in the Go process, storage drivers, redirects,
                 auth), and a key that is not one of configuration.go's top-level sections is a problem.
"""
from __future__ import annotations

from typing import Any

import yaml

from .directives import Ledger, Origin

# configuration.go at v2.8.2: the Configuration struct's yaml keys
DISTRIBUTION_KEYS = ("version", "log", "loglevel", "storage", "auth", "middleware", "reporting", "http",
                     "notifications", "redis", "health", "catalog", "proxy", "compatibility", "validation", "policy")
DISTRIBUTION_WHY = {
    "version": "the file format's version",
    "log": "the registry's own logging (not nginx's access_log)",
    "loglevel": "the registry's own logging",
    "storage.filesystem": "distribution reads blobs from its own storage driver; the lab's storage.* is the disk "
                          "under sregistry's files",
    "storage.s3": "blobs in S3: a pull is redirected to the bucket (the probe follows and names it); not in the lab",
    "storage.gcs": "blobs in GCS: a pull is redirected to the bucket; not in the lab",
    "storage.azure": "blobs in Azure: a pull is redirected to the container; not in the lab",
    "storage.redirect": "whether blob GETs are redirected to the storage backend: the probe shows it (each "
                        "layer's hops); the lab serves no redirect",
    "storage.cache": "distribution's blob descriptor cache (in memory or redis): not modelled",
    "storage.delete": "deletes: no pull goes through them",
    "storage.maintenance": "upload purging: no pull goes through it",
    "storage": "distribution's storage driver: not modelled",
    "auth.htpasswd": "Basic auth in the registry: the lab serves no auth; the probe speaks it (--user)",
    "auth.token": "a token service: the lab serves no auth; the probe fetches the token and times it",
    "auth.silly": "a test auth scheme: not modelled",
    "auth": "the registry's auth: not modelled",
    "http.tls": "TLS in the registry's Go process (crypto/tls): the lab's tls.* is nginx's",
    "http.addr": "the registry's own listen address: the lab's ports are nginx's and Docker's",
    "http.http2": "HTTP/2 in the registry's Go process: not modelled (the probe reads HTTP/1.x)",
    "http": "the registry's Go HTTP server: not modelled",
    "middleware": "a storage or registry middleware (e.g. cloudfront redirects): not modelled",
    "reporting": "error reporting: no pull goes through it",
    "notifications": "webhooks on pushes and pulls: not modelled",
    "redis": "distribution's redis cache: not modelled",
    "health": "health checks: no pull goes through them",
    "catalog": "the catalog endpoint: no pull goes through it",
    "proxy": "a pull-through cache of another registry: not modelled",
    "compatibility": "schema 1 compatibility: this client reads schema 2 and OCI only",
    "validation": "manifest validation on push: no pull goes through it",
    "policy": "repository policy: no pull goes through it",
}
HARBOR_WHY = {
    "hostname": "the name clients use: give it to the probe (https://HOSTNAME/project/repo:tag)",
    "http.port": "published to nginx's 8080 (see https.port when https is set)",
    "external_url": "Harbor behind another proxy: that proxy is not modelled",
    "harbor_admin_password": "a credential: not read further",
    "database": "Harbor's PostgreSQL: no blob byte goes through it",
    "external_database": "Harbor's PostgreSQL: no blob byte goes through it",
    "external_redis": "Harbor's redis: not modelled",
    "data_volume": "where the registry's storage lives on the host: the lab's storage.* describes its disk, give "
                   "it with --set storage....",
    "storage_service": "distribution's storage driver under Harbor: not modelled (S3 and the like redirect pulls; "
                       "the probe follows and names them)",
    "trivy": "the vulnerability scanner: no pull goes through it",
    "jobservice": "Harbor's job service: no pull goes through it",
    "notification": "webhooks: not modelled",
    "log": "Harbor's own logs: not nginx's access_log",
    "_version": "the file format's version",
    "proxy": "an outbound HTTP proxy for Harbor's components: not on the pull path",
    "metric": "Prometheus metrics: not on the pull path",
    "upload_purging": "upload purging: no pull goes through it",
    "cache": "Harbor core's redis cache of API answers: not modelled",
    "internal_tls": "TLS between Harbor's components: the lab's path has TLS at nginx only",
    "ip_family": "IPv4/IPv6 listening: the lab listens on IPv4",
    "uaa": "UAA auth: the probe speaks tokens whatever issues them",
    "core": "Harbor core's settings: not modelled",
    "redis": "Harbor's redis: not modelled",
    "registry": "distribution's settings under Harbor: not modelled",
}
NGINX_SETTINGS = {"worker_processes": "nginx.worker_processes", "worker_connections": "nginx.worker_connections",
                  "sendfile": "nginx.sendfile", "keepalive_timeout": "nginx.keepalive_timeout",
                  "ssl_protocols": "tls.protocols", "ssl_ciphers": "tls.ciphers",
                  "ssl_prefer_server_ciphers": "tls.prefer_server_ciphers"}
NGINX_WHY = {
    "upstream": "Harbor's nginx proxies to its core, portal and registry over HTTP; the lab's nginx passes to uwsgi",
    "server": "an upstream's server, or the server block: the lab has its own",
    "proxy_pass": "proxying to Harbor's core over HTTP: not modelled (the lab's nginx passes to uwsgi)",
    "location": "Harbor's routes (/, /v2/, /service/, /api/): the lab's pull path is its own",
    "map": "a variable map: not on the lab's path",
    "log_format": "the access log's format: only whether it is written is modelled",
    "ssl_certificate": "the certificate's file: the lab makes its own from its CA",
    "ssl_certificate_key": "the key's file: the lab makes its own",
    "ssl_session_cache": "TLS session reuse: not modelled (each probe pull makes a new connection)",
    "client_max_body_size": "uploads (Harbor sets 0 for image pushes): a pull sends no body",
    "chunked_transfer_encoding": "chunked responses: the probe reads them (http column); not modelled",
    "server_tokens": "the Server header: not on the pull path's cost",
    "include": "an include Harbor's prepare step fills: not followed",
    "pid": "nginx's pid file: not on the pull path",
    "use": "the event method (epoll on Linux, nginx's choice anyway): not modelled",
    "multi_accept": "accepting all new connections at once: not modelled",
    "tcp_nodelay": "nginx's default (on) for keep-alive connections: not modelled",
    "client_body_temp_path": "a temp path for request bodies: a pull sends none",
    "proxy_temp_path": "where proxied responses spill to disk: not modelled (the lab's nginx passes to uwsgi)",
    "fastcgi_temp_path": "an unused module's temp path",
    "uwsgi_temp_path": "a temp path: Harbor's nginx does not use uwsgi",
    "scgi_temp_path": "an unused module's temp path",
    "add_header": "a response header: not on the pull path's cost",
    "events": "the events block: its directives are read one by one",
    "http": "the http block: its directives are read one by one",
}


def _mapping(text: str, file: str, led: Ledger, what: str) -> Any:
    """The file's YAML mapping node, or None with the problem (not YAML, or not a mapping) on the ledger."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        led.problem(f"{file}:{mark.line + 1 if mark else 1}", f"not YAML: {getattr(exc, 'problem', exc)}")
        return None
    if root is not None and not isinstance(root, yaml.MappingNode):
        led.problem(f"{file}:1", f"{what} is a YAML mapping")
        return None
    return root


def _leaves(node, path: tuple = ()):
    """(dotted key, value as written, line) for every leaf of a YAML mapping; a list is one leaf."""
    if isinstance(node, yaml.MappingNode) and node.value:
        for k, v in node.value:
            yield from _leaves(v, (*path, str(k.value)))
    else:
        value = node.value if isinstance(node, yaml.ScalarNode) else "{}" if isinstance(node, yaml.MappingNode) else \
            ",".join(str(getattr(x, "value", "")) for x in node.value) if isinstance(node, yaml.SequenceNode) else ""
        yield ".".join(path), str(value), node.start_mark.line + 1


def _why(key: str, table: dict[str, str]) -> str | None:
    """The reason of the longest table key that is `key` or a prefix of it (by whole dotted parts)."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in table:
            return table[".".join(parts[:n])]
    return None


def read_distribution(text: str, file: str, led: Ledger) -> None:
    """distribution's config.yml: every key named (nothing maps onto the lab's nginx or uwsgi)."""
    root = _mapping(text, file, led, "distribution's configuration")
    if root is None:
        return
    for key, value, line in _leaves(root):
        o = Origin(file, line, key, value)
        if key.split(".")[0] not in DISTRIBUTION_KEYS:
            led.problem(o, f"not a key of distribution's configuration (configuration.go at v2.8.2 has "
                           f"{', '.join(DISTRIBUTION_KEYS)})")
            continue
        led.ignore(o, _why(key, DISTRIBUTION_WHY) or "not modelled")


def read_harbor(text: str, file: str, led: Ledger) -> None:
    """Harbor's harbor.yml: https -> tls.enabled, the published port -> publish.host_port, the rest named."""
    root = _mapping(text, file, led, "harbor.yml")
    if root is None:
        return
    leaves = list(_leaves(root))
    https = {k: (v, line) for k, v, line in leaves if k.startswith("https.")}
    for key, value, line in leaves:
        o = Origin(file, line, key, value)
        if key == "https.port":
            led.set(o, "publish.host_port", _int(value, o, led), "publish.host_port: Harbor publishes it to nginx's 8443")
        elif key == "http.port" and not https:
            led.set(o, "publish.host_port", _int(value, o, led), "publish.host_port: Harbor publishes it to nginx's 8080")
        elif key == "https.certificate":
            led.set(o, "tls.enabled", True, "tls.enabled = true: Harbor's nginx terminates TLS with it (the lab "
                                            "makes its own certificate)", together=True)
        elif key.startswith("https."):
            led.ignore(o, "the key's file: the lab makes its own" if key == "https.private_key" else "not modelled")
        else:
            led.ignore(o, _why(key, HARBOR_WHY) or "not a key harbor.yml.tmpl (v2.15.2) has: not modelled")


def _int(value: str, o: Origin, led: Ledger) -> Any:
    try:
        return int(value)
    except ValueError:
        led.problem(o, f"{value!r} is not a port number")
        return value


def read_harbor_nginx(stmts: list[dict], file: str, led: Ledger) -> None:
    """The nginx.conf Harbor generates (crossplane's statements): the lab's nginx and TLS settings it sets,
    every other directive named with why."""
    def walk(block: list[dict]) -> None:
        for st in block:
            d, args = st["directive"], st.get("args", [])
            o = Origin(file, st["line"], d, " ".join(args))
            if d in NGINX_SETTINGS:
                led.set(o, NGINX_SETTINGS[d], _nginx_value(d, args))
            elif d == "access_log":
                led.set(o, "nginx.access_log", args[:1] != ["off"])
            elif d == "listen" and "ssl" in args:
                led.set(o, "tls.enabled", True, "tls.enabled = true: this server terminates TLS", together=True)
            elif d == "listen":
                led.ignore(o, "nginx's port in Harbor's container: the lab's nginx listens on its own")
            else:
                led.ignore(o, NGINX_WHY.get(d) or ("a proxying directive toward Harbor's core: not modelled"
                                                   if d.startswith("proxy_") else "not modelled"))
            if d != "map":                  # a map's lines are its table, not directives
                walk(st.get("block", []))
    walk(stmts)


def _nginx_value(d: str, args: list[str]) -> Any:
    v = " ".join(args)
    if d in ("sendfile", "ssl_prefer_server_ciphers"):
        return v == "on"
    if d in ("worker_connections", "keepalive_timeout"):
        return int(v.rstrip("s")) if v.rstrip("s").isdigit() else v
    if d == "worker_processes":
        return int(v) if v.isdigit() else v
    return v.strip("'\"")
