"""The client kinds as a table (labkit.clients.kinds.KINDS): every row a ClientKind, the names the settings
accept and the table's the same, each program kind's command line and environment for http and https,
and the ranged curl's pure parts (its ranges, what its probe learned)."""
from __future__ import annotations

from pathlib import Path

import json
import pytest

from labkit.clients import curl_ranged_pull as ranged
from labkit.clients.command import EXAMPLE
from labkit.clients.kind import ClientKind
from labkit.clients.kinds import KINDS, client_kind
from labkit.clients.program import Program
from labkit.config.settings import CLIENT_KINDS, ClientSettings, SettingsError, parse_settings

VALUES = {"host": "192.0.2.20", "port": "80", "uri": "library/servelab:1b", "url": "http://192.0.2.20/containers/1/download/s",
          "dest": "/run/x/image.sif", "cacert": "",
          # an OCI kind's own (labkit.clients.oci_program.OciProgram.values)
          "image": "192.0.2.20:80/servelab/image:latest", "base": "http://192.0.2.20:80", "repository": "servelab/image",
          "tag": "latest", "layout": "/run/x", "certdir": ""}
TEMPLATE = {"command": EXAMPLE}


def settings_of(name: str) -> ClientSettings:
    return ClientSettings(kind=name, **(TEMPLATE if name == "command" else {}))


def test_the_settings_accept_exactly_the_tables_names():
    assert tuple(KINDS) == CLIENT_KINDS
    with pytest.raises(SettingsError, match="client.kind"):
        parse_settings({"client": {"kind": "wget"}})


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_is_built_from_its_settings_and_says_how_it_pulls(name):
    kind = client_kind(settings_of(name))
    assert isinstance(kind, ClientKind) and kind.name == name and kind.settings.kind == name
    assert kind.connections >= 1 and kind.cpu in ("threads", "rusage")
    assert name in kind.describe() and f"{kind.connections} connection" in kind.describe()


@pytest.mark.parametrize("name", [n for n, k in KINDS.items() if issubclass(k, Program)])
def test_every_program_kind_has_a_command_line_and_is_told_the_ca_with_tls(name, tmp_path):
    kind = client_kind(settings_of(name))
    plain = kind.command(VALUES, find=lambda p: f"/found/{p}")
    assert plain and all(isinstance(w, str) and w for w in plain)
    assert plain[0].startswith("/")               # a path: found through the lab's lookup, or an interpreter's
    tls = VALUES | {"cacert": "/run/ca.pem", "url": VALUES["url"].replace("http:", "https:"), "certdir": "/run/certs"}
    said = " ".join(kind.command(tls)) + " " + " ".join(f"{k}={v}" for k, v in kind.env(tls, tmp_path, tmp_path / "s").items())
    if name != "command":                         # the user's template decides whether it uses {cacert}
        assert "/run/ca.pem" in said or (kind.apis == ("oci",) and "--cert-dir /run/certs" in said.replace("src-", ""))
    assert kind.env(VALUES, tmp_path, tmp_path / "s")["HOME"] == str(tmp_path)


def test_only_labkits_own_clients_run_in_this_process_and_may_discard():
    # labkit's own loop: its two clients (sregistry's API and OCI's) and the oras-style pull built on it
    assert [n for n, k in KINDS.items() if k.cpu == "threads"] == ["labkit", "oci", "oras-style"]
    assert [n for n, k in KINDS.items() if k.discards] == ["labkit", "oci"]


def test_a_program_kind_without_a_destination_is_refused_before_it_starts():
    from labkit.clients.kind import Target, Where
    from labkit.errors import LabError
    with pytest.raises(LabError, match="curl-ranged.*destination"):
        KINDS["curl-ranged"]().pull(Target(None, "h", 80, "a/b:c", "0" * 64, 10), Where())


def test_the_ranged_curl_runs_the_curl_the_lab_found_on_enroots_connection_count():
    argv = KINDS["curl-ranged"]().command(VALUES, find=lambda p: f"/found/{p}")
    assert argv[argv.index("--connections") + 1] == "10" == str(ranged.CONNECTIONS)
    assert argv[-2:] == ["--curl", "/found/curl"] and VALUES["url"] in argv and VALUES["dest"] in argv


@pytest.mark.parametrize("length,n", [(1, 10), (9, 10), (10, 10), (11, 10), (1 << 30, 10), (1000003, 7), (5, 1)])
def test_ranges_cover_the_image_once_in_order(length, n):
    rs = ranged.ranges(length, n)
    assert len(rs) == min(n, length) and rs[0][0] == 0 and rs[-1][1] == length - 1
    assert all(b[0] == a[1] + 1 for a, b in zip(rs, rs[1:]))
    assert max(e - s for s, e in rs) - min(e - s for s, e in rs) <= 1
    with pytest.raises(ValueError):
        ranged.ranges(0, n)


def test_the_probe_reads_the_length_and_the_url_the_redirects_end_at():
    out = ("HTTP/1.1 302 Found\r\nLocation: http://b:9000/x?sig\r\n\r\n"
           "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-0/67108864\r\nContent-Length: 1\r\n\r\n"
           "206 http://b:9000/x?sig")
    assert ranged.probed(out) == (206, "http://b:9000/x?sig", 67108864)
    whole = "HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n200 http://a/x"
    assert ranged.probed(whole) == (200, "http://a/x", None)


def test_a_kind_is_one_module_and_one_row():
    """Adding a kind: its module under labkit/clients (named in no other module of labkit but the table's)."""
    root = Path(__file__).resolve().parents[2] / "labkit"
    for name, cls in KINDS.items():
        module = Path(cls.__module__.replace(".", "/") + ".py").name
        users = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
                 if f".{module[:-3]} import" in p.read_text() and p.name != module]
        assert users in (["clients/kinds.py"], []), f"{name}: {cls.__name__} is imported by {users}"


def test_an_oci_target_reaches_the_child_process_whole():
    """A time-dilated lab runs kind `oci`'s pulls in a child held by the node's CPU group: the child gets the
    OCI image's every digest back as it was given, and its Where pulls in-process (no second child)."""
    from labkit.clients.kind import OciImageRef, Target, Where
    from labkit.clients.own_child import from_spec, spec
    from labkit.config.settings import ClientSettings
    oci = OciImageRef("lab/img", "v1", "sha256:" + "a" * 64, "sha256:" + "b" * 64,
                      (("sha256:" + "c" * 64, 3), ("sha256:" + "d" * 64, 5)))
    t = Target("c1", "10.0.0.1", 443, "/v2/lab/img/manifests/v1", "", 8, oci=oci)
    d = json.loads(json.dumps(spec(t, Where(Path("/tmp/x"), own_process=True), ClientSettings(kind="oci"),
                                   2, "sha256", 30, 600)))
    back, where, settings = from_spec(d)
    assert back == t and back.oci.layers == oci.layers and back.oci.size == 8
    assert (where.dest_root, where.own_process, settings.kind) == (Path("/tmp/x"), False, "oci")
