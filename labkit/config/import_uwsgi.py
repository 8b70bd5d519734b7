"""uwsgi.ini read the way uwsgi reads it (core/ini.c, uwsgi 2.0), mapped onto UwsgiSettings (pure).

uwsgi's rules: only the `[uwsgi]` section counts; `;` and `#` start a comment line; `key = value`
splits at the first `=`, a key alone is a flag; a key may repeat (for a number or a flag the
last one wins). Flags (`uwsgi_opt_true`) are on unless the value is false/off/no/0; numbers are
read with atoi/strtoul, so `post-buffering = true` is 0 (off) and `64k` is 64. A key that is not
a uwsgi option is refused here: uwsgi would take it as a placeholder and the setting would
silently not apply (only `uwsgi --strict` refuses it).
"""
from __future__ import annotations

import re
from functools import cache
from importlib import resources

from .directives import Ledger, Origin

_FALSE = {"false", "off", "no", "0"}
_INT = re.compile(r"^[+-]?\d+$")
_MAGIC = re.compile(r"[%$@]\(")

# key -> setting it sets, for numbers
NUMBERS = {"processes": "uwsgi.processes", "workers": "uwsgi.processes", "threads": "uwsgi.threads",
           "buffer-size": "uwsgi.buffer_size", "offload-threads": "uwsgi.offload_threads",
           "harakiri": "uwsgi.harakiri", "socket-timeout": "uwsgi.socket_timeout",
           "http-timeout": "uwsgi.http_timeout", "max-requests": "uwsgi.max_requests"}
FLAGS = {"ignore-sigpipe": "uwsgi.ignore_sigpipe", "ignore-write-errors": "uwsgi.ignore_write_errors",
         "disable-write-exception": "uwsgi.disable_write_exception"}
# what the lab (or the bundle's template) writes itself, and how it stands for the operator's line
STRUCTURE = {
    "master": "the lab's uwsgi always runs a master process",
    "socket": "the lab's uwsgi listens on its own uwsgi socket, which nginx's uwsgi_pass reaches",
    "uwsgi-socket": "the lab's uwsgi listens on its own uwsgi socket, which nginx's uwsgi_pass reaches",
    "chdir": "the lab runs its own registry app (labkit.app) in place of sregistry's code",
    "wsgi-file": "the lab runs its own registry app (labkit.app) in place of sregistry's code",
    "module": "the lab runs its own registry app (labkit.app) in place of sregistry's code",
    "harakiri-verbose": "written together with harakiri",
    "enable-threads": "threads > 1 enables them",
}
REASONS = {
    "disable-sendfile": "uwsgi then copies the file with 8 KiB read()/write() instead of sendfile(): "
                        "not modelled, the lab's uwsgi uses sendfile",
    "listen": "the socket's accept backlog (uwsgi default 100): not modelled, the lab uses uwsgi's default",
    "http": "uwsgi's own HTTP router: not on sregistry's path (nginx speaks the uwsgi protocol to it)",
    "vacuum": "removes sockets and pidfiles at exit: nothing a pull crosses",
    "die-on-term": "how uwsgi stops: nothing a pull crosses",
    "pidfile": "where uwsgi writes its pid: the lab keeps its own",
    "uid": "the user uwsgi runs as: not on the pull's path",
    "gid": "the group uwsgi runs as: not on the pull's path",
    "logto": "where uwsgi logs: the lab keeps its own log",
}
GENERIC = "a uwsgi option labkit's settings do not model: the lab runs uwsgi's default for it"


@cache
def uwsgi_options() -> frozenset[str]:
    """Every option uwsgi accepts (scripts/uwsgi_options.py writes the list from `uwsgi --help`)."""
    text = resources.files(__package__).joinpath("uwsgi-options.txt").read_text()
    return frozenset(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))


def ini_lines(text: str) -> list[tuple[int, str, str, str]]:
    """(line, section, key, value) for every option line, as uwsgi's ini parser splits them."""
    out, section = [], ""
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t\r")
        if not line or line[0] in ";#":
            continue
        if line[0] == "[":
            section = line[1:-1]          # uwsgi drops the last character, whatever it is
            continue
        key, _, value = line.partition("=")
        out.append((n, section, key.rstrip(" \t\r"), value.strip(" \t\r")))
    return out


def read_uwsgi(text: str, file: str, led: Ledger, section: str = "uwsgi") -> None:
    """Every line of a uwsgi.ini into `led`: the settings it gives, what it leaves out and why, its problems."""
    lines = ini_lines(text)
    if not any(s == section for _, s, _, _ in lines):
        led.problem(f"{file}:1", f"no [{section}] section: uwsgi would read no option from this file")
        return
    for n, sec, key, value in lines:
        o = Origin(file, n, key, value)
        if sec != section:
            led.ignore(o, f"in section [{sec}]: uwsgi reads only [{section}] (unless started as {file}:{sec})")
        elif key not in uwsgi_options():
            led.problem(o, "not a uwsgi option (uwsgi would take it as a placeholder and ignore it; "
                           "`uwsgi --strict` refuses it)")
        elif _MAGIC.search(value) and (key in NUMBERS or key in FLAGS or key == "post-buffering"):
            led.problem(o, f"{value!r} uses a uwsgi placeholder labkit cannot expand: write the value itself")
        else:
            _option(o, key, value, led)


def _option(o: Origin, key: str, value: str, led: Ledger) -> None:
    if key in NUMBERS:
        if not _INT.match(value):
            led.problem(o, f"{value!r} is not a whole number")
        else:
            led.set(o, NUMBERS[key], int(value))
    elif key in FLAGS:
        led.set(o, FLAGS[key], value.lower() not in _FALSE)
    elif key == "post-buffering":
        _post_buffering(o, value, led)
    elif key == "log-date":
        # uwsgi_opt_log_date: true/1/on/yes enable it; any other value is a strftime format (also enabling it)
        plain = value.lower() in ("", "true", "1", "on", "yes")
        led.set(o, "uwsgi.log_date", True, "uwsgi.log_date = True" +
                ("" if plain else f" ({value!r} is taken as a strftime format; the format is not modelled)"))
    elif key == "wsgi-disable-file-wrapper":
        if value.lower() in _FALSE:
            led.modelled(o, "wsgi.file_wrapper stays on (uwsgi's default)")
        else:
            led.set(o, "app.serve_mode", "fileresponse-iter",
                    "app.serve_mode = fileresponse-iter (no wsgi.file_wrapper: Django reads the file in blocks)")
    elif key in STRUCTURE:
        led.modelled(o, STRUCTURE[key])
    else:
        led.ignore(o, REASONS.get(key, GENERIC))


def _post_buffering(o: Origin, value: str, led: Ledger) -> None:
    """uwsgi_opt_set_64bit: strtoul(value) - the leading digits, or 0 when there are none."""
    if value == "true":       # sregistry's own spelling, kept so the rendered file says what it said
        led.set(o, "uwsgi.post_buffering", "true", "uwsgi.post_buffering = 'true' (uwsgi reads it as 0: off)")
        return
    digits = re.match(r"\s*\+?(\d*)", value).group(1)
    number = int(digits) if digits else 0
    note = "" if digits == value.strip() else f" (uwsgi reads {value!r} as {number}: strtoul stops at the first non-digit)"
    led.set(o, "uwsgi.post_buffering", number, f"uwsgi.post_buffering = {number}{note}")
