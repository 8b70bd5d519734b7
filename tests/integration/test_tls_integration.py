"""https through the whole path on a real lab (root; -s shows the numbers): sregistry's https setup
(preset sregistry-2018-10-https), every client kind verifying the lab's CA, what is negotiated, and
what a wrong CA, a missing one or a wrong name gets: a refusal that says why, nothing left behind."""
from __future__ import annotations

import socket
import ssl

import pytest

from labkit.config.presets import preset
from labkit.lab.lab import Lab
from labkit.lab.conditions.tls import write_server_files
from labkit.experiments.probe import run_probe
from labkit.experiments.storm import run_storm
from labkit.clients.kinds import KINDS
from labkit.clients.puller import pull
from labkit.measure.pull_at import pull_at
from labkit.measure.locust_storm import StormSpec
from labkit.measure.survey import run_survey
from labkit.in_netns import inside
from labkit.clients.registry_api import Trust, fetch_manifest
from labkit.errors import TlsVerifyError

pytestmark = pytest.mark.integration
MiB = 2**20
HTTPS = preset("sregistry-2018-10-https")


@pytest.fixture(scope="module")
def lab():
    with Lab("ly-tls", settings=HTTPS, image_size=16 * MiB, quiet=True) as lab:
        yield lab
    assert not (lab.run_dir / "tls").exists()            # the CA and the key went with the lab


@pytest.mark.parametrize("kind", [k for k, c in KINDS.items() if k != "command" and "sregistry" in c.apis])   # command: the user's template
def test_every_client_kind_pulls_over_https_through_the_whole_path(lab, kind):
    lab.apply(HTTPS.changed(client={"kind": kind}))
    try:
        run = pull_at(lab)
    finally:
        lab.apply(HTTPS)
    print(f"\nmeasured: {kind} over https, full path: {run.mbps:.0f} MB/s", flush=True)
    assert run.ok and all(r.sha256_ok for r in run.results), run.errors
    ns, host, port = lab.plan.endpoint(lab.path.client_vantage)
    assert port == HTTPS.tls.port and lab.plan.tls_at(lab.path.client_vantage)


def test_the_seeds_client_gets_aes256_gcm_the_servers_first_choice(lab):
    ns, host, port = lab.plan.endpoint(lab.path.client_vantage)
    ctx = ssl.create_default_context(cafile=str(lab.tls.cafile))
    with inside(ns):
        raw = socket.create_connection((host, port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=host) as s:
        name, version, _ = s.cipher()
    print(f"\nmeasured: negotiated {name} over {version}", flush=True)
    assert (name, version) == ("ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2")


def test_the_survey_pulls_the_tls_stage_apart_from_nginx(lab):
    s = run_survey(lab, parallel=1, repeats=1, hops=[], vantages=["nginx", "nginx (tls)"], progress=False, tcp=False)
    rows = s.table.set_index("point")
    print(f"\nmeasured: nginx plain {rows.MBps['nginx']} MB/s, with TLS {rows.MBps['nginx (tls)']} MB/s", flush=True)
    assert {"nginx", "nginx (tls)"} <= set(rows.index) and rows.failures.sum() == 0


def test_a_wrong_ca_a_missing_ca_and_a_wrong_name_are_refused(lab, tmp_path):
    write_server_files(tmp_path / "other", ["192.0.2.20"], dhparam=False)       # another CA altogether
    ns, host, port = lab.plan.endpoint(lab.path.client_vantage)
    uri = lab.image.uri
    cases = {"wrong CA": Trust(str(tmp_path / "other" / "ca.pem")),
             "wrong name": Trust(str(lab.tls.cafile), server_name="elsewhere.test"),
             "no CA (the system's)": Trust()}
    for what, trust in cases.items():
        r = pull(ns, host, port, uri, trust=trust, timeout=10)
        print(f"\n{what}: {r.kind}: {r.error}", flush=True)
        assert not r.ok and r.kind == "connect" and "certificate verify failed" in r.error and str(port) in r.error
    missing = pull(ns, host, port, uri, trust=Trust(str(tmp_path / "none.pem")), timeout=10)
    assert not missing.ok and "CA file" in missing.error
    with pytest.raises(TlsVerifyError, match="certificate verify failed"):
        fetch_manifest(ns, host, port, uri, trust=Trust(str(tmp_path / "other" / "ca.pem")))
    other = tmp_path / "other" / "ca.pem"          # curl on the compute node, told another CA
    lab.apply(HTTPS.changed(client={"kind": "command", "command": f"curl -sS -f --cacert {other} -o {{dest}} {{url}}"}))
    try:
        before = set(lab.client.dest_root().iterdir())
        run = pull_at(lab, verify="length")
        print(f"\ncurl, wrong CA: {run.errors}", flush=True)
        assert not run.ok and "exited with 60" in run.errors and "certificate" in run.errors   # curl's "not verified"
        assert set(lab.client.dest_root().iterdir()) == before               # nothing left behind
    finally:
        lab.apply(HTTPS)


def test_the_probe_and_a_locust_storm_pull_over_https_with_the_lab_ca(lab):
    ns, host, port = lab.plan.endpoint(lab.path.client_vantage)
    url = f"https://{host}:{port}"
    p = run_probe(url, lab.image.uri, parallel=2, ns=ns, cacert=str(lab.tls.cafile), deadline=60)
    assert p.facts.failures == 0 and p.meta["image_url"].startswith("https://")
    with pytest.raises(TlsVerifyError, match="certificate verify failed"):
        run_probe(url, lab.image.uri, parallel=1, ns=ns, deadline=60)        # the system's CAs do not know the lab's
    storm = run_storm(lab, StormSpec(users=2, pulls=4, deadline=60))
    row = storm.row()
    print(f"\nmeasured: locust over https, {row['ok']} of {row['pulls']} pulls, {row['MBps']} MB/s", flush=True)
    assert row["harness_failures"] == 0 and row["ok"] == row["pulls"] == 4


def test_tls_turned_off_and_on_while_the_lab_runs(lab):
    lab.apply(HTTPS.changed(tls={"enabled": False}))       # the cluster network on plain http
    try:
        assert not lab.plan.tls and lab.plan.port("published") == 80 and not lab.tls.cafile.exists()
        run = pull_at(lab)
        assert run.ok and not lab.plan.tls_at(lab.path.client_vantage)
    finally:
        lab.apply(HTTPS)
    assert lab.plan.port("published") == 443 and lab.tls.cafile.exists() and pull_at(lab).ok


def test_the_dhparam_file_is_made_by_openssl(tmp_path):
    """sregistry's https setup names an ssl_dhparam file: the lab makes one (openssl genpkey, RFC 7919 group)."""
    write_server_files(tmp_path, ["192.0.2.20"], dhparam=True)
    assert (tmp_path / "dhparam.pem").read_text().startswith("-----BEGIN DH PARAMETERS")


def test_every_vantage_answers_over_https_the_vm_loopback_too(lab):
    """The VM's own 127.0.0.1 (docker-proxy's, under Docker's defaults) verifies the lab's certificate as well."""
    health = lab.health()
    assert "manifest via VM loopback" in health and all(v == "ok" for v in health.values()), health
