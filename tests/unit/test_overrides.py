"""`--set group.field=value` and settings files: typed, validated, refused with the setting's name."""
import json

import pytest

from labkit.config.overrides import apply_overrides, load_settings
from labkit.config.presets import preset
from labkit.config.settings import SettingsError

BASE = preset("sregistry-2018-10")


def test_overrides_take_values_as_an_operator_types_them():
    s = apply_overrides(BASE, ["links.nginx=800mbit", "nginx.sendfile=off", "kernel.tcp_rmem=4096 8192 65536",
                               "uwsgi.processes=8", "cpu.uwsgi_cpus=0.5", "nginx.uwsgi_buffers=16 8k",
                               "app.serve_mode=accel", "links.wan=none"])
    assert (s.links.rate("nginx"), s.nginx.sendfile, s.kernel.tcp_rmem, s.uwsgi.processes) == ("800mbit", False, (4096, 8192, 65536), 8)
    assert (s.cpu.cpus("uwsgi"), str(s.nginx.uwsgi_buffers), s.app.serve_mode, s.links.rate("wan")) == (0.5, "16 8k", "accel", None)
    assert apply_overrides(BASE, []) == BASE


@pytest.mark.parametrize("bad,needle", [
    ("links.nginx", "write group.field=value"),
    ("linkz.nginx=1gbit", "no settings group 'linkz'"),
    ("nginx.sendfil=off", "nginx has no setting 'sendfil'"),
    ("links.nginx=fast", "links.nginx: 'fast' is not a link rate"),
    ("uwsgi.processes=0", "uwsgi.processes"),
    ("storage.read_mbps=50", "need storage.disk = 'loop'"),
    ("storage.temp_mib=64", "temp_mib need storage.disk = 'loop'"),
    ("storage.temp_mib=8", "storage.temp_mib"),           # below the smallest ext4 disk the lab makes (16)
])
def test_a_bad_override_names_itself_and_changes_nothing(bad, needle):
    with pytest.raises(SettingsError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        apply_overrides(BASE, ["uwsgi.processes=8", bad])


def test_settings_files_load_or_say_where_they_are_wrong(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"settings": BASE.model_dump(mode="json")}))
    assert load_settings(f) == BASE
    f.write_text('{"nginx": {"worker_processes": 0}}')
    with pytest.raises(SettingsError, match=r"s\.json: nginx\.worker_processes"):
        load_settings(f)
    f.write_text('{"nginx": ')
    with pytest.raises(SettingsError, match=r"s\.json:1: not JSON"):
        load_settings(f)
    with pytest.raises(SettingsError, match="no such settings file"):
        load_settings(tmp_path / "missing.json")
