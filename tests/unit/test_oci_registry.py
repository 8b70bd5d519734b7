"""The OCI registry's path (registry.kind "distribution"): its settings, its declaration, its presets against
the upstream files they name (as data here, read from the mirrors at the commits in PROVENANCE), its
config.yml against distribution's config-example.yml, and the OCI image the lab builds."""
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from labkit.config.presets import PRESETS, PROVENANCE
from labkit.config.render import OCI_FRONT, RegistryPaths, lab_nginx_paths, render_nginx, render_registry_config
from labkit.config.settings import LabSettings, SettingsError, parse_settings
from labkit.lab.changes import HostFeatures, plan_changes
from labkit.lab.oci_image import ensure_oci_layout, layer_sizes, read_layout
from labkit.lab.programs import PROGRAMS, program_problems
from labkit.path import NODE_NAMES, registry_path
from labkit.units import KiB, MiB

from .test_presets import nginx_directives

# distribution v2.8.2 (7c354a4b) cmd/registry/config-example.yml, its auth section left out (not modelled)
CONFIG_EXAMPLE = {"version": 0.1, "log": {"fields": {"service": "registry"}},
                  "storage": {"cache": {"blobdescriptor": "inmemory"},
                              "filesystem": {"rootdirectory": "/var/lib/registry"}},
                  "http": {"addr": ":5000", "headers": {"X-Content-Type-Options": ["nosniff"]}},
                  "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}}}

V2 = ("server", "location /v2/")
_HEADERS = [(V2, "proxy_set_header", h) for h in (("Host", "$http_host"), ("X-Real-IP", "$remote_addr"),
                                                   ("X-Forwarded-For", "$proxy_add_x_forwarded_for"))]
# docs/content/recipes/nginx.md at 0d6b721d: the TLS server and its /v2/ location (auth_basic and the
# user-agent check not modelled; proxy_pass's address is the lab's)
RECIPE_SERVER = [(("server",), "ssl_protocols", ("TLSv1.1", "TLSv1.2")),
                 (("server",), "ssl_ciphers", ("EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH",)),
                 (("server",), "ssl_prefer_server_ciphers", ("on",)),
                 (("server",), "ssl_session_cache", ("shared:SSL:10m",)),
                 (("server",), "client_max_body_size", ("0",)),
                 (V2, "add_header", ("Docker-Distribution-Api-Version", "$docker_distribution_api_version", "always")),
                 *_HEADERS, (V2, "proxy_set_header", ("X-Forwarded-Proto", "$scheme")),
                 (V2, "proxy_read_timeout", ("900s",))]
# make/photon/prepare/templates/nginx/nginx.https.conf.jinja at v2.15.2 (080b0220): the 8443 server's /v2/
# (its X-Forwarded-Proto comes from a map of $http_x_forwarded_proto: here $scheme; proxy_http_version is set
# at http level there, in /v2/ here)
HARBOR_SERVER = [(("server",), "ssl_protocols", ("TLSv1.2", "TLSv1.3")),
                 (("server",), "ssl_ciphers", ("!aNULL:kECDH+AESGCM:ECDH+AESGCM:RSA+AESGCM:kECDH+AES:ECDH+AES:RSA+AES:",)),
                 (("server",), "ssl_prefer_server_ciphers", ("on",)),
                 (("server",), "ssl_session_cache", ("shared:SSL:10m",)),
                 (("server",), "client_max_body_size", ("0",)),
                 *_HEADERS, (V2, "proxy_buffering", ("off",)), (V2, "proxy_request_buffering", ("off",)),
                 (V2, "proxy_send_timeout", ("900s",)), (V2, "proxy_read_timeout", ("900s",)),
                 (V2, "proxy_http_version", ("1.1",))]
MAIN = {"distribution-2.8": [(("events",), "worker_connections", ("1024",)), ((), "worker_processes", ("1",))],
        "harbor-front": [(("events",), "worker_connections", ("3096",)), ((), "worker_processes", ("auto",))]}
UPSTREAM = {"distribution-2.8": RECIPE_SERVER, "harbor-front": HARBOR_SERVER}


def front(s: LabSettings, tmp: Path) -> str:
    paths = lab_nginx_paths(tmp, "127.0.0.1:18080", "127.0.0.1:15000", tmp / "images", protocol="http",
                            listen_tls="127.0.0.1:18443")
    return render_nginx(s, replace(paths, server_template=OCI_FRONT))


@pytest.mark.parametrize("name", list(UPSTREAM))
def test_the_fronts_have_the_upstream_directives_and_values(name, tmp_path):
    text = front(PRESETS[name], tmp_path)
    got = nginx_directives(text, tmp_path, "nginx.conf")
    # the servers sit in http: strip that level; the TLS block is the one with `listen ... ssl`
    servers = text.split("    server {")
    tls = nginx_directives("server {" + servers[2].rsplit("}", 1)[0], tmp_path, "tls.conf")
    for want in UPSTREAM[name]:
        assert tls[want] == 1, (name, want, [k for k in tls if k[1] == want[1]])
    for want in MAIN[name]:
        assert got[want] == 1, (name, want)
    assert (("http", "server", "location /v2/"), "proxy_pass", ("http://127.0.0.1:15000",)) in got


def test_buffering_and_temp_file_cap_are_written_only_when_they_differ(tmp_path):
    recipe = front(PRESETS["distribution-2.8"], tmp_path)
    assert "proxy_buffering" not in recipe and "proxy_max_temp_file_size" not in recipe   # nginx's on, 1024m
    s = PRESETS["distribution-2.8"].changed(nginx={"proxy_max_temp_file_size": "8m"})
    assert front(s, tmp_path).count("proxy_max_temp_file_size 8m;") == 2          # the plain block and TLS's


def test_config_yml_is_config_example_with_the_labs_address_and_root():
    text = render_registry_config(PRESETS["distribution-2.8"], RegistryPaths(":5000", "/var/lib/registry"))
    assert yaml.safe_load(text) == CONFIG_EXAMPLE
    off = LabSettings().changed(registry={"kind": "distribution", "blobdescriptor_cache": "none",
                                          "health_storagedriver": False, "log_level": "debug"})
    doc = yaml.safe_load(render_registry_config(off, RegistryPaths("10.0.0.3:5000", "/srv/r")))
    assert "cache" not in doc["storage"] and "health" not in doc and doc["log"]["level"] == "debug"
    assert doc["storage"]["filesystem"]["rootdirectory"] == "/srv/r" and doc["http"]["addr"] == "10.0.0.3:5000"


def test_provenance_names_tags_commits_and_files():
    d, h = PROVENANCE["distribution-2.8"], PROVENANCE["harbor-front"]
    assert (d.repo, d.tag, d.commit[:9], d.files) == ("distribution/distribution", "v2.8.2", "7c354a4b4",
                                                       ("cmd/registry/config-example.yml",))
    assert d.also[0].files == ("docs/content/recipes/nginx.md",) and len(d.also[0].commit) == 40
    assert (h.repo, h.tag, h.commit[:9]) == ("goharbor/harbor", "v2.15.2", "080b02205")
    assert "nginx.https.conf.jinja" in h.files[0] and "v2.15.2" in str(h)
    assert PRESETS["distribution-2.8"].registry.kind == PRESETS["harbor-front"].registry.kind == "distribution"


def test_registry_kind_is_validated_with_a_clear_error():
    with pytest.raises(SettingsError, match="registry.kind"):
        parse_settings({"registry": {"kind": "quay"}})
    with pytest.raises(SettingsError, match="proxy_max_temp_file_size"):
        parse_settings({"nginx": {"proxy_max_temp_file_size": "4k"}})
    assert parse_settings({"nginx": {"proxy_max_temp_file_size": "0"}}).nginx.proxy_max_temp_file_size == "0"
    with pytest.raises(SettingsError, match="registry.layers"):
        parse_settings({"registry": {"layers": 0}})


def test_the_distribution_path_puts_the_registry_where_uwsgi_was():
    p = registry_path(1, registry="distribution")
    progs = {s.name: s.program for s in p.services if not s.name.startswith("iperf3")}
    assert progs == {"registry": "distribution", "nginx": "nginx-oci"} and not program_problems(p)
    nginx = p.service("nginx")
    assert (nginx.upstream.node, nginx.upstream.protocol) == ("registry", "http") and nginx.tls == "nginx_tls"
    assert [s.name for s in p.stages] == ["registry", "nginx", "tls", "published port", "full path"]
    assert p.disk_stage("temp spooling").idle_when == {"nginx.proxy_buffering": (False,),
                                                       "nginx.proxy_max_temp_file_size": ("0",)}
    assert "registry" in NODE_NAMES and set(PROGRAMS) >= {"distribution", "nginx-oci"}
    assert [s.program for s in registry_path(2, registry="distribution").services].count("distribution") == 1
    with pytest.raises(SettingsError, match="registry.kind"):
        registry_path(1, registry="quay")


def test_changing_the_registry_kind_of_a_running_lab_is_refused():
    feats = HostFeatures(True, ("cubic",), True)
    old = PRESETS["distribution-2.8"]
    assert any("registry.kind" in p for p in plan_changes(old, LabSettings(), feats).problems)
    ch = plan_changes(old, old.changed(registry={"layers": 5}), feats)
    assert ch.steps == ("distribution",) and not ch.problems


def test_layer_sizes_put_the_rest_in_one_large_layer():
    assert layer_sizes(32 * MiB, 1) == [32 * MiB]
    assert layer_sizes(32 * MiB, 3) == [2 * MiB, 2 * MiB, 28 * MiB]
    assert layer_sizes(16 * KiB, 2) == [4 * KiB, 12 * KiB]
    with pytest.raises(SettingsError, match="too small"):
        layer_sizes(8 * KiB, 4)


def test_the_oci_layout_is_deterministic_and_its_digests_are_its_bytes(tmp_path):
    a = ensure_oci_layout(tmp_path / "a", 256 * KiB, 3)
    b = ensure_oci_layout(tmp_path / "b", 256 * KiB, 3)
    assert (a.manifest_digest, a.layer_digests) == (b.manifest_digest, b.layer_digests)
    assert len(a.layer_digests) == 3 and a.largest[1] == max(a.layer_sizes) > 192 * KiB
    blobs = a.layout / "blobs" / "sha256"
    for digest in (a.manifest_digest, a.config_digest, *a.layer_digests):
        assert "sha256:" + hashlib.sha256((blobs / digest[7:]).read_bytes()).hexdigest() == digest
    manifest = json.loads((blobs / a.manifest_digest[7:]).read_bytes())
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert all(d["mediaType"].endswith("tar+gzip") for d in manifest["layers"])
    assert read_layout(a.layout) == a and a.ref == "servelab/image:latest"
    with pytest.raises(SettingsError, match="no manifest tagged"):
        read_layout(a.layout, "other")
