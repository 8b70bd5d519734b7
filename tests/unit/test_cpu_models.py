"""CPU models as data: the published figures add up as cited, the capability vector hides exactly what the
model lacks, the suite a TLS setting negotiates picks the code path, and no slowdown is ever invented."""
import pytest

from labkit.config import cpu_models as cm
from labkit.config.presets import PRESETS
from labkit.config.settings import SettingsError, parse_settings
from labkit.config.cpu_speed import parse_speed
from labkit.lab.conditions.cpu_emulation import host_flags

K10 = cm.model("opteron-6174")
# this machine's kind (a Zen 4 VM): everything the K10 has but MONITOR (hidden by the hypervisor), and far more
ZEN4 = (set(K10.features) - {"monitor"}) | {"pclmulqdq", "ssse3", "sse4_1", "sse4_2", "aes", "avx", "xsave", "movbe",
                                            "avx2", "bmi2", "avx512f", "vaes", "vpclmulqdq", "sha_ni"}


def test_the_opteron_figures_add_up_as_their_sources_say():
    assert K10.clock_ghz == 2.2
    assert K10.paths["aes-256-gcm"].cycles_per_byte == pytest.approx(33 * 14 / 10 + 7.7)
    assert K10.paths["aes-128-gcm"].cycles_per_byte == pytest.approx(33 + 7.7)
    assert K10.paths["chacha20-poly1305"].cycles_per_byte == pytest.approx(7.28 + 1.38)
    assert K10.mbps("aes-256-gcm") == pytest.approx(2.2e3 / 53.9)        # 40.8 MB/s per core
    for path in K10.paths.values():
        assert "openssl" in path.source.lower() and ("85cf92f5" in path.source or "081314d0" in path.source)
    assert {"aes", "pclmulqdq", "ssse3", "avx", "sse4_1"}.isdisjoint(K10.features) and {"sse2", "pni"} <= K10.features


def test_the_capability_vector_hides_what_the_model_lacks_and_nothing_it_has():
    mask = cm.ia32cap(K10, ZEN4)
    w0, w1 = (int(p.lstrip("~"), 16) for p in mask.env.split(":"))
    for feature in ("aes", "pclmulqdq", "ssse3", "avx", "movbe", "xsave", "sse4_1"):
        assert w0 >> cm.WORD0[feature] & 1, feature                  # cleared
    for feature in ("sse2", "sse", "fxsr", "pni", "cx16", "popcnt", "ht"):
        assert not w0 >> cm.WORD0[feature] & 1, feature              # left as CPUID says
    assert w1 == 2**64 - 1                                           # no leaf-7 feature on a K10
    assert mask.env.startswith("~0xff7fdff6") and "aes" in mask.masked and "sse2" not in mask.masked
    assert mask.lacking == ("monitor",)                              # said in lab.notes; OpenSSL does not read it
    assert cm.ia32cap(K10, ZEN4 - {"popcnt"}).lacking == ("monitor", "popcnt")


@pytest.mark.parametrize("name,path,suite", [("sregistry-2018-10-https", "aes-256-gcm", "ECDHE-RSA-AES256-GCM-SHA384"),
                                             ("seed-poster-https", "aes-256-gcm", "ECDHE-RSA-AES256-GCM-SHA384")])
def test_the_https_presets_negotiate_aes256_gcm(name, path, suite):
    assert cm.code_path(PRESETS[name].tls, K10)[:2] == (path, suite)


def test_the_fixes_change_the_code_path():
    tls = PRESETS["sregistry-2018-10-https"].tls
    first = lambda c: tls.model_copy(update={"ciphers": f"{c}:{tls.ciphers}"})
    assert cm.code_path(first("ECDHE-RSA-AES128-GCM-SHA256"), K10)[0] == "aes-128-gcm"
    assert cm.code_path(first("ECDHE-RSA-CHACHA20-POLY1305"), K10)[0] == "chacha20-poly1305"
    centos7 = ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384"]   # 1.0.2k: no ChaCha
    assert cm.negotiated(first("ECDHE-RSA-CHACHA20-POLY1305"), centos7) == "ECDHE-RSA-AES256-GCM-SHA384"
    assert cm.code_path(tls.model_copy(update={"enabled": False}), K10)[0] == K10.reference
    assert cm.code_path(first("ECDHE-RSA-AES256-SHA384"), K10)[0] == K10.reference     # CBC: no figure


def test_no_slowdown_is_invented():
    assert cm.ratio(108.8, 40.8) == pytest.approx(2.667, rel=1e-3)
    assert cm.ratio(30.0, 40.8) == 1.0


def test_openssl_speed_and_cpuinfo_are_read():
    out = "version: 3.0.19\ntype             16384 bytes\nAES-256-GCM     108822.53k\n"
    assert parse_speed(out) == pytest.approx(108.82253)
    with pytest.raises(ValueError, match="no rate"):
        parse_speed("garbage")
    assert host_flags("processor\t: 0\nflags\t\t: fpu sse2 aes\nflags : other\n") == {"fpu", "sse2", "aes"}


def test_a_described_cpu_needs_a_source_for_every_figure():
    cpu = {"name": "xeon-e5-2660", "features": ["sse2", "aes", "pclmulqdq"], "clock_ghz": 2.2,
           "clock_source": "a spec sheet", "features_source": "a spec sheet",
           "cycles_per_byte": {"aes-256-gcm": 2.0}, "sources": {"aes-256-gcm": "a benchmark"}}
    m = cm.resolve(parse_settings({"cpu": {"model": cpu}}).cpu.model)
    assert m.mbps("aes-256-gcm") == pytest.approx(1100) and m.reference == "aes-256-gcm"
    with pytest.raises(SettingsError, match="every figure needs where it is published"):
        parse_settings({"cpu": {"model": {**cpu, "sources": {}}}})
    with pytest.raises(SettingsError, match="opteron-6174"):
        parse_settings({"cpu": {"model": "pentium"}})
    assert cm.resolve("host") is None
