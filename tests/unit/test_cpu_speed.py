"""The CPU ratio measured at lab start: crafted `openssl speed` output and /proc/stat samples (quiet and busy, known
answers), one measurement per lab or run (a meter, a session), read back from a lab, a survey and a record."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from labkit.config import cpu_models
from labkit.config.cpu_speed import (BUSY_CORES, Others, cpu_times, others_cores, parse_note, parse_speed,
                                     speed)
from labkit.config.presets import preset
from labkit.config.settings import SettingsError
from labkit.lab.conditions import speed_meter
from labkit.lab.conditions.cpu_emulation import emulation
from labkit.lab.conditions.machine import ScaleModel, host
from labkit.lab.conditions.speed_meter import Meter, measure, session
from labkit.records.cpu_ratio import cpu_ratio

# /proc/stat as proc(5) lays it out: user nice system idle iowait irq softirq steal guest guest_nice
STAT = """cpu  {user} 0 {system} {idle} {iowait} 0 {softirq} {steal} 0 0
cpu0 1 0 1 1 0 0 0 0 0 0
cpu1 1 0 1 1 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
"""
OPENSSL_OUT = """version: 3.0.19
built on: Tue Jan 27 00:00:00 2026 UTC
options: bn(64,64)
compiler: gcc -fPIC -pthread -m64 -Wa,--noexecstack
CPUINFO: OPENSSL_ia32cap=0x7ed8320b078bffff:0x400684219c01ab
The 'numbers' are in 1000s of bytes per second processed.
type          16384 bytes
AES-256-GCM     106866.69k
"""


def stat(user, system, idle, iowait=0, softirq=0, steal=0) -> str:
    return STAT.format(user=user, system=system, idle=idle, iowait=iowait, softirq=softirq, steal=steal)


def test_openssl_speeds_last_line_is_thousands_of_bytes_per_second():
    assert parse_speed(OPENSSL_OUT) == pytest.approx(106.86669)
    with pytest.raises(ValueError, match="no rate"):
        parse_speed("Error setting cipher aes-256-gcm\n")


def test_proc_stat_busy_is_everything_but_idle_and_iowait_and_counts_the_cpus():
    t = cpu_times(stat(user=100, system=50, idle=400, iowait=30, softirq=7, steal=3))
    assert (t.busy, t.idle, t.steal, t.cpus, t.total) == (160, 430, 3, 2, 590)
    with pytest.raises(ValueError, match="no 'cpu' line"):
        cpu_times("intr 1 2 3\n")


def test_a_quiet_machine_others_are_what_ran_besides_the_measurement():
    # 3 s on 2 CPUs (600 ticks at 100 Hz): 306 busy ticks, of which the measurement's own 3.0 CPU-s
    before = cpu_times(stat(1000, 500, 9000))
    after = cpu_times(stat(1000 + 300, 500 + 6, 9000 + 294))
    o = others_cores(before, after, own_s=3.0)
    assert (o.window_s, o.own_cores, o.cores, o.steal_cores) == (3.0, 1.0, 0.02, 0.0)
    assert not speed("aes-256-gcm", "~0x1", [100.0], 1, o, "t").busy


def test_a_busy_machine_a_hog_on_the_other_core_and_some_steal_count_as_others():
    before = cpu_times(stat(1000, 500, 9000, steal=10))
    # 3 s: the measurement 3.0 CPU-s, a hog 2.7 CPU-s, the hypervisor took 0.15 s: 30 idle ticks left
    after = cpu_times(stat(1000 + 570, 500 + 0, 9000 + 15, iowait=0, steal=10 + 15))
    o = others_cores(before, after, own_s=3.0)
    assert o.window_s == 3.0 and o.cores == pytest.approx(0.95) and o.steal_cores == pytest.approx(0.05)
    s = speed("aes-256-gcm", "~0x1", [90.0, 95.5, 80.0], 1, o, "t")
    assert s.busy and s.mbps == 95.5 and s.busy_above_cores == BUSY_CORES
    assert "BUSY" in s.note()


def test_the_measurements_own_cpu_is_not_counted_and_never_below_zero():
    before, after = cpu_times(stat(0, 0, 0)), cpu_times(stat(290, 0, 310))
    assert others_cores(before, after, own_s=3.1).cores == 0.0       # tick rounding: a little more than /proc saw
    with pytest.raises(ValueError, match="no time"):
        others_cores(before, before, own_s=0)


def test_the_busy_line_is_the_stated_threshold():
    at = Others(BUSY_CORES, 0, 1, 3)
    above = Others(BUSY_CORES + 0.01, 0, 1, 3)
    assert not speed("p", "", [1.0], 1, at, "t").busy and speed("p", "", [1.0], 1, above, "t").busy
    with pytest.raises(ValueError, match="no rate"):
        speed("p", "", [], 1, at, "t")


@pytest.mark.parametrize("others", [Others(0.02, 0.0, 1.0, 3.0), Others(1.37, 0.12, 1.0, 3.0)])
def test_the_note_says_the_record_back(others):
    s = speed("aes-256-gcm", "~0xff7fdff600000000:~0xffffffffffffffff", [104.23, 106.91, 105.5], 1, others,
              "2026-12-08T01:00:00Z")
    assert parse_note(f"some run: {s.note()}") == s
    assert parse_note("cpu.model opteron-6174: OPENSSL_ia32cap=...") is None


def _machine(tmp_path, samples: list[str], rates: list[float]):
    """A stand-in machine: /proc/stat advances to the next sample with each openssl run."""
    f = tmp_path / "stat"
    f.write_text(samples[0])
    left = list(samples[1:])

    def openssl(path, mask, seconds):
        f.write_text(left.pop(0))
        return rates[len(rates) - len(left) - 1]
    return f, openssl


def test_measure_quiet_and_busy_from_crafted_samples(tmp_path):
    quiet = [stat(0, 0, 0), stat(100, 0, 100), stat(200, 1, 199), stat(300, 6, 294)]
    f, openssl = _machine(tmp_path, quiet, [104.0, 107.0, 105.0])
    own = iter([10.0, 13.0])
    s = measure("aes-256-gcm", "~0x1", stat=f, openssl=openssl, children_cpu_s=lambda: next(own))
    assert (s.mbps, s.runs_mbps, s.others_cores, s.busy, s.source) == (107.0, (104.0, 107.0, 105.0), 0.02, False,
                                                                       "measured at lab start")
    busy = [stat(0, 0, 0), stat(180, 10, 10), stat(360, 20, 20), stat(540, 30, 30)]
    f, openssl = _machine(tmp_path, busy, [90.0, 88.0, 91.0])
    own = iter([0.0, 3.0])
    s = measure("aes-256-gcm", "~0x1", stat=f, openssl=openssl, children_cpu_s=lambda: next(own))
    assert s.others_cores == pytest.approx(0.9) and s.busy and s.mbps == 91.0


def _fake(monkeypatch, mbps=106.0, others=0.02) -> list:
    calls = []

    def fake(path, mask, runs=3, seconds=1, source=speed_meter.AT_START, **_):
        calls.append((path, mask))
        from dataclasses import replace
        return replace(speed(path, mask, [mbps], seconds, Others(others, 0, 1, 3), "2026-12-08T01:00:00Z"),
                       source=source)
    monkeypatch.setattr(speed_meter, "measure", fake)
    return calls


OPTERON_HTTPS = preset("sregistry-2018-10-https").changed(cpu={"model": "opteron-6174"})


def test_a_lab_measures_each_code_path_once_and_its_ratio_is_that_figure(monkeypatch):
    calls = _fake(monkeypatch, mbps=106.0)
    meter = Meter()
    emu = emulation(OPTERON_HTTPS, meter)
    again = emulation(OPTERON_HTTPS, meter)
    m = cpu_models.model("opteron-6174")
    assert len(calls) == 1 and emu == again
    assert emu.host_mbps == 106.0 and emu.ratio == pytest.approx(106.0 / m.mbps(emu.path), abs=1e-3)
    assert emu.speed.mbps == 106.0 and emu.speed.path == emu.path
    emulation(OPTERON_HTTPS, Meter())                       # another lab: measured again, fresh
    assert len(calls) == 2
    assert emulation(preset("sregistry-2018-10"), Meter()) is None and len(calls) == 2   # no model: nothing


def test_a_session_gives_every_lab_and_the_contests_k_one_figure(monkeypatch):
    calls = _fake(monkeypatch)
    with session() as shared:
        h = host(OPTERON_HTTPS)                             # the contest's choice of k
        lab1 = ScaleModel(OPTERON_HTTPS.changed(machine={"vcpus": 2, "dilation": 2}), speed_meter.current())
        lab2 = emulation(OPTERON_HTTPS, speed_meter.current())
    assert len(calls) == 1 and lab1.meter is shared and lab2.ratio == h.ratio
    assert lab2.speed.source == speed_meter.IN_SESSION
    host(OPTERON_HTTPS)                                     # outside: a measurement of its own
    assert len(calls) == 2


def test_what_this_machine_cannot_give_is_refused_from_the_fresh_figure(monkeypatch):
    calls = _fake(monkeypatch, mbps=106.0)                 # ratio ~2.6: 8 vCPUs need 8 / 2.6 = 3.1 cores at k = 1
    monkeypatch.setattr("labkit.lab.conditions.machine.os.cpu_count", lambda: 2)
    with pytest.raises(SettingsError, match="machine.vcpus: 8 emulated cores"):
        ScaleModel(OPTERON_HTTPS.changed(machine={"vcpus": 8}), Meter())
    assert len(calls) == 1
    with pytest.raises(SettingsError, match="machine.dilation"):
        OPTERON_HTTPS.changed(machine={"dilation": 0.5})   # a bad value: refused by the settings, nothing measured
    assert len(calls) == 1


def test_an_attached_lab_reads_the_figure_recorded_at_its_start(monkeypatch):
    calls = _fake(monkeypatch, mbps=100.0, others=0.9)
    first = Meter()
    emulation(OPTERON_HTTPS, first)
    records = json.loads(json.dumps(first.records()))      # as the lab's state file keeps them
    again = emulation(OPTERON_HTTPS, Meter.recorded(records))
    assert len(calls) == 1 and again.host_mbps == 100.0 and again.speed.busy
    assert again.speed.source == speed_meter.RECORDED


def test_cpu_ratio_reads_the_figure_back_from_a_lab_a_survey_and_a_record(monkeypatch, tmp_path):
    _fake(monkeypatch, mbps=106.0, others=0.9)
    emu = emulation(OPTERON_HTTPS, Meter())
    from dataclasses import asdict
    info = asdict(emu)
    lab = SimpleNamespace(cpu=SimpleNamespace(info=lambda: info))
    r = cpu_ratio(lab)
    assert r["ratio"] == emu.ratio and r["host_mbps"] == 106.0 and r["busy"] is True and r["others_cores"] == 0.9
    assert "BUSY" in r["text"] and f"{emu.ratio:.2f}" in r["text"]
    assert cpu_ratio(SimpleNamespace(meta={"cpu_model": info})) == r
    survey_json = tmp_path / "s.json"
    survey_json.write_text(json.dumps({"meta": {"cpu_model": info}}, default=str))
    assert cpu_ratio(survey_json)["ratio"] == emu.ratio
    contest = {"machine": {"ratio": emu.ratio, "cpu_model": "opteron-6174"},
               "notes": {"TLS": [emu.note(), emu.speed.note()], "disk": [emu.note(), emu.speed.note()]}}
    c = cpu_ratio(contest)
    assert (c["ratio"], c["host_mbps"], c["model_mbps"], c["busy"]) == (emu.ratio, 106.0, emu.model_mbps, True)
    assert "parts" not in c
    other = speed(emu.path, emu.mask, [95.0], 1, Others(0.01, 0, 1, 3), "2026-11-30T00:00:00Z")
    contest["notes"]["disk"][1] = other.note()
    assert "NOT one figure" in cpu_ratio(contest)["text"]
    assert cpu_ratio(SimpleNamespace(meta={"cpu_model": {"model": "host"}})) is None
    assert cpu_ratio({"machine": {"vcpus": 8}}) is None


def test_a_record_from_before_the_measurement_at_lab_start_says_it_has_no_busy_figure():
    old = {"machine": {"ratio": 2.585, "cpu_model": "opteron-6174"}, "notes": {"TLS": [
        "cpu.model opteron-6174: OPENSSL_ia32cap=~0x1 for nginx and uwsgi; ECDHE-RSA-AES256-GCM-SHA384 is negotiated: "
        "OpenSSL's aes-256-gcm code path; published 40.8 MB/s per core (a source) vs this machine on the same masked "
        "path 105.5 MB/s (openssl speed) -> ratio 2.59; each process ..."]}}
    r = cpu_ratio(old)
    assert (r["ratio"], r["model_mbps"], r["host_mbps"]) == (2.585, 40.8, 105.5) and "busy" not in r
    assert "no busy figure" in r["text"]


def test_the_emulated_core_is_priced_on_the_suite_its_clients_negotiate(monkeypatch):
    """ChaCha20-Poly1305 first: a client offering it (this machine's Python) gets it, and the core is priced on
    chacha20-poly1305; CentOS 7's offer has none, falls back to AES-256-GCM, and the core is priced there."""
    calls = _fake(monkeypatch)
    chacha = OPTERON_HTTPS.changed(tls={"ciphers": "ECDHE-RSA-CHACHA20-POLY1305:" + OPTERON_HTTPS.tls.ciphers})
    assert emulation(chacha, Meter()).path == "chacha20-poly1305"
    old = emulation(chacha.changed(client={"tls_offer": "centos7"}), Meter())
    assert (old.path, old.suite) == ("aes-256-gcm", "ECDHE-RSA-AES256-GCM-SHA384")
    assert [c[0] for c in calls] == ["chacha20-poly1305", "aes-256-gcm"]
