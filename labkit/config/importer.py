"""`labkit import`: an operator's sregistry files in, a settings file out, every directive accounted for.
An OCI registry's files too: distribution's config.yml, Harbor's harbor.yml and the nginx.conf Harbor
generates (labkit.config.import_oci names every directive the lab does not model).

    result = import_files(SregistryFiles.in_dir(Path("sregistry")))
    result.write(Path("mine.json"))      # labkit survey --settings mine.json --set links.wan=6gbit
    print(result.text())                 # modelled: which setting; ignored: why; assumed: what no file says

The files, as sregistry lays them out: `nginx/nginx.conf` (the main config baked into its nginx
image), `nginx.conf` (the server block, mounted at conf.d/default.conf), `uwsgi.ini`,
`docker-compose.yml`, and Docker's `daemon.json` if the operator gives it. A bad file (syntax
error, unknown directive, value out of range, missing include) raises ImportRejected naming the
file, line and directive of every problem, and nothing is written.

Reading files happens here (`DiskSource`, `import_files`); the parsing and mapping in
labkit.config.import_nginx/_uwsgi/_docker is pure.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import crossplane
import crossplane.lexer
import pandas as pd

from ..errors import SettingsError
from .directives import Entry, Ledger
from .import_docker import DAEMON_PUBLISH, parse_compose, read_compose, read_daemon
from .import_nginx import read_nginx
from .import_oci import read_distribution, read_harbor, read_harbor_nginx
from .import_uwsgi import read_uwsgi
from .nginx_tree import Tree, assemble
from .settings import LabSettings

# Settings whose labkit default is not the program's: when the files read leave them unset, the
# program's own default is what runs (nginx 1.13.6 src/event/ngx_event.c DEFAULT_CONNECTIONS,
# src/http/ngx_http_core_module.c merge_loc_conf; uwsgi core/init.c leaves max_requests 0).
PROGRAM_DEFAULTS = {
    "nginx.worker_connections": (512, "nginx", "nginx's default"),
    "nginx.sendfile": (False, "nginx", "nginx's default (off)"),
    "nginx.keepalive_timeout": (75, "nginx", "nginx's default (75 s)"),
    "uwsgi.max_requests": (0, "uwsgi_ini", "uwsgi's default (0: workers are never recycled)"),
}


class ImportRejected(SettingsError):
    """The operator's files have problems; each names its file, line and directive. Nothing was written."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the files, nothing imported:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class SregistryFiles:
    """The operator's files (any may be missing); `root` only shortens the names printed."""
    nginx_main: Path | None = None
    nginx_server: Path | None = None
    uwsgi_ini: Path | None = None
    compose: Path | None = None
    daemon_json: Path | None = None
    distribution: Path | None = None        # distribution's config.yml (labkit.config.import_oci)
    harbor_yml: Path | None = None          # Harbor's harbor.yml
    harbor_nginx: Path | None = None        # the nginx.conf Harbor's prepare step generates
    root: Path | None = None

    @classmethod
    def in_dir(cls, root: Path, **given: Path | None) -> "SregistryFiles":
        """sregistry's layout under `root` (a checkout), each file replaced by `given` when given."""
        root = Path(root)
        layout = {"nginx_main": "nginx/nginx.conf", "nginx_server": "nginx.conf", "uwsgi_ini": "uwsgi.ini",
                  "compose": "docker-compose.yml", "daemon_json": "daemon.json", "distribution": "config.yml",
                  # Harbor's installer directory: make/prepare writes common/config/nginx/nginx.conf
                  # (goharbor/harbor v2.15.2 make/prepare line 51, make/photon/prepare/utils/nginx.py line 12)
                  "harbor_yml": "harbor.yml", "harbor_nginx": "common/config/nginx/nginx.conf"}
        found = {k: given.get(k) or ((root / v) if (root / v).exists() else None) for k, v in layout.items()}
        if found["compose"] is None and (root / "docker-compose.yaml").exists():
            found["compose"] = root / "docker-compose.yaml"
        return cls(**found, root=root)

    def given(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)
                if f.name != "root" and getattr(self, f.name) is not None}


class DiskSource:
    """The edge: reads the operator's files (and nothing else) for the pure readers."""

    def __init__(self, root: Path | None):
        self.root = os.path.abspath(root) if root else None

    def nginx(self, path: str) -> tuple[list[dict], list[dict]]:
        if not os.path.isfile(path):
            return [], [{"file": path, "line": 1, "error": "no such file"}]
        payload = crossplane.parse(path, single=True, check_ctx=False, check_args=False, comments=False)
        config = payload["config"][0] if payload["config"] else {"parsed": []}
        stmts = config.get("parsed") or []
        if not payload["errors"]:
            _terminators(stmts, crossplane.lexer.lex(path))
        return stmts, payload["errors"]

    def glob(self, pattern: str) -> list[str]:
        return [p for p in glob.glob(pattern) if os.path.isfile(p)]

    def show(self, path: str) -> str:
        if self.root and os.path.abspath(path).startswith(self.root + os.sep):
            return os.path.relpath(path, self.root)
        return path

    def text(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except (FileNotFoundError, IsADirectoryError):
            return None


@dataclass
class ImportResult:
    settings: LabSettings
    entries: list[Entry]
    assumed: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def modelled(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "modelled"]

    @property
    def ignored(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "ignored"]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([e.row() for e in self.entries],
                            columns=["file", "line", "directive", "value", "status", "setting", "note"])

    def document(self) -> dict:
        """What the settings file holds: the settings (load_settings reads them) and where they came from."""
        return {"settings": self.settings.model_dump(mode="json"), "imported_from": self.files,
                "directives": [e.row() for e in self.entries], "assumed": self.assumed}

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.document(), indent=1) + "\n")
        return path

    def text(self, width: int = 60) -> str:
        def rows(entries: list[Entry]) -> list[str]:
            return [f"  {f'{e.file}:{e.line}':28} {(e.directive + ' ' + e.value)[:width]:{width}}  {e.note}"
                    for e in entries]
        return "\n".join([f"modelled ({len(self.modelled)}):", *rows(self.modelled),
                          f"ignored ({len(self.ignored)}):", *rows(self.ignored),
                          f"assumed ({len(self.assumed)}), no file says otherwise:",
                          *[f"  {a}" for a in self.assumed]])


def import_files(files: SregistryFiles) -> ImportResult:
    """Read every file given, map it onto the settings; ImportRejected if any file has a problem."""
    src, led = DiskSource(files.root), Ledger()
    path = {k: os.path.abspath(v) for k, v in files.given().items()}
    compose = None
    if "compose" in path:
        text = _read(src, path["compose"], led)
        compose = parse_compose(text, src.show(path["compose"]), os.path.dirname(path["compose"]), led) \
            if text is not None else None
    mounts = compose.mounts(compose.service_for("nginx")) if compose else _sregistry_mounts(path, src)
    tree = Tree()
    if "nginx_main" in path or "nginx_server" in path:
        tree = assemble(path.get("nginx_main"), path.get("nginx_server"), mounts, src, led)
    facts = read_nginx(tree, led)
    if "uwsgi_ini" in path and (text := _read(src, path["uwsgi_ini"], led)) is not None:
        read_uwsgi(text, src.show(path["uwsgi_ini"]), led)
    if compose is not None:
        read_files = {"nginx": {f: src.show(f) for f in tree.files},
                      "uwsgi": {path["uwsgi_ini"]: src.show(path["uwsgi_ini"])} if "uwsgi_ini" in path else {}}
        read_compose(compose, led, facts.uwsgi_host, facts.listen_port, read_files, facts.tls_port)
    if "daemon_json" in path and (text := _read(src, path["daemon_json"], led)) is not None:
        read_daemon(text, src.show(path["daemon_json"]), led)
    if "distribution" in path and (text := _read(src, path["distribution"], led)) is not None:
        read_distribution(text, src.show(path["distribution"]), led)
    if "harbor_yml" in path and (text := _read(src, path["harbor_yml"], led)) is not None:
        read_harbor(text, src.show(path["harbor_yml"]), led)
    if "harbor_nginx" in path:
        stmts, errors = src.nginx(path["harbor_nginx"])
        for e in errors:
            led.problem(f"{src.show(e.get('file') or path['harbor_nginx'])}:{e.get('line') or 1}", e["error"])
        read_harbor_nginx(stmts, src.show(path["harbor_nginx"]), led)
    assumed = _assume(led, path, bool(tree.items))
    if led.problems:
        raise ImportRejected(led.problems)
    settings = led.settings(LabSettings())
    if settings is None:
        raise ImportRejected(led.problems)
    return ImportResult(settings, _ordered(led.entries, [src.show(p) for p in path.values()]), assumed,
                        {k: src.show(v) for k, v in path.items()})


def _terminators(stmts: list[dict], tokens) -> None:
    """Each statement's "term": the ';', '{' or '}' that ended it (crossplane keeps only the statements)."""
    ends, start = {}, True
    for token, line, quoted in tokens:
        if not quoted and token.startswith("#"):
            continue
        if start and not (token in "{;}" and not quoted):
            ends.setdefault(line, [])
            head, start = line, False
        elif not quoted and token in ("{", ";", "}"):
            if not start:
                ends[head].append(token)
            start = True

    def walk(block: list[dict]) -> None:
        for st in block:
            got = ends.get(st["line"])
            st["term"] = got.pop(0) if got else ("{" if "block" in st else ";")
            walk(st.get("block", []))
    walk(stmts)


def _read(src: DiskSource, path: str, led: Ledger) -> str | None:
    text = src.text(path)
    if text is None:
        led.problem(f"{src.show(path)}:1", "no such file")
    return text


def _sregistry_mounts(path: dict[str, str], src: DiskSource) -> dict[str, str]:
    """Without a compose file: sregistry's own (docker-compose.yml at 0d1274df, nginx service volumes)."""
    if "nginx_server" not in path:
        return {}
    here = os.path.dirname(path["nginx_server"])
    return {"/etc/nginx/conf.d/default.conf": path["nginx_server"],
            "/etc/nginx/uwsgi_params.par": os.path.join(here, "uwsgi_params.par")}


def _assume(led: Ledger, path: dict[str, str], nginx_read: bool) -> list[str]:
    """Settings no file sets: the program's default where labkit's differs, and what a missing file leaves."""
    out = []
    for setting, (value, role, why) in PROGRAM_DEFAULTS.items():
        read = nginx_read if role == "nginx" else role in path
        if read and setting not in led.origins:
            group, _, name = setting.partition(".")
            led.values.setdefault(group, {})[name] = value
            out.append(f"{setting} = {value}: not set in the files, {why}")
    if "uwsgi_ini" in path and "app.serve_mode" not in led.origins:
        out.append("app.serve_mode = fileresponse: sregistry's download view returns a FileResponse and this "
                   "uwsgi.ini leaves wsgi.file_wrapper on (uwsgi sendfile()s the file)")
    for key, (setting, says) in DAEMON_PUBLISH.items():
        if setting not in led.origins:
            out.append(f"{setting} = true: " + (f"daemon.json does not set {key}" if "daemon_json" in path
                                                else "no daemon.json given") + f", Docker's default: {says[True]}")
    if "publish.host_port" not in led.origins:
        out.append("publish.host_port = 80: " + ("no port mapping to nginx's port in docker-compose.yml"
                                                 if "compose" in path else "no docker-compose.yml given (sregistry's: 80:80)"))
    for role, groups in (("nginx_main", "nginx.worker_*, access_log, sendfile, ..."), ("uwsgi_ini", "uwsgi.*"),
                         ("compose", "cpu.*, publish.host_port")):
        if role not in path:
            out.append(f"no {role.replace('_', ' ')} given: {groups} stay at labkit's defaults")
    out.append("links, storage, client, kernel (unless compose sysctls set it): not in these files; "
               "labkit's defaults (give them with --set, e.g. links.wan=6gbit)")
    return out


def _ordered(entries: list[Entry], order: list[str]) -> list[Entry]:
    rank = {f: i for i, f in enumerate(order)}
    return sorted(entries, key=lambda e: (rank.get(e.file, len(rank)), e.file, e.line))
