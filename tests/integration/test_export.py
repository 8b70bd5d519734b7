import json
import os
import tarfile

import pandas as pd
import pytest

from labkit.errors import ConfigRejected
from labkit.lab.programs.checks import uwsgi_check
from labkit.bundle.export import changes, import_bundle
from labkit.experiments.bundles import export_bundle
from labkit.config.presets import PRESETS, SREGISTRY_SHIPPED

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t of the bundle runs in a mount namespace (root)")
WINNER = SREGISTRY_SHIPPED.changed(app={"serve_mode": "accel"}, publish={"userland_proxy": False},
                                   uwsgi={"processes": 8, "harakiri": 20},
                                   kernel={"tcp_wmem": (4096, 65536, 8388608)})


@needs_root
@pytest.mark.parametrize("name,s", [*PRESETS.items(), ("winner", WINNER)])
def test_bundle_round_trip(tmp_path, name, s):
    table = pd.DataFrame([{"preset": "shipped", "single_MBps": 250.0}, {"preset": name, "single_MBps": 2000.0}])
    d, tar = export_bundle(s, tmp_path, name, measurements=table, image_mib=64)
    files = {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}
    backend = "config.yml" if s.registry.kind == "distribution" else "uwsgi.ini"    # the registry's own config
    assert {"nginx.conf", "nginx/nginx.conf", backend, "sysctl.d/60-servelab-tcp.conf",
            "docker-compose.override.yml", "servelab-settings.json", "README.md"} <= files
    assert ("daemon.json" in files) == (s.publish != SREGISTRY_SHIPPED.publish)
    assert import_bundle(d) == s and import_bundle(tar) == s
    readme = (d / "README.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in readme.splitlines() if line.startswith("| ")]
    assert ["preset", "single_MBps"] in rows and [name, "2000"] in rows
    # an sregistry bundle lists every change from sregistry's shipped settings; an OCI registry's names its config.yml
    for c in changes(s) if s.registry.kind == "sregistry" else ({"path": "config.yml"},):
        assert f"`{c['path']}`" in readme
    with tarfile.open(tar) as tf:
        assert f"{name}/nginx/nginx.conf" in tf.getnames()


@needs_root
def test_winner_bundle_says_why_and_what_to_install(tmp_path):
    d, _ = export_bundle(WINNER, tmp_path, "winner")
    readme = (d / "README.md").read_text()
    assert "X-Accel-Redirect: /_protected/" in readme and "daemon.json" in readme
    assert json.loads((d / "daemon.json").read_text()) == {"userland-proxy": False}
    assert "net.ipv4.tcp_wmem = 4096 65536 8388608" in (d / "sysctl.d/60-servelab-tcp.conf").read_text()
    assert 'net.ipv4.tcp_wmem: "4096 65536 8388608"' in (d / "docker-compose.override.yml").read_text()
    assert "harakiri" in readme and "47 s" in readme


@needs_root
def test_an_edited_bundle_is_not_imported_silently(tmp_path):
    d, _ = export_bundle(WINNER, tmp_path, "w")
    conf = d / "nginx/nginx.conf"
    conf.write_text(conf.read_text().replace("sendfile on;", "sendfile off;"))
    with pytest.raises(ValueError, match="edited after export"):
        import_bundle(d)


def test_uwsgi_refuses_an_unknown_directive(tmp_path):
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmaster = true\nprocesses = 2\nprocesess = 4\n")
    with pytest.raises(ConfigRejected, match="unknown config directive: procesess"):
        uwsgi_check(ini)
    ini.write_text("[uwsgi]\nmaster = true\nprocesses = 2\n")
    uwsgi_check(ini, expect_processes=2)
