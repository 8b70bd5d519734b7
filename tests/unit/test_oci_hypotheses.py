"""Today's slow pulls on the OCI path: every hypothesis cited (its issue, its code at a commit), every override and
fix valid against the settings model and doing what it says, and the judging rule on crafted runs with known
answers."""
import re

import pandas as pd
import pytest

from labkit.analyze.oci_hypotheses import COMMON, HYPOTHESES, binding, by_name, fix_for, judge, judge_one, table
from labkit.config.presets import preset
from labkit.errors import SettingsError
from labkit.experiments import DECLARED, declared
from labkit.experiments.oci_hypotheses import chosen

SHA = re.compile(r"^[0-9a-f]{8,40}$")
MEASURED = [h for h in HYPOTHESES if not h.unmeasurable]


def test_the_issue_list_is_covered():
    """Issue 27's list: buffering and the 1 GiB cap, proxy_read_timeout, workers, client concurrency, HTTP/2,
    docker-proxy, storage latency: each cited by its upstream issue."""
    cited = {str(i) for h in HYPOTHESES for i in h.issues}
    assert {"goharbor/harbor#2936", "goharbor/harbor#16651", "containerd/containerd#8160", "containers/image#776",
            "golang/go#47840", "curl/curl#1102", "moby/moby#47537", "goharbor/harbor#21753",
            "distribution/distribution#2456", "goharbor/harbor PR#2973"} <= cited


@pytest.mark.parametrize("h", HYPOTHESES, ids=lambda h: h.name)
def test_each_is_cited_with_its_issue_and_its_code(h):
    assert h.issues and h.code, h.name
    for i in h.issues:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", i.repo) and re.fullmatch(r"(PR)?#\d+", i.number) and i.says
    for c in h.code:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", c.repo) and SHA.match(c.commit), c
        assert "/" in c.path or "." in c.path and c.does
    assert h.explains and h.fix_text


@pytest.mark.parametrize("h", MEASURED, ids=lambda h: h.name)
def test_each_override_and_fix_is_valid_and_changes_something(h):
    made, fixed = h.settings(*COMMON), h.settings(*COMMON, fixed=True)
    assert made.registry.kind == fixed.registry.kind == "distribution"
    assert h.fix, h.name
    assert made != fixed, f"{h.name}: its fix changes nothing"
    # every override names a real setting and lands where it says
    for o in (*h.overrides, *h.fix):
        group, rest = o.split("=", 1)[0].split(".", 1)
        assert hasattr(getattr(made, group), rest), o


def test_the_overrides_do_what_the_hypotheses_say():
    spool = by_name("nginx spools blobs to a slow temp disk")
    s, f = spool.settings(*COMMON), spool.settings(*COMMON, fixed=True)
    assert s.nginx.proxy_buffering and s.storage.disk == "loop" and s.storage.write_mbps == 20
    assert not f.nginx.proxy_buffering
    cap = by_name("the 1 GiB proxy_max_temp_file_size cap").settings(*COMMON)
    assert cap.nginx.proxy_max_temp_file_size == "1m"
    assert by_name("the 1 GiB proxy_max_temp_file_size cap").settings(fixed=True).nginx.proxy_max_temp_file_size == "0m"
    one = by_name("one nginx worker for every TLS pull")
    assert one.settings().nginx.worker_processes == 1 and one.settings().tls.enabled      # the recipe's own
    assert one.settings(fixed=True).nginx.worker_processes == 2
    auto = by_name("worker_processes auto against a CPU quota").settings()
    assert auto.nginx.worker_processes == "auto" and auto.cpu.nginx_cpus == 1 and not auto.nginx.proxy_buffering
    serial = by_name("a client that pulls one layer at a time")
    assert serial.settings().client.layers_at_once == 1 and serial.settings(fixed=True).client.layers_at_once == 6
    assert by_name("docker-proxy under pull storms").settings().publish.iptables is False
    assert by_name("storage latency under the registry's root").settings(*COMMON).storage.latency_ms == 2


def test_http2_is_carried_unmeasured_with_its_reason():
    h2 = by_name("HTTP/2 flow-control windows")
    assert "netem" in h2.unmeasurable and "http_v2" in h2.unmeasurable
    assert h2 not in chosen(declared("oci-hypotheses"))
    row = table().set_index("hypothesis").loc[h2.name]
    assert row.measured.startswith("no: ")


def test_layers_at_once_belongs_to_the_oci_kind():
    with pytest.raises(SettingsError, match="layers_at_once"):
        preset("distribution-2.8").changed(client={"kind": "curl", "layers_at_once": 2})
    with pytest.raises(SettingsError, match="layers_at_once"):
        preset("distribution-2.8").changed(client={"kind": "oci", "layers_at_once": 0})


def test_by_name_names_the_ones_there_are():
    with pytest.raises(KeyError, match="docker-proxy under pull storms"):
        by_name("nope")


def runs(name, as_is, fixed, parallel=1, fail_as_is=0, fail_fixed=0):
    return pd.DataFrame([{"hypothesis": name, "variant": "as is", "parallel": parallel, "MBps": v,
                          "failures": fail_as_is} for v in as_is] +
                        [{"hypothesis": name, "variant": "fixed", "parallel": parallel, "MBps": v,
                          "failures": fail_fixed} for v in fixed])


def test_judge_one_binds_only_beyond_noise():
    r = runs("x", [100, 110], [300, 320])
    assert judge_one(r[r.variant == "as is"], r[r.variant == "fixed"])["judged"].startswith("binds: the fix is 3.0x")
    r = runs("x", [100, 110], [115, 120])          # within the 25% floor
    assert judge_one(r[r.variant == "as is"], r[r.variant == "fixed"])["judged"].startswith("does not bind")
    r = runs("x", [100, 400], [400, 420])          # the as-is runs' spread swallows the difference
    j = judge_one(r[r.variant == "as is"], r[r.variant == "fixed"])
    assert not j["binds"]
    r = runs("x", [300], [100])
    assert judge_one(r[r.variant == "as is"], r[r.variant == "fixed"])["judged"] == "the fix is slower"


def test_failures_bind_when_the_fix_has_none():
    r = runs("x", [50, 60], [55, 58], fail_as_is=2)
    j = judge_one(r[r.variant == "as is"], r[r.variant == "fixed"])
    assert j["binds"] and "fail" in j["judged"] and j["failures"] == 4
    r = runs("x", [50, 60], [55, 58], fail_as_is=1, fail_fixed=1)
    assert not judge_one(r[r.variant == "as is"], r[r.variant == "fixed"])["binds"]


def test_judge_every_hypothesis_and_pull_count_and_the_order_of_binding():
    a, b = MEASURED[0].name, MEASURED[1].name
    all_runs = pd.concat([runs(a, [100, 100], [400, 410]), runs(a, [90, 95], [100, 100], parallel=4),
                          runs(b, [100, 105], [200, 210]), runs(b, [90, 95], [92, 91], parallel=4)])
    j = judge(all_runs, hypotheses=(MEASURED[0], MEASURED[1], by_name("HTTP/2 flow-control windows")))
    assert list(j.parallel[:4]) == [1, 4, 1, 4]
    assert list(j.binds[:4]) == [True, False, True, False]
    assert j.judged.iloc[-1].startswith("not measurable here")
    assert binding(j) == [a, b]             # the largest gain first
    assert binding(j[~j.binds]) == []


def test_the_experiment_is_declared():
    assert "oci-hypotheses" in DECLARED
    exp = declared("oci-hypotheses")
    s = exp.lab_settings()
    assert s.registry.kind == "distribution" and s.storage.disk == "loop"
    assert exp.steps(exp) == len(MEASURED) * exp.repeats * 2
    assert 1 in exp.parallels and max(exp.parallels) > 1


def test_the_bundle_carries_the_deployable_fixes_of_what_binds_only():
    spool, storage = by_name("nginx spools blobs to a slow temp disk"), by_name("storage latency under the registry's root")
    proxy = by_name("docker-proxy under pull storms")
    j = judge(pd.concat([runs(spool.name, [50, 52], [150, 155]), runs(storage.name, [40, 41], [200, 210]),
                         runs(proxy.name, [100, 104], [101, 103])]), hypotheses=(spool, storage, proxy))
    base = preset("distribution-2.8")
    s, lines = fix_for(j, base, hypotheses=(spool, storage, proxy))
    assert s.nginx.proxy_buffering is False                         # bundled
    assert s.storage == base.storage and s.publish == base.publish  # the disk is the machine's; proxy did not bind
    assert lines[0].startswith(spool.name + ": bundled") and "not a setting to deploy" in lines[1]
    assert len(lines) == 2
    same, none = fix_for(j[~j.binds], base)
    assert same == base and none == []
    timeout = by_name("proxy_read_timeout on big blobs")          # its fix, 900 s, is the recipe's own
    s, lines = fix_for(judge(runs(timeout.name, [0, 0], [2, 2], fail_as_is=1), hypotheses=(timeout,)), base,
                       hypotheses=(timeout,))
    assert s == base and lines == [f"{timeout.name}: already so in these settings (nginx.proxy_read_timeout=900)"]
