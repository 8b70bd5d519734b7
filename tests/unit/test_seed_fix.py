"""The seed's fixes: the experiment's declaration, its candidates on the settings in force, the record as a table,
and his CentOS 7 clients' TLS offer (what the server can negotiate with them)."""
import ssl

import pandas as pd
import pytest

from labkit.analyze.seed_fix import RECORD_COLUMNS, fixes_table, render
from labkit.clients.registry_api import Trust
from labkit.config.cpu_models import code_path, model, negotiated
from labkit.config.presets import preset
from labkit.config.settings import LabSettings
from labkit.config.tls_clients import offer
from labkit.config.tls_fixes import FIXES
from labkit.experiments import declared
from labkit.experiments import seed_fix as sf
from labkit.units import MiB


def test_declared_at_the_contests_scale_and_run_by_name():
    e = declared("seed-fixes")
    assert e is sf.SEED_FIXES and e.measure is not None and e.record is not None and e.text is not None
    assert (e.parallels, e.repeats, e.compute_nodes, e.image_size, e.records) == ((1, 40), 3, 8, 128 * MiB, "recorded")
    assert e.lab_name.startswith("seedfix")
    # 7 candidates x (3 runs of one pull + 1 of 40); one fix, one pull count
    assert e.steps(e) == 7 * 4
    assert e.steps(e.with_(parallels=(1,), options={"only": ("AES-128",)})) == 3 * 2   # AES alone and its bundle


def test_each_fix_on_the_settings_in_force_with_his_clients():
    one, forty = sf.seed_settings(4, sf.key_for(1)), sf.seed_settings(4, sf.key_for(40))
    assert (one.nginx.worker_processes, one.uwsgi.processes, one.tls.enabled) == (1, 4, True)      # 2018-10-https
    assert (forty.nginx.worker_processes, forty.uwsgi.processes, forty.tls.enabled) == (32, 128, True)  # the poster's
    for s in (one, forty):
        assert (s.machine.vcpus, s.machine.dilation, s.cpu.model, s.client.tls_offer) == (8, 4, "opteron-6174", "centos7")
    assert sf.candidate("as it was", one) == one
    assert not sf.candidate("plain http on the cluster network", one).tls.enabled
    assert sf.candidate("AES-128-GCM first", one).tls.ciphers.startswith("ECDHE-RSA-AES128-GCM-SHA256:")
    assert sf.candidate("worker_processes = vCPUs (8)", forty).nginx.worker_processes == 8
    assert sf.candidate("X-Accel-Redirect", one).app.serve_mode == "accel"
    shipped = sf.candidate(sf.SHIPPED["plain http on the cluster network"].name, forty)
    assert (shipped.tls.enabled, shipped.app.serve_mode, shipped.nginx.worker_processes) == (False, "accel", 8)
    with pytest.raises(ValueError, match="no fix 'gzip'"):
        sf.candidate("gzip", one)
    assert sf.chosen(("plain http on the cluster network",)) == ["plain http on the cluster network"]   # exact
    assert len(sf.chosen(("plain http",))) == 2                  # the fix and the bundle that ships it
    with pytest.raises(ValueError, match="--only nope: no such fix"):
        sf.chosen(("nope",))


def _runs(fix, pulls, rates, predicted, tls="TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384"):
    return [dict(zip(RECORD_COLUMNS, (fix, sf.key_for(pulls), pulls, min(pulls, 8), i, r, predicted, "nginx", 0, 12.0,
                                      tls, "{}", 4.0, 2.58, 30.0, "now"))) for i, r in enumerate(rates)]


def test_the_record_as_a_table_median_spread_ratio_and_the_prediction_beside():
    records = pd.DataFrame(_runs("as it was", 1, [30, 34, 36], 33.9) + _runs("as it was", 40, [180], 254.1)
                           + _runs("AES-128-GCM first", 1, [40, 44, 45], 45.0, "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256")
                           + _runs("plain http on the cluster network", 1, [160, 170, 175], 168.0, ""))
    t = fixes_table(records).set_index("fix")
    assert t.loc["as it was", ["1 pull MB/s", "1 pull lo", "1 pull hi", "1 pull runs"]].tolist() == [34, 30, 36, 3]
    assert t.loc["AES-128-GCM first", "1 pull x as it was"] == round(44 / 34, 2)
    assert t.loc["AES-128-GCM first", "1 pull lk.scale"] == 45.0          # beside the measurement, not in its place
    assert t.loc["as it was", "40 pulls MB/s"] == 180 and t.loc["as it was", "40 pulls lk.scale"] == 254.1
    assert pd.isna(t.loc["AES-128-GCM first", "40 pulls MB/s"])
    assert t.loc["plain http on the cluster network", "TLS negotiated"] == "none (http)"
    text = render(fixes_table(records))
    assert "34 [30-36] (3 runs) x1.00, lk.scale 34" in text and "180 (1 run) x1.00, lk.scale 254" in text
    assert "not run" in text and "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256" in text
    assert sf.winner(fixes_table(records)) == "plain http on the cluster network"


def test_his_clients_offer_tls_1_2_without_chacha20():
    centos7 = offer("centos7").suites()
    assert centos7 and not any("CHACHA" in c or c.startswith("TLS_") or "CCM" in c for c in centos7)
    assert "ECDHE-RSA-AES128-GCM-SHA256" in centos7 and "ECDHE-RSA-AES256-GCM-SHA384" in centos7
    assert Trust(offer="centos7").context().maximum_version == ssl.TLSVersion.TLSv1_2
    assert Trust().context().maximum_version != ssl.TLSVersion.TLSv1_2         # this machine's, as before
    with pytest.raises(ValueError, match="client.tls_offer 'win95'"):
        offer("win95")


def test_the_server_negotiates_with_his_clients_what_they_could():
    https = preset("sregistry-2018-10-https")
    chacha = next(f for f in FIXES if f.name == "ChaCha20-Poly1305 preferred").apply(https).tls
    aes128 = next(f for f in FIXES if f.name == "AES-128-GCM first").apply(https).tls
    assert negotiated(https.tls, offer("centos7").suites()) == "ECDHE-RSA-AES256-GCM-SHA384"
    assert negotiated(aes128, offer("centos7").suites()) == "ECDHE-RSA-AES128-GCM-SHA256"
    # ChaCha20 first: this machine's client takes it, his fall back to the next suite (no gain for him)
    assert negotiated(chacha, offer("this machine").suites()) == "ECDHE-RSA-CHACHA20-POLY1305"
    assert negotiated(chacha, offer("centos7").suites()) == "ECDHE-RSA-AES256-GCM-SHA384"
    assert code_path(chacha, model("opteron-6174"), offer("centos7").suites())[0] == "aes-256-gcm"
    # a server that allows TLS 1.3: his clients still speak TLS 1.2 (its suites, its cipher order)
    tls13 = https.tls.model_copy(update={"protocols": "TLSv1.2 TLSv1.3"})
    assert negotiated(tls13, offer("this machine").suites()).startswith("TLS_")
    assert negotiated(tls13, offer("centos7").suites()) == "ECDHE-RSA-AES256-GCM-SHA384"


def test_the_setting_is_checked():
    with pytest.raises(ValueError, match="tls_offer"):
        LabSettings.model_validate({"client": {"tls_offer": "centos6"}})


def test_the_verdict_names_tls_in_software_on_the_model_and_offers_only_what_his_clients_can_use():
    from labkit.analyze.causes import Finding
    from labkit.analyze.remedies import tls_remedies
    from labkit.analyze.verdict import _in_software
    seed = sf.seed_settings(4)
    said = _in_software(Finding("tls", "cpu", "nginx's CPU"), seed)
    assert said == " (TLS in software on opteron-6174, 8 vCPUs, time-dilated k = 4: no AES-NI or PCLMULQDQ)"
    assert _in_software(Finding("tls", "cpu", "nginx's CPU"), preset("sregistry-2018-10-https")) == ""   # host CPU
    assert _in_software(Finding("nginx", "cpu", "nginx's CPU"), seed) == ""
    assert "ChaCha20-Poly1305 preferred" not in [r.name for r in tls_remedies(seed)]
    assert "AES-128-GCM first" in [r.name for r in tls_remedies(seed)]
    assert "ChaCha20-Poly1305 preferred" in [r.name for r in tls_remedies(preset("sregistry-2018-10-https"))]
