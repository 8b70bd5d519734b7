"""nginx's directives (labkit.config.nginx_tree) mapped onto NginxSettings, the way nginx applies them (pure).

The settings that matter are the ones in force where a pull goes: nginx picks the server block
that passes to uwsgi and, in it, the location the download URL lands in (nginx's own rule:
`=`, then the longest prefix, `^~`, then regexes in order). A directive counts at http, that
server, or that location, the innermost winning (nginx's inheritance); the same directive twice
in one block is an error, as `nginx -t` says. Everything else is listed as ignored, with why.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .directives import Ledger
from .nginx_tree import THIRD_PARTY, Item, Tree

# sregistry's download URL (shub/apps/main/urls/containers.py line 41 at 0d1274df)
DOWNLOAD_URI = "/containers/1/download/secret"
DOWNLOAD = "GET /containers/<id>/download/<secret>"
LEVELS = ("http", "server", "location")

# directive -> setting, for those nginx inherits http -> server -> location
CHAIN = {"sendfile": "nginx.sendfile", "tcp_nopush": "nginx.tcp_nopush", "aio": "nginx.aio",
         "directio": "nginx.directio", "output_buffers": "nginx.output_buffers",
         "sendfile_max_chunk": "nginx.sendfile_max_chunk", "uwsgi_buffering": "nginx.uwsgi_buffering",
         "uwsgi_buffer_size": "nginx.uwsgi_buffer_size", "uwsgi_buffers": "nginx.uwsgi_buffers",
         "uwsgi_max_temp_file_size": "nginx.uwsgi_max_temp_file_size", "access_log": "nginx.access_log",
         "keepalive_timeout": "nginx.keepalive_timeout", "client_body_buffer_size": "nginx.client_body_buffer_size",
         "client_body_timeout": "nginx.client_body_timeout"}
MULTI = {"access_log", "add_header", "include", "uwsgi_param", "listen", "server_name", "error_page"}
# sregistry's six response headers (nginx.conf lines 9-14 at 0d1274df): nginx.cors_headers
CORS = {("X-Clacks-Overhead", "GNU Terry Pratchett"), ("X-Clacks-Overhead", "GNU Terry Pratchet"),
        ("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
        ("Access-Control-Allow-Headers", "Authorization,DNT,X-CustomHeader,Keep-Alive,User-Agent,"
                                         "X-Requested-With,If-Modified-Since,Cache-Control,Content-Type")}
STRUCTURE = {
    "user": "the lab's nginx runs as root in its namespace (the bundle writes `user nginx`)",
    "pid": "the lab's nginx keeps its pid file in its run directory",
    "error_log": "the lab's nginx logs errors to its run directory",
    "events": "the events block", "http": "the http block",
    "server_name": "the lab's server block answers every name (server_name localhost)",
    "uwsgi_param": "the lab passes Debian's uwsgi_params (and HTTP_HOST with its port) to its uwsgi",
    "default_type": "the lab writes the same default_type",
    "log_format": "the lab writes sregistry's `main` log format",
}
REASONS = {
    "uwsgi_read_timeout": "how long nginx waits on uwsgi between reads (default 60 s): not modelled, the lab "
                          "uses nginx's default",
    "uwsgi_send_timeout": "not modelled, the lab uses nginx's default (60 s)",
    "uwsgi_connect_timeout": "not modelled, the lab uses nginx's default (60 s)",
    "uwsgi_temp_path": "where nginx spools a buffered response: the lab's run directory (sregistry's: the "
                       "container's own filesystem)",
    "worker_rlimit_nofile": "the open-file limit of the workers: the lab's comes from its own limits, the "
                            "bundle's from worker_connections",
    "tcp_nodelay": "on by default; it matters for small writes on keep-alive connections, not for a pull",
    "gzip": "compresses text types (gzip_types); the image is application/img, not compressed",
    "client_max_body_size": "a body-size limit per location: uploads only",
    "limit_rate": "a per-connection rate limit: not modelled (the lab has none); it would cap every pull",
}
GENERIC = "a directive labkit's settings do not model: the lab runs nginx's default for it"

# TLS (sregistry's https/nginx.conf.https): the ssl_* directives of the https server block that pulls
# reach, at that server or in http (nginx's inheritance), as tls.* settings
SSL = {"ssl_protocols": "tls.protocols", "ssl_ciphers": "tls.ciphers", "ssl_prefer_server_ciphers":
       "tls.prefer_server_ciphers", "ssl_session_cache": "tls.session_cache", "ssl_session_timeout":
       "tls.session_timeout", "ssl_buffer_size": "tls.buffer_size", "ssl_conf_command": "tls.conf_command",
       "ssl_dhparam": "tls.dhparam"}
CERT_FILES = {"ssl_certificate", "ssl_certificate_key", "ssl_trusted_certificate", "ssl_client_certificate"}


@dataclass
class NginxFacts:
    """What the rest of the import needs from nginx: which host uwsgi_pass names, which port pulls arrive on."""
    uwsgi_host: str | None = None
    listen_port: int | None = None
    tls_port: int | None = None                       # the https server's port (tls.enabled), if any
    tls_server: int | None = None                     # and its server block
    cert_files: dict[str, str] = field(default_factory=dict)   # ssl_certificate(_key) -> the path written (never read)


def read_nginx(tree: Tree, led: Ledger) -> NginxFacts:
    """Every directive of `tree` into `led`: a setting, the lab's own structure, or ignored with why."""
    facts = NginxFacts()
    pull_server, pull_loc = _pull_target(tree, led)
    if pull_loc is not None:
        facts.uwsgi_host = _uwsgi_host(tree, pull_loc)
        facts.listen_port = _listen_port(tree, pull_server)
    _duplicates(tree, led)
    tls_items = _tls(tree, pull_server, led, facts)
    chain: list[Item] = []
    for it in tree.items:
        where = _where(it, pull_server, pull_loc)
        if it.directive == "include" or any(it is t for t in tls_items):
            continue                        # recorded where it was followed (nginx_tree), or by _tls
        if where in LEVELS and it.directive in CHAIN:
            chain.append(it)
        elif where != "off path":
            _structural(it, where, pull_server, pull_loc, led)
        else:
            _off_path(it, pull_server, pull_loc, led, facts.tls_server)
    for it in sorted(chain, key=lambda i: LEVELS.index(_where(i, pull_server, pull_loc))):
        _chain(it, _where(it, pull_server, pull_loc), led)
    _cors(tree, pull_server, led)
    return facts


def _where(it: Item, server: int | None, loc: Item | None) -> str:
    """main / events / http / server / location when the pull sees it, else 'off path'."""
    if it.directive == "server" and it.level == "http":     # the block itself
        return "server" if it.server == server else "off path"
    if it.level in ("main", "events", "http"):
        return it.level
    if it.server is None or it.server != server:
        return "off path"
    if it.level == "server":
        return "server"
    if it.level == "location" and it.location is loc:
        return "location"
    return "off path"


# --- where a pull goes ---------------------------------------------------------
def _pull_target(tree: Tree, led: Ledger) -> tuple[int | None, Item | None]:
    """The server block and location the download URL reaches: the first server whose location for it has uwsgi_pass."""
    landed = []
    for s in range(tree.servers):
        loc = match_location([i for i in tree.items if i.server == s and i.directive == "location"
                              and i.location is None and i.level == "server"], DOWNLOAD_URI)
        if loc is not None and _has(tree, loc, "uwsgi_pass"):
            return s, loc
        landed += [loc] if loc is not None else []
    if tree.items:
        led.problem(landed[0].o if landed else tree.items[0].o,
                    f"no server block passes {DOWNLOAD} "
                    "to uwsgi (uwsgi_pass): labkit models nginx in front of uwsgi")
    return None, None


def match_location(locations: list[Item], uri: str) -> Item | None:
    """nginx's choice among a server's locations: exact, longest prefix (^~ stops), first regex, longest prefix."""
    exact = [loc for loc in locations if loc.args[:1] == ["="] and loc.args[1:2] == [uri]]
    if exact:
        return exact[0]
    prefixes = [loc for loc in locations if (len(loc.args) == 1 and not loc.args[0].startswith("@")
                                             or loc.args[:1] == ["^~"]) and uri.startswith(loc.args[-1])]
    longest = max(prefixes, key=lambda loc: len(loc.args[-1]), default=None)
    if longest is not None and longest.args[0] == "^~":
        return longest
    for loc in locations:
        if loc.args[:1] in (["~"], ["~*"]):
            try:
                if re.search(loc.args[1], uri, re.I if loc.args[0] == "~*" else 0):
                    return loc
            except re.error:
                continue
    return longest


def _has(tree: Tree, loc: Item, directive: str) -> bool:
    return any(i.location is loc and i.level == "location" and i.directive == directive for i in tree.items)


def _uwsgi_host(tree: Tree, loc: Item) -> str | None:
    for i in tree.items:
        if i.location is loc and i.level == "location" and i.directive == "uwsgi_pass":
            return i.args[0].removeprefix("uwsgi://").rsplit(":", 1)[0]
    return None


def _listen_port(tree: Tree, server: int | None) -> int | None:
    for i in tree.items:
        if i.server == server and i.level == "server" and i.directive == "listen" and "ssl" not in i.args:
            m = re.search(r"(?:^|:)(\d+)$", i.args[0])
            return int(m.group(1)) if m else (80 if not i.args[0].startswith("unix:") else None)
    return 80 if server is not None else None


def _duplicates(tree: Tree, led: Ledger) -> None:
    """The same directive twice in one block: nginx -t refuses it ("... directive is duplicate")."""
    seen: dict[tuple, Item] = {}
    for it in tree.items:
        if it.directive in MULTI or it.block or it.directive in THIRD_PARTY:
            continue
        key = (it.ctx, it.server, id(it.location), it.nested, it.directive)
        if key in seen:
            first = seen[key].o
            led.problem(it.o, f'"{it.directive}" directive is duplicate (first at {first.file}:{first.line})')
        else:
            seen[key] = it


# --- mapping ---------------------------------------------------------------------
def _structural(it: Item, where: str, server: int | None, loc: Item | None, led: Ledger) -> None:
    d, a = it.directive, it.args
    if d in ("worker_processes", "worker_connections"):
        value = "auto" if a[0] == "auto" and d == "worker_processes" else _int(it, led)
        if value is not None:
            led.set(it.o, f"nginx.{d}", value)
    elif d == "client_max_body_size" and where in ("http", "server"):
        led.set(it.o, "nginx.http_client_max_body_size" if where == "http" else "nginx.client_max_body_size",
                a[0].lower())
    elif d == "server" and where == "server":
        led.modelled(it.o, "the server block pulls reach")
    elif d == "location":
        _location(it, loc, led)
    elif d == "listen" and where == "server":
        led.modelled(it.o, "the lab's nginx listens on its own address; this port is matched with "
                           "docker-compose's ports")
    elif d == "uwsgi_pass" and where == "location":
        led.modelled(it.o, "the lab's nginx passes to the lab's uwsgi (uwsgi_pass)")
    elif d == "add_header":
        return                              # _cors decides
    elif d == "log_format" and a[:1] != ["main"]:
        led.ignore(it.o, "a log line's format: not modelled (the lab writes sregistry's `main`)")
    elif d == "default_type" and a != ["application/octet-stream"]:
        led.ignore(it.o, "the Content-Type of files nginx serves itself: pulls get the app's")
    elif d in STRUCTURE:
        led.modelled(it.o, STRUCTURE[d])
    else:
        led.ignore(it.o, THIRD_PARTY.get(d) or REASONS.get(d, GENERIC))


def _location(it: Item, loc: Item | None, led: Ledger) -> None:
    """The location directive itself: off-path ones are listed by _off_path for their contents."""
    if it is loc:
        led.modelled(it.o, f"the location pulls go through ({DOWNLOAD}): uwsgi_pass")
    else:
        led.modelled(it.o, "a location block (its directives are listed one by one)")


def _off_path(it: Item, server: int | None, loc: Item | None, led: Ledger, tls_server: int | None = None) -> None:
    d = it.directive
    if d in THIRD_PARTY:
        led.ignore(it.o, THIRD_PARTY[d])
    elif it.location is not None and it.location.args == ["/images"] and d == "alias" and not it.nested:
        led.modelled(it.o, "the lab's /images alias to its images directory")
    elif d == "internal" and it.location is not None and not it.nested:
        led.set(it.o, "app.serve_mode", "accel",
                f"app.serve_mode = accel: location {' '.join(it.location.args)} is internal, so it serves "
                "X-Accel-Redirect answers (the app must send them; sregistry's view does not without a patch)")
    elif it.nested:
        led.ignore(it.o, f"inside `{it.nested}` within a location: not modelled")
    elif it.level == "other" and it.location is None and it.ctx:
        led.ignore(it.o, f"an entry of a {it.ctx[-1]} block: not modelled")
    elif it.server is not None and it.server == tls_server:
        led.ignore(it.o, "in the https server block: the lab's TLS block takes the plain block's settings "
                         "(only listen and ssl_* are read from here)")
    elif it.server is not None and it.server != server:
        led.ignore(it.o, "in another server block: not the one pulls reach")
    elif it.location is not None:
        led.ignore(it.o, f"in location {' '.join(it.location.args)}: the download ({DOWNLOAD}) "
                         "does not go through it")
    else:
        led.ignore(it.o, THIRD_PARTY.get(d) or REASONS.get(d, GENERIC))


def _chain(it: Item, where: str, led: Ledger) -> None:
    """A directive nginx inherits http -> server -> location, at the level it stands: inner ones override."""
    d, a, setting = it.directive, it.args, CHAIN[it.directive]
    if d in ("sendfile", "tcp_nopush", "uwsgi_buffering"):
        led.set(it.o, setting, a[0].lower() == "on")
    elif d == "aio":
        mode = "threads" if a[0].startswith("threads") else a[0]
        led.set(it.o, setting, mode, f"{setting} = {mode}" + (" (the thread pool's name is not modelled)"
                                                              if a[0].startswith("threads=") else ""))
    elif d in ("output_buffers", "uwsgi_buffers"):
        if len(a) != 2 or not a[0].isdigit():
            led.problem(it.o, f"{' '.join(a)!r}: write a number and a size, e.g. 8 4k")
        else:
            led.set(it.o, setting, {"number": int(a[0]), "size": a[1].lower()})
    elif d == "access_log":
        led.set(it.o, setting, a[0] != "off", f"{setting} = {a[0] != 'off'}" +
                ("" if a[0] == "off" else " (the lab logs to its run directory: path and format not modelled)"))
    elif d in ("keepalive_timeout", "client_body_timeout"):
        seconds = nginx_seconds(a[0])
        if seconds is None:
            led.problem(it.o, f"{a[0]!r} is not an nginx time (e.g. 65, 65s, 1m)")
        else:
            extra = " (the header timeout is not modelled)" if len(a) > 1 else ""
            led.set(it.o, setting, round(seconds), f"{setting} = {round(seconds)}{extra}")
    else:
        led.set(it.o, setting, a[0].lower())


def _cors(tree: Tree, server: int | None, led: Ledger) -> None:
    """sregistry's six add_header lines in the pull's server block are nginx.cors_headers; others are ignored."""
    headers = [i for i in tree.items if i.directive == "add_header"]
    ours = [i for i in headers if i.server == server and i.level == "server" and server is not None]
    if ours and {tuple(i.args[:2]) for i in ours} == CORS:
        for i in ours:
            led.set(i.o, "nginx.cors_headers", True, "nginx.cors_headers = True (one of sregistry's six headers)",
                    together=True)
        headers = [i for i in headers if i not in ours]
    for i in headers:
        led.ignore(i.o, "a response header other than sregistry's CORS set: not modelled "
                        "(headers do not change how the image is sent)")


def _is_tls(tree: Tree, s: int) -> bool:
    own = [i for i in tree.items if i.server == s and i.level == "server"]
    return any(i.directive == "listen" and "ssl" in i.args for i in own) or \
        any(i.directive == "ssl" and i.args[:1] == ["on"] for i in own)


def _tls(tree: Tree, pull_server: int | None, led: Ledger, facts: NginxFacts) -> list[Item]:
    """The https server block that passes pulls to uwsgi, if any: TLS on, its port, its ssl_* (server over
    http) as tls.*; certificate paths are recorded, no key is read. Returns the items it accounted for."""
    tls = next((s for s in range(tree.servers) if _is_tls(tree, s) and _passes_pulls(tree, s)), None)
    if tls is None:
        return []
    facts.tls_server = tls
    done = []
    for i in tree.items:
        if i.server == tls and i.level == "server" and i.directive == "listen":
            m = re.search(r"(?:^|:)(\d+)$", i.args[0])
            facts.tls_port = facts.tls_port or (int(m.group(1)) if m else 443)
            led.set(i.o, "tls.enabled", True, "tls.enabled = True: pulls over https reach this server block "
                    "(sregistry's download URLs follow DOMAIN_NAME, https in its https setup)", together=True)
            led.set(i.o, "tls.port", facts.tls_port, f"tls.port = {facts.tls_port}", together=True)
            done.append(i)
        elif i.server == tls and i.level == "server" and i.directive == "ssl":
            led.modelled(i.o, "TLS on this server block (`ssl on`: nginx 1.22 writes `listen ... ssl`)")
            done.append(i)
        elif i.server == tls and i.level == "server" and i.directive in CERT_FILES:
            facts.cert_files[i.directive] = i.args[0]
            led.modelled(i.o, f"{i.args[0]} recorded, not read: the lab makes its own CA and certificate; "
                              "the bundle writes sregistry's path (/etc/ssl/...) for your file")
            done.append(i)
    levels = {"http": 0, "server": 1}
    ssl = [i for i in tree.items if i.directive in SSL and (i.level == "http" or (i.server == tls and i.level == "server"))]
    for i in sorted(ssl, key=lambda i: levels[i.level]):
        setting = SSL[i.directive]
        value = (i.args[0].lower() == "on" if i.directive == "ssl_prefer_server_ciphers"
                 else True if i.directive == "ssl_dhparam" else " ".join(i.args))
        if i.directive == "ssl_conf_command":
            earlier = led.values.get("tls", {}).get("conf_command", "")
            value = f"{earlier}; {value}" if earlier and led.origins.get(setting, i.o).line != i.o.line else value
        note = f"{setting} = {value}" + (f" ({i.args[0]} recorded, not read: the lab makes RFC 7919 ffdhe4096)"
                                         if i.directive == "ssl_dhparam" else "")
        led.set(i.o, setting, value, note, together=i.directive == "ssl_conf_command")
        done.append(i)
    return done


def _passes_pulls(tree: Tree, s: int) -> bool:
    loc = match_location([i for i in tree.items if i.server == s and i.directive == "location"
                          and i.location is None and i.level == "server"], DOWNLOAD_URI)
    return loc is not None and _has(tree, loc, "uwsgi_pass")


def _int(it: Item, led: Ledger) -> int | None:
    if not re.fullmatch(r"\d+", it.args[0]):
        led.problem(it.o, f"{it.args[0]!r} is not a whole number")
        return None
    return int(it.args[0])


_TIME = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def nginx_seconds(text: str) -> float | None:
    """nginx's time syntax ('65', '65s', '1m30s', '500ms') in seconds, or None."""
    parts = re.findall(r"(\d+)(ms|[smhdwMy]?)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _TIME[u] for n, u in parts)

