"""nginx's configuration as nginx assembles it: the main file, its includes followed, every directive checked.

Each file is parsed by crossplane (nginx's own config parser in Python) on its own; the includes
are followed here so that a path inside the container (`/etc/nginx/conf.d/*.conf`) is found
where the operator keeps it: first among the files docker-compose mounts into the nginx
container (sregistry mounts its `nginx.conf` at `/etc/nginx/conf.d/default.conf`), then relative
to the including file. Stock files of the nginx image (mime.types, uwsgi_params, ...) that are
not among the operator's files are the lab's nginx's own. A file is never looked for on this
machine's /etc. Each directive is checked by crossplane's analyzer in the context it stands in
(the one its include put it in): unknown directives, wrong contexts and wrong argument counts
are problems naming file and line.

Pure apart from the `Source` it is given, which reads the files.
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass, field
from typing import Protocol

from crossplane.analyzer import CONTEXTS, DIRECTIVES, analyze, enter_block_ctx
from crossplane.errors import NgxParserDirectiveError

from .directives import Ledger, Origin

PREFIX = "/etc/nginx"            # nginx's conf prefix in the nginx image: relative includes start here
STOCK = {"mime.types", "uwsgi_params", "fastcgi_params", "fastcgi.conf", "scgi_params",
         "koi-utf", "koi-win", "win-utf"}
MAX_DEPTH = 10

# Modules compiled into sregistry's nginx image (nginx/install.sh at 0d1274df): their directives
# are real there, though crossplane and Debian's nginx do not know them.
UPLOAD_MODULE = ("nginx-upload-module (vkholodkov/nginx-upload-module 2.255, compiled into sregistry's "
                 "nginx image): uploads only, and Debian's nginx does not have it")
UPLOAD_PROGRESS = ("nginx-upload-progress-module (masterzen/nginx-upload-progress-module, compiled into "
                   "sregistry's nginx image): upload progress only")
THIRD_PARTY = {
    **{d: UPLOAD_MODULE for d in (
        "upload_pass", "upload_store", "upload_state_store", "upload_store_access", "upload_buffer_size",
        "upload_merge_buffer_size", "upload_range_header_buffer_size", "upload_max_part_header_len",
        "upload_max_file_size", "upload_max_output_body_len", "upload_set_form_field",
        "upload_aggregate_form_field", "upload_pass_form_field", "upload_cleanup", "upload_pass_args",
        "upload_limit_rate", "upload_tame_arrays", "upload_resumable", "upload_empty_fiels_names",
        "upload_add_header")},
    **{d: UPLOAD_PROGRESS for d in (
        "upload_progress", "track_uploads", "report_uploads", "upload_progress_content_type",
        "upload_progress_template", "upload_progress_java_output", "upload_progress_json_output",
        "upload_progress_jsonp_output", "upload_progress_header", "upload_progress_jsonp_parameter")},
}


class Source(Protocol):
    """Reads the operator's files (the edge: labkit.config.importer gives one that reads the disk)."""

    def nginx(self, path: str) -> tuple[list[dict], list[dict]]:
        """crossplane's statements of one file (includes not followed) and its syntax errors."""

    def glob(self, pattern: str) -> list[str]: ...

    def show(self, path: str) -> str:
        """The name to print for a file (relative to what the operator pointed at)."""


@dataclass
class Item:
    """One directive where nginx sees it: its context, its server block and its top-level location."""
    o: Origin
    ctx: tuple[str, ...]
    directive: str
    args: list[str]
    block: bool
    server: int | None = None          # index of the http server block it is in
    location: "Item | None" = None     # the server's top-level location it is in
    nested: str = ""                   # a block inside that location ("if (...)", a nested location)
    level: str = "main"                # main, events, http, server, location, other

    @property
    def label(self) -> str:
        return f"{self.directive} {' '.join(self.args)}".strip()


@dataclass
class Tree:
    items: list[Item] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    servers: int = 0


def assemble(main: str | None, server: str | None, mounts: dict[str, str], src: Source, led: Ledger) -> Tree:
    """The directives of the main config with its includes followed (or of the server file alone, in http)."""
    t = _Assembler(src, mounts, led)
    if main:
        t.file(main, (), depth=0)
        if server and server not in t.tree.files:
            led.problem(f"{src.show(server)}:1", f"the main config {src.show(main)} never includes this file "
                        "(nginx would not read it): include it, or mount it where its include points")
    elif server:
        t.file(server, ("http",), depth=0)
    return t.tree


class _Assembler:
    def __init__(self, src: Source, mounts: dict[str, str], led: Ledger):
        self.src, self.mounts, self.led = src, mounts, led
        self.tree = Tree()

    def file(self, path: str, ctx: tuple, depth: int, server: int | None = None, location: Item | None = None,
             nested: str = "") -> None:
        self.tree.files.append(path)
        stmts, errors = self.src.nginx(path)
        for e in errors:
            msg = re.sub(r" in \S+:\d+$", "", e["error"])
            self.led.problem(f"{self.src.show(e.get('file') or path)}:{e.get('line') or 1}", msg)
        self.block(stmts, path, ctx, depth, server, location, nested)

    def block(self, stmts: list[dict], path: str, ctx: tuple, depth: int, server: int | None,
              location: Item | None, nested: str) -> None:
        for st in stmts:
            args = st.get("args", [])
            it = Item(Origin(self.src.show(path), st["line"], st["directive"], " ".join(args)), ctx,
                      st["directive"], args, "block" in st, server, location, nested, _level(ctx, location, nested))
            self.tree.items.append(it)
            if not self._valid(it, st, path):
                continue
            if it.directive == "include":
                self.include(it, path, ctx, depth, server, location, nested)
            elif it.block:
                inner = enter_block_ctx(st, ctx)
                if it.directive == "server" and ctx == ("http",):
                    it.server = self._new_server()
                    self.block(st["block"], path, inner, depth, it.server, None, "")
                elif it.directive == "location" and location is None and server is not None:
                    self.block(st["block"], path, inner, depth, server, it, "")
                else:
                    self.block(st["block"], path, inner, depth, server, location,
                               nested or (it.label if location is not None else ""))

    def _new_server(self) -> int:
        self.tree.servers += 1
        return self.tree.servers - 1

    def _valid(self, it: Item, st: dict, path: str) -> bool:
        """crossplane's analyzer on the directive, in the context it really stands in."""
        if it.ctx not in CONTEXTS:          # inside types {}, map {}, ...: entries, not directives
            return True
        if it.directive not in DIRECTIVES:
            if it.directive in THIRD_PARTY:
                return True
            self.led.problem(it.o, f'unknown directive "{it.directive}"')
            return False
        try:
            analyze(path, st, st.get("term") or ("{" if it.block else ";"), it.ctx, strict=False)
        except NgxParserDirectiveError as exc:
            self.led.problem(it.o, exc.strerror)
            return False
        return True

    def include(self, it: Item, path: str, ctx: tuple, depth: int, server, location, nested) -> None:
        if depth >= MAX_DEPTH:
            self.led.problem(it.o, f"includes nested deeper than {MAX_DEPTH}: a loop?")
            return
        found, how = resolve(it.args[0], path, self.mounts, self.src)
        if found is None:
            self.led.problem(it.o, how)
            return
        shown = ", ".join(self.src.show(f) for f in found)
        self.led.modelled(it.o, f"{how}: {shown}" if found else how)
        for f in found:
            self.file(f, ctx, depth + 1, server, location, nested)


def _level(ctx: tuple, location: Item | None, nested: str) -> str:
    if nested:
        return "other"
    if location is not None:
        return "location"
    if ctx in ((), ("events",), ("http",), ("http", "server")):
        return {(): "main", ("events",): "events", ("http",): "http"}.get(ctx, "server")
    return "other"


def resolve(arg: str, including: str, mounts: dict[str, str], src: Source) -> tuple[list[str] | None, str]:
    """The operator's files an include names, and how they were found; None and why when none can be."""
    inside = arg if arg.startswith("/") else posixpath.join(PREFIX, arg)      # the path in the container
    magic = any(c in arg for c in "*?[")
    mounted = sorted(host for target, host in mounts.items()
                     if (fnmatch.fnmatch(target, inside) if magic else target == inside))
    if mounted:
        return mounted, f"mounted at {inside} (docker-compose volumes)"
    rel = arg if not arg.startswith("/") else (posixpath.relpath(inside, PREFIX) if inside.startswith(PREFIX + "/")
                                               else None)
    if rel is not None:
        here = src.glob(posixpath.join(posixpath.dirname(including), rel))
        if here:
            return sorted(here), "read, relative to the including file"
    if posixpath.basename(inside) in STOCK and posixpath.dirname(inside) == PREFIX:
        return [], f"{inside}: a stock file of the nginx image; the lab's nginx includes its own"
    if magic:
        return [], f"{inside} matches none of the given files (nginx accepts a pattern that matches nothing)"
    return None, (f"include {arg}: no such file among the operator's files (looked for a docker-compose "
                  f"volume mounted at {inside}" + (f" and for {rel} next to {src.show(including)}" if rel else "")
                  + ")")
