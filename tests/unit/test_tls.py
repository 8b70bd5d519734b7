"""TLS without a lab: the settings refuse what nginx or OpenSSL would, the lab's CA and certificate verify
(and a wrong CA or name does not), nginx's TLS block renders as the settings say, clients are told the CA."""
import ssl

import pytest

from labkit.config.presets import PRESETS, SREGISTRY_SHIPPED
from labkit.config.render import lab_nginx_paths, render_nginx_server
from labkit.config.settings import ClientSettings, LabSettings, SettingsError, parse_settings
from labkit.config.sslconf import conf_commands
from labkit.errors import TlsSetupError, TlsVerifyError
from labkit.lab.conditions import tls
from labkit.lab.conditions.base import Ground
from labkit.clients.kinds import KINDS
from labkit.clients.registry_api import Trust, open_get


@pytest.mark.parametrize("bad,message", [
    ({"protocols": "TLSv1.2 TLSv9"}, "tls.protocols"), ({"protocols": ""}, "tls.protocols"),
    ({"ciphers": "NO-SUCH-CIPHER"}, "finds no cipher"), ({"buffer_size": "32k"}, "outside 512..16k"),
    ({"session_cache": "shared:SSL"}, "shared:name:size"), ({"session_timeout": "five"}, "nginx time"),
    ({"conf_command": "Certificate /etc/x.pem"}, "Name one of"), ({"port": 0}, "tls.port")])
def test_bad_tls_settings_are_refused_naming_the_setting(bad, message):
    with pytest.raises(SettingsError, match=message):
        parse_settings({"tls": bad})


def test_conf_commands_split_on_semicolons():
    assert conf_commands("Options PrioritizeChaCha; Groups X25519:P-256") == [
        ("Options", "PrioritizeChaCha"), ("Groups", "X25519:P-256")]


def test_tls_block_renders_only_when_on_and_only_what_differs_from_nginx(tmp_path):
    paths = lab_nginx_paths(tmp_path, "10.0.0.2:80", "10.0.0.3:3031", tmp_path, listen_tls="10.0.0.2:443")
    assert "ssl" not in render_nginx_server(LabSettings(), paths)
    s = LabSettings().changed(tls={"enabled": True, "buffer_size": "4k", "conf_command": "Options PrioritizeChaCha",
                                   "prefer_server_ciphers": True})
    text = render_nginx_server(s, paths)
    for line in ("listen 10.0.0.2:443 ssl;", f"ssl_certificate {tmp_path / 'tls' / 'server.pem'};",
                 "ssl_buffer_size 4k;", "ssl_conf_command Options PrioritizeChaCha;", "ssl_prefer_server_ciphers on;"):
        assert line in text
    assert "ssl_dhparam" not in text and "ssl_session_cache" not in text
    https = render_nginx_server(PRESETS["sregistry-2018-10-https"], paths)
    assert "ssl_dhparam" in https and "ssl_protocols TLSv1 TLSv1.1 TLSv1.2;" in https


def _handshake(server_dir, cafile, server_hostname):
    """A TLS handshake in memory: nginx's files on the server side, a client that trusts `cafile`."""
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(server_dir / "server.pem", server_dir / "server.key")
    cli = ssl.create_default_context(cafile=str(cafile))
    a, b = ssl.MemoryBIO(), ssl.MemoryBIO()
    c, d = ssl.MemoryBIO(), ssl.MemoryBIO()
    s_obj = srv.wrap_bio(a, b, server_side=True)
    c_obj = cli.wrap_bio(c, d, server_hostname=server_hostname)
    for _ in range(10):
        for obj in (c_obj, s_obj):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
        a.write(d.read())
        c.write(b.read())
        if c_obj.version() and s_obj.version():
            return c_obj.version()
    raise AssertionError("no handshake")


def test_the_lab_certificate_verifies_against_the_lab_ca_for_its_name_and_addresses(tmp_path):
    tls.write_server_files(tmp_path / "lab", ["192.0.2.20", "198.51.100.2"], dhparam=False)
    key = tmp_path / "lab" / "server.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and oct((tmp_path / "lab").stat().st_mode & 0o777) == "0o700"
    for name in (tls.VM_NAME, "192.0.2.20", "198.51.100.2"):
        assert _handshake(tmp_path / "lab", tmp_path / "lab" / "ca.pem", name)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|match"):
        _handshake(tmp_path / "lab", tmp_path / "lab" / "ca.pem", "elsewhere.test")
    tls.write_server_files(tmp_path / "other", ["192.0.2.20"], dhparam=False)     # another CA
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate in certificate chain"):
        _handshake(tmp_path / "lab", tmp_path / "other" / "ca.pem", tls.VM_NAME)


def test_a_missing_ca_file_is_refused_before_anything_is_sent(tmp_path):
    with pytest.raises(TlsSetupError, match="CA file"):
        open_get(None, "https://192.0.2.1:443/x", 1, Trust(str(tmp_path / "nope.pem")))


def test_the_lab_tls_files_come_and_go_with_the_lab(tmp_path, monkeypatch):
    monkeypatch.setattr(tls.ownership, "own", lambda *a, **k: None)
    monkeypatch.setattr(tls.ownership, "disown", lambda *a, **k: None)
    t = tls.LabTls(Ground("x", tmp_path, tmp_path / "images", False, []), ["127.0.0.1"])
    assert t.up(SREGISTRY_SHIPPED) == [] and t.trust() is None
    t.up(SREGISTRY_SHIPPED.changed(tls={"enabled": True}))
    assert t.trust() == Trust(str(tmp_path / "tls" / "ca.pem")) and (tmp_path / "tls" / "server.key").is_file()
    assert t.down() and not (tmp_path / "tls").exists() and t.trust() is None


def test_every_external_client_is_told_the_ca(tmp_path):
    values = {"host": "192.0.2.20", "port": "443", "uri": "library/x:1", "url": "https://192.0.2.20:443/i",
              "dest": "/d/image.sif", "cacert": "/run/ca.pem"}
    curl = KINDS["curl"]().argv(values)
    assert curl[curl.index("--cacert") + 1] == "/run/ca.pem"
    env = KINDS["sregistry-cli"]().env(values, tmp_path, tmp_path / "s.json")
    assert env["SREGISTRY_REGISTRY_BASE"] == "https://192.0.2.20:443" and env["REQUESTS_CA_BUNDLE"] == "/run/ca.pem"
    assert "SREGISTRY_REGISTRY_NOHTTPS" not in env
    plain = KINDS["sregistry-cli"]().env(values | {"cacert": ""}, tmp_path, tmp_path / "s.json")
    assert plain["SREGISTRY_REGISTRY_BASE"].startswith("http://") and plain["SREGISTRY_REGISTRY_NOHTTPS"] == "1"
    assert KINDS["command"](ClientSettings(kind="command", command="fetch --ca {cacert} {url}")).argv(values) == ["fetch", "--ca", "/run/ca.pem", values["url"]]
    assert issubclass(TlsVerifyError, ConnectionError)


def test_the_fixes_change_what_they_say_and_name_their_clients():
    from labkit.config.tls_fixes import FIXES
    from labkit.lab.changes import HostFeatures, plan_changes
    base = PRESETS["sregistry-2018-10-https"]
    by = {f.name: f.apply(base) for f in FIXES}
    assert by["AES-128-GCM first"].tls.ciphers.split(":")[:2] == ["ECDHE-RSA-AES128-GCM-SHA256",
                                                                  "ECDHE-RSA-AES256-GCM-SHA384"]
    assert by["AES-128-GCM first"].tls.ciphers.count("AES128-GCM") == 1
    assert by["ChaCha20-Poly1305 preferred"].tls.ciphers.startswith("ECDHE-RSA-CHACHA20-POLY1305:")
    assert not by["plain http on the cluster network"].tls.enabled
    assert by["more nginx workers"].nginx.worker_processes == "auto"
    assert "1.0.2k" in next(f for f in FIXES if "ChaCha" in f.name).clients
    steps = plan_changes(base, by["plain http on the cluster network"], HostFeatures(True, ("cubic",), True)).steps
    assert steps == ("publish", "nginx")       # Docker publishes port 80 again; nginx drops the TLS block


def test_a_tls_bound_nginx_gets_the_tls_fixes_as_remedies_computed_from_its_settings():
    from labkit.analyze.remedies import candidates
    from labkit.config.overrides import apply_overrides
    from labkit.config.presets import preset
    from labkit.path import PATH
    https = preset("sregistry-2018-10-https")
    got = {r.name: r.set for r in candidates("tls", "cpu", https, PATH)}
    assert list(got)[:4] == ["AES-128-GCM first", "ChaCha20-Poly1305 preferred", "plain http on the cluster network",
                             "more nginx workers"] and "ssl_buffer_size 4k" not in got     # no throughput from it
    first = apply_overrides(https, list(got["AES-128-GCM first"])).tls.ciphers.split(":")
    assert first[:2] == ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]
    assert sorted(first) == sorted(https.tls.ciphers.split(":"))                    # the rest kept, none added
    assert not any("tls." in x for r in candidates("nginx", "cpu", preset("sregistry-2018-10"), PATH) for x in r.set)
