"""Every preset's rendered nginx config passes the real `nginx -t` (the lab's paths)."""
import shutil
import subprocess
from dataclasses import replace

import pytest

from labkit.config.presets import PRESETS
from labkit.config.render import OCI_FRONT, lab_nginx_paths, render_nginx
from labkit.lab.conditions.tls import write_server_files


@pytest.mark.skipif(not shutil.which("nginx", path="/usr/sbin:/usr/bin"), reason="nginx not installed")
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_passes_nginx_t(name, tmp_path):
    (tmp_path / "nginx-temp").mkdir()
    if PRESETS[name].tls.enabled:      # the lab's TLS files, where lab_nginx_paths puts them
        write_server_files(tmp_path / "tls", ["127.0.0.1"], dhparam=PRESETS[name].tls.dhparam)
    conf = tmp_path / "nginx.conf"
    oci = PRESETS[name].registry.kind == "distribution"     # an OCI registry's front: /v2/ proxied to it
    paths = lab_nginx_paths(tmp_path, "127.0.0.1:18080", "127.0.0.1:13031", tmp_path / "images",
                            protocol="http" if oci else "uwsgi")
    if oci:
        paths = replace(paths, server_template=OCI_FRONT)
    conf.write_text(render_nginx(PRESETS[name], paths))
    res = subprocess.run(["nginx", "-t", "-c", str(conf), "-e", str(tmp_path / "err.log")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
