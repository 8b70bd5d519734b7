"""The OCI path's pure parts (issue 27 item 3): kind `oci` against a crafted registry (every layer checked by its
digest, the manifest held against the one stocked), the kinds refused where they do not speak the registry's
API, labkit's own client picked by API, the bundle's files for distribution, the panel's groups per registry."""
from __future__ import annotations

import pytest

from labkit.bundle.export import SETTINGS_FILE, config_files, export_bundle, import_bundle
from labkit.clients import oci_own
from labkit.clients.apis import api_problems
from labkit.clients.kind import OciImageRef, Target, Where
from labkit.clients.kinds import KINDS, own_client
from labkit.clients.oci import MAX_PARALLEL_DOWNLOADS
from labkit.config.presets import PRESETS
from labkit.config.settings import ClientSettings, SettingsError
from labkit.path import plan, registry_path
from labkit.present.widgets import TuningPanel, panel_groups

from .oci_fakes import Registry, Resp, manifest, sha

DIST = PRESETS["distribution-2.8"]
LAYERS = [b"a" * 5000, b"b" * 7000, bytes(range(256)) * 400]
CONFIG = b'{"architecture":"amd64","os":"linux"}'
BASE = "http://192.0.2.20:443"


def registry(layers=LAYERS, served=None) -> Registry:
    """A registry serving an image of `layers` (its blobs `served` instead where given, by index)."""
    man = manifest(layers, CONFIG)
    routes = {f"{BASE}/v2/": Resp(200), f"{BASE}/v2/servelab/image/manifests/latest":
              Resp(200, man, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
              f"{BASE}/v2/servelab/image/blobs/{sha(CONFIG)}": Resp(200, CONFIG)}
    for i, blob in enumerate(layers):
        body = (served or {}).get(i, blob)
        routes[f"{BASE}/v2/servelab/image/blobs/{sha(blob)}"] = \
            lambda url, h, body=body: Resp(200, body, {"Content-Length": str(len(body)), "Accept-Ranges": "bytes"})
    reg = Registry(routes)
    reg.manifest_digest = sha(man)
    return reg


def target(reg: Registry, layers=LAYERS) -> Target:
    ref = OciImageRef("servelab/image", "latest", reg.manifest_digest, sha(CONFIG),
                      tuple((sha(b), len(b)) for b in layers))
    return Target(None, "192.0.2.20", 443, "/v2/servelab/image/manifests/latest", sha(layers[-1])[7:], ref.size,
                  None, ref)


@pytest.fixture
def served(monkeypatch):
    """kind oci's HTTP served by a crafted registry (open_get(ns, url, timeout, trust, follow, headers))."""
    def use(reg: Registry):
        monkeypatch.setattr(oci_own, "open_get", lambda ns, url, timeout, trust, follow, headers: reg.get(url, headers))
        return reg
    return use


def test_kind_oci_pulls_manifest_config_and_every_layer_each_checked_by_its_digest(served):
    reg = served(registry())
    rs = KINDS["oci"]().pull(target(reg), Where(), parallel=1)
    assert len(rs) == 1 and rs[0].ok and rs[0].sha256_ok and rs[0].check == "sha256"
    assert rs[0].bytes == sum(map(len, LAYERS))
    asked = [u.rsplit("/", 1)[-1] for u, _ in reg.requests]
    assert asked[:3] == ["", "latest", sha(CONFIG)]                      # ping, manifest, config, then the layers
    assert sorted(asked[3:]) == sorted(sha(b) for b in LAYERS)
    assert "application/vnd.oci.image.manifest.v1+json" in reg.requests[1][1]["Accept"]


def test_a_layer_whose_bytes_are_not_its_digest_fails_the_pull_naming_the_layer(served):
    bad = bytearray(LAYERS[1])
    bad[100] ^= 1
    reg = served(registry(served={1: bytes(bad)}))
    r = KINDS["oci"]().pull(target(reg), Where())[0]
    assert not r.ok and r.sha256_ok is False and r.error.startswith(f"layer {sha(LAYERS[1])[:19]}")


def test_a_manifest_other_than_the_one_stocked_fails_before_any_layer(served):
    reg = served(registry())
    other = Registry(reg.routes)
    other.manifest_digest = sha(b"another manifest")
    r = KINDS["oci"]().pull(target(other), Where())[0]
    assert not r.ok and "not the sha256:" in r.error and r.bytes == 0
    assert not [u for u, _ in reg.requests if "/blobs/" in u and sha(CONFIG) not in u]


def test_n_pulls_at_once_each_whole_and_verified(served):
    reg = served(registry())
    rs = KINDS["oci"]().pull(target(reg), Where(), parallel=3)
    assert len(rs) == 3 and all(r.ok and r.sha256_ok for r in rs)
    assert sum("/blobs/" in u for u, _ in reg.requests) == 3 * (len(LAYERS) + 1)


def test_kind_oci_speaks_only_oci_and_fetches_layers_as_containers_image_does():
    k = KINDS["oci"]
    assert k.apis == ("oci",) and k.at_once == MAX_PARALLEL_DOWNLOADS == 6 and k.cpu == "threads"
    with pytest.raises(SettingsError, match="OCI distribution API"):
        k().pull(Target(None, "h", 80, "/api/container/a/b:c", "0" * 64, 10), Where())


def test_labkits_own_client_is_picked_by_the_registrys_api():
    assert own_client("oci").name == "oci" and own_client("sregistry").name == "labkit" and own_client().name == "labkit"
    assert DIST.registry.api == "oci" and PRESETS["sregistry-2018-10"].registry.api == "sregistry"


@pytest.mark.parametrize("kind,registry", [("sregistry-cli", "distribution-2.8"), ("singularity-2.6", "harbor-front"),
                                           ("labkit", "distribution-2.8"), ("oci", "sregistry-2018-10")])
def test_a_kind_that_does_not_speak_the_registrys_api_is_refused_naming_both(kind, registry):
    s = PRESETS[registry].changed(client=ClientSettings(kind=kind).model_dump())
    problems = api_problems(s)
    assert len(problems) == 1 and f"client.kind {kind!r}" in problems[0]
    assert f"registry.kind {s.registry.kind!r}" in problems[0]
    assert not api_problems(PRESETS[registry])          # each preset's own client speaks its registry's API


def test_the_bundle_for_distribution_holds_nginx_and_the_registrys_config_and_reads_back(tmp_path):
    s = DIST.changed(nginx={"proxy_buffering": False})
    files = config_files(s)
    assert set(files) == {"nginx.conf", "nginx/nginx.conf", "config.yml"}
    assert "proxy_pass http://registry:5000;" in files["nginx.conf"] and "proxy_buffering off;" in files["nginx.conf"]
    assert "rootdirectory: /var/lib/registry" in files["config.yml"] and "addr: :5000" in files["config.yml"]
    seen = []
    final, tar = export_bundle(s, tmp_path, "oci", check=lambda stage, st: seen.append(
        sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())))
    assert "uwsgi.ini" not in seen[0] and {"config.yml", "nginx.conf", "nginx/nginx.conf", SETTINGS_FILE,
                                           "docker-compose.override.yml", "README.md"} <= set(seen[0])
    override = (final / "docker-compose.override.yml").read_text()
    assert "./config.yml:/etc/docker/registry/config.yml:ro" in override and "uwsgi" not in override
    readme = (final / "README.md").read_text()
    assert "`nginx.proxy_buffering` | True | **False**" in readme and "distribution-2.8" in readme
    assert import_bundle(final) == s and import_bundle(tar) == s
    (final / "config.yml").write_text(files["config.yml"].replace("inmemory", "redis"))
    with pytest.raises(ValueError, match="edited after export"):
        import_bundle(final)


def test_the_panel_shows_the_registrys_own_groups():
    assert "registry" in panel_groups(DIST) and not {"app", "uwsgi"} & set(panel_groups(DIST))
    assert {"app", "uwsgi"} <= set(panel_groups(PRESETS["sregistry-2018-10"]))
    assert "registry" not in panel_groups(PRESETS["sregistry-2018-10"])



class _OciStubLab:
    settings = DIST
    plan = plan("stub", False, path=registry_path(registry="distribution"))
    path = plan.path

    def check(self, s):
        return []


def test_the_panel_reads_the_oci_presets_controls_back_unchanged():
    p = TuningPanel(_OciStubLab(), lambda s, label, n: {"label": label})
    assert p.settings() == DIST                      # e.g. client_max_body_size "0" stays the text "0"
    p.set("nginx.proxy_buffering", False)
    p.set("registry.layers", "5")
    assert p.settings() == DIST.changed(nginx={"proxy_buffering": False}, registry={"layers": 5})


def test_the_injection_matrix_on_the_oci_path_starts_from_its_preset_and_names_its_programs():
    from labkit.experiments.matrix import CASES, cases_for
    oci = registry_path(registry="distribution")
    assert (oci.registry, oci.backend) == ("distribution", "registry")
    assert (registry_path().registry, registry_path().backend) == ("sregistry", "uwsgi")
    cases = {c.name: c for c in cases_for(oci)}
    assert {c.preset for c in cases.values()} == {"distribution-2.8"}
    assert "uwsgi CPU capped" not in cases and cases["registry CPU capped"].expected == "registry: cpu"
    assert cases["slow cold disk"].stage == "registry"
    assert cases["link nginx at 800mbit"].expected == "nginx or tls (at capacity): link"   # TLS on: either stage
    assert [n for n in cases if n.startswith("unshaped")] == ["unshaped, distribution-2.8"]
    assert all(c.preset.startswith(("sregistry", "seed", "recommended")) for c in CASES)
    assert len(CASES) == 19 and "registry CPU capped" not in {c.name for c in CASES}


def test_the_tls_fixes_on_an_oci_path_name_todays_clients_not_sregistrys():
    from labkit.analyze.remedies import tls_remedies
    from labkit.config.presets import PRESETS
    oci = {r.name: r for r in tls_remedies(PRESETS["distribution-2.8"])}
    sreg = {r.name: r for r in tls_remedies(PRESETS["sregistry-2018-10-https"])}
    assert "containers/image" in str(oci["AES-128-GCM first"]) and "sregistry" not in str(oci["AES-128-GCM first"])
    assert "insecure" in str(oci["plain http on the cluster network"])
    assert "CentOS 7" in str(sreg["AES-128-GCM first"])
