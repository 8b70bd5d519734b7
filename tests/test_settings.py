import pytest

from labkit.config.presets import PRESETS, SEED_POSTER, SREGISTRY_SHIPPED, preset
from labkit.config.settings import (LabSettings, SettingsError, parse_settings, rate_bits, size_bytes)


@pytest.mark.parametrize("text,expected", [("4k", 4096), ("10024m", 10024 * 2**20), ("1g", 2**30), (512, 512), ("0", 0)])
def test_size_bytes(text, expected):
    assert size_bytes(text) == expected


def test_rate_bits():
    assert rate_bits("5gbit") == 5e9
    assert rate_bits("100mbit") == 1e8


BAD = [
    ({"nginx": {"worker_processes": 0}}, "nginx.worker_processes"),
    ({"nginx": {"worker_processes": "lots"}}, "nginx.worker_processes"),
    ({"nginx": {"worker_connections": 8}}, "nginx.worker_connections"),
    ({"nginx": {"aio": "maybe"}}, "nginx.aio"),
    ({"nginx": {"sendfile_max_chunk": "2q"}}, "nginx.sendfile_max_chunk"),
    ({"nginx": {"uwsgi_buffer_size": "-4k"}}, "nginx.uwsgi_buffer_size"),
    ({"nginx": {"uwsgi_buffer_size": "64k"}}, "uwsgi_buffers: 8 4k is too small"),
    ({"nginx": {"uwsgi_buffers": {"number": 1, "size": "4k"}}}, "uwsgi_buffers"),
    ({"nginx": {"uwsgi_max_temp_file_size": "4k"}}, "uwsgi_max_temp_file_size"),
    ({"nginx": {"keepalive_timeout": -1}}, "nginx.keepalive_timeout"),
    ({"nginx": {"colour": "blue"}}, "nginx.colour"),
    ({"uwsgi": {"processes": -1}}, "uwsgi.processes"),
    ({"uwsgi": {"threads": 0}}, "uwsgi.threads"),
    ({"uwsgi": {"buffer_size": 100000}}, "uwsgi.buffer_size"),
    ({"app": {"serve_mode": "teleport"}}, "app.serve_mode"),
    ({"app": {"chunk_size": 1}}, "app.chunk_size"),
    ({"kernel": {"tcp_rmem": [4096, 1024, 8192]}}, "tcp_rmem"),
    ({"kernel": {"congestion_control": "BBR; rm"}}, "kernel.congestion_control"),
    ({"publish": {"mode": "carrier-pigeon"}}, "publish.mode"),
    ({"publish": {"iptables": False, "userland_proxy": False}}, "publishes nothing"),
    ({"publish": {"ip": "10.0.0.1"}}, "publish.ip"),
    ({"publish": {"host_port": 70000}}, "publish.host_port"),
    ({"links": {"wan": "5 gigs"}}, "links.wan"),
    ({"links": {"wan": "500bit"}}, "links.wan"),
]


@pytest.mark.parametrize("change,names", BAD)
def test_bad_values_are_refused_naming_the_setting(change, names):
    with pytest.raises(SettingsError) as err:
        SREGISTRY_SHIPPED.changed(**change)
    assert names in str(err.value)


def test_unknown_group_and_preset():
    with pytest.raises(SettingsError, match="unknown settings group 'bogus'"):
        SREGISTRY_SHIPPED.changed(bogus={})
    with pytest.raises(SettingsError, match="unknown preset 'fast'"):
        preset("fast")


def test_settings_are_immutable_and_changed_copies():
    s = SREGISTRY_SHIPPED.changed(nginx={"sendfile": False})
    assert s.nginx.sendfile is False and SREGISTRY_SHIPPED.nginx.sendfile is True
    with pytest.raises(Exception):
        SREGISTRY_SHIPPED.nginx.sendfile = False


def test_presets_match_their_sources():
    shipped = preset("sregistry-shipped")
    assert (shipped.nginx.worker_processes, shipped.nginx.worker_connections, shipped.nginx.sendfile) == (1, 1024, True)
    assert shipped.nginx.uwsgi_max_temp_file_size == "10024m"
    assert (shipped.uwsgi.processes, shipped.uwsgi.threads, shipped.uwsgi.harakiri) == (4, 4, 0)
    assert shipped.app.serve_mode == "fileresponse"
    assert (SEED_POSTER.uwsgi.processes, SEED_POSTER.nginx.worker_processes) == (128, 32)
    assert SEED_POSTER.nginx.sendfile is False and SEED_POSTER.nginx.access_log is False
    for s in PRESETS.values():
        assert parse_settings(s.model_dump()) == s


def test_round_trip_through_json():
    s = LabSettings().changed(kernel={"tcp_wmem": [4096, 65536, 8388608]})
    assert LabSettings.model_validate_json(s.model_dump_json()) == s
