"""The server's CPU as data: which instruction-set features it has, its clock, and how many cycles per
byte OpenSSL's code takes on it for each cipher, each figure with its published source.

    m = model("opteron-6174")
    m.mbps("aes-256-gcm")                 # one core's rate on OpenSSL's code path there: 40.8 MB/s
    ia32cap(m, host_flags)                # OPENSSL_ia32cap that leaves OpenSSL exactly m's features
    code_path(settings.tls)               # the code path the lab's clients and nginx agree on

`host` is no model: the lab's own CPU. A described model (settings `cpu.model` as a mapping) gives
the same fields as the ones here. Pure: no files, no processes (the suite a TLS setting negotiates is
worked out with this machine's OpenSSL cipher tables, as nginx loads them).

Sources for the Opteron 6174 (AMD K10, family 10h "Magny-Cours", 2010):
- clock 2.2 GHz: the seed (shared/seed/sregistry-serving-performance.txt: "2 x 2.2GHz AMD Opteron 6174
  (12 Core)"); AnandTech 2978 ("45nm 2.2 GHz").
- features: QEMU's family-10h model `Opteron_G3` (qemu/qemu d45f24fe7525d8a8aaa4ca6d9d214dc41819caa5,
  target/i386/cpu.c): CPUID.1 ECX = SSE3, MONITOR, CX16, POPCNT; EDX up to SSE2 (FXSR, SSE, SSE2, MMX,
  CLFLUSH, TSC, ...); 0x80000001 ECX = LAHF_LM, SVM, ABM, SSE4A, MISALIGNSSE; CPUID level 5, so no leaf 7.
  No SSSE3, SSE4.1/4.2, PCLMULQDQ, AES-NI, AVX, MOVBE, XSAVE.
- code paths (openssl/openssl OpenSSL_1_0_2k 081314d07705aa58912845c213a48414d8f616a9 and openssl-3.0.13
  85cf92f55d9e2ac5aacf92bedd33fb890b9f8b4c, identical there): without AES-NI, and without SSSE3 (bsaes and
  vpaes need it: include/crypto/aes_platform.h BSAES_CAPABLE / VPAES_CAPABLE = ia32cap bit 41), AES-GCM
  runs AES_encrypt (crypto/aes/asm/aes-x86_64.pl, the compact table code) once per 16-byte block
  (providers/implementations/ciphers/cipher_aes_gcm_hw.c aes_gcm_initkey; 1.0.2k crypto/evp/e_aes.c
  aes_gcm_init_key) and, without PCLMULQDQ (bit 33), the 4-bit GHASH (crypto/modes/gcm128.c, asm in
  crypto/modes/asm/ghash-x86_64.pl). Their header comments give cycles per byte on AMD's K8/K10 cores:
  aes-x86_64.pl "AMD64" (Opteron 240) ECB encrypt, 128-bit key: 33; ghash-x86_64.pl "Opteron" 4-bit: 7.7;
  chacha-x86_64.pl IALU "Sledgehammer" (K8): 7.28; poly1305-x86_64.pl IALU "Sledgehammer": 1.38.
  AES-256 runs 14 rounds to AES-128's 10 (FIPS-197 Nr): the compact code's cost is scaled by 14/10.
  K8 figures stand for K10 here (the same three-way integer core); no K10 figure is published in them.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from .sslconf import conf_commands

# --- CPUID feature bits as OpenSSL's capability vector holds them -----------------------------------
# openssl-3.0.13 doc/man3/OPENSSL_ia32cap.pod, crypto/cpuid.c, crypto/x86_64cpuid.pl: word 0 is CPUID.1
# EDX (bits 0-31) and ECX (bits 32-63; bit 32+11 = AMD XOP from 0x80000001 ECX); after ':' word 1 is
# CPUID.7.0 EBX (bits 0-31) and ECX (bits 32-63). `~X` clears bits X from what CPUID says. Bit numbers
# are Intel SDM vol. 2A, CPUID; names are /proc/cpuinfo's.
WORD0 = {"fpu": 0, "vme": 1, "de": 2, "pse": 3, "tsc": 4, "msr": 5, "pae": 6, "mce": 7, "cx8": 8, "apic": 9,
         "sep": 11, "mtrr": 12, "pge": 13, "mca": 14, "cmov": 15, "pat": 16, "pse36": 17, "clflush": 19,
         "mmx": 23, "fxsr": 24, "sse": 25, "sse2": 26, "ht": 28,
         **{f: 32 + b for f, b in {"pni": 0, "pclmulqdq": 1, "monitor": 3, "ssse3": 9, "xop": 11, "fma": 12,
                                    "cx16": 13, "sse4_1": 19, "sse4_2": 20, "x2apic": 21, "movbe": 22,
                                    "popcnt": 23, "aes": 25, "xsave": 26, "avx": 28, "f16c": 29,
                                    "rdrand": 30}.items()}}
WORD1 = {"fsgsbase": 0, "bmi1": 3, "hle": 4, "avx2": 5, "smep": 7, "bmi2": 8, "erms": 9, "invpcid": 10,
         "rtm": 11, "avx512f": 16, "avx512dq": 17, "rdseed": 18, "adx": 19, "smap": 20, "avx512ifma": 21,
         "clflushopt": 23, "clwb": 24, "avx512pf": 26, "avx512er": 27, "avx512cd": 28, "sha_ni": 29,
         "avx512bw": 30, "avx512vl": 31,
         **{f: 32 + b for f, b in {"avx512vbmi": 1, "umip": 2, "pku": 3, "avx512_vbmi2": 6, "gfni": 8,
                                    "vaes": 9, "vpclmulqdq": 10, "avx512_vnni": 11, "avx512_bitalg": 12,
                                    "avx512_vpopcntdq": 14, "rdpid": 22}.items()}}
# bits OpenSSL sets or adjusts itself (20: RC4 path on P4, 28: shared cache, 30: "Intel"): never masked
SYNTHESIZED = {20, 28, 30}
# the bits OpenSSL's own list calls significant (doc/man3/OPENSSL_ia32cap.pod): what a note names
OPENSSL_READS = {"tsc", "clflush", "mmx", "fxsr", "sse", "sse2", "ht", "pclmulqdq", "ssse3", "xop", "movbe", "aes",
                 "xsave", "avx", "rdrand", "bmi1", "avx2", "bmi2", "avx512f", "avx512dq", "rdseed", "adx",
                 "avx512ifma", "sha_ni", "avx512bw", "avx512vl", "vaes", "vpclmulqdq"}
FIPS197_ROUNDS = {128: 10, 256: 14}


@dataclass(frozen=True)
class Part:
    """One piece of a code path's cost: cycles per byte and where that figure is published."""
    what: str
    cycles_per_byte: float
    source: str


@dataclass(frozen=True)
class CodePath:
    parts: tuple[Part, ...]

    @property
    def cycles_per_byte(self) -> float:
        return sum(p.cycles_per_byte for p in self.parts)

    @property
    def source(self) -> str:
        return "; ".join(f"{p.what}: {p.cycles_per_byte:g} c/B ({p.source})" for p in self.parts)


@dataclass(frozen=True)
class CpuModel:
    name: str
    features: frozenset[str]              # /proc/cpuinfo flag names of the instruction set
    clock_ghz: float
    clock_source: str
    features_source: str
    paths: dict[str, CodePath] = field(default_factory=dict)   # OpenSSL code path -> its published cost
    reference: str = "aes-256-gcm"        # the path whose ratio slows programs when no TLS suite is in play

    def mbps(self, path: str) -> float:
        """One core's rate on `path`: clock over cycles per byte, in MB/s (10^6 bytes)."""
        return self.clock_ghz * 1e9 / self.paths[path].cycles_per_byte / 1e6


_AES = "openssl/openssl OpenSSL_1_0_2k 081314d0 and openssl-3.0.13 85cf92f5, crypto/aes/asm/aes-x86_64.pl, AMD64 ECB encrypt 128-bit key"
_GHASH = "ibid. crypto/modes/asm/ghash-x86_64.pl, Opteron, 4-bit 528B asm"
_CHACHA = "openssl-3.0.13 85cf92f5 crypto/chacha/asm/chacha-x86_64.pl, Sledgehammer (K8), IALU"
_POLY = "openssl-3.0.13 85cf92f5 crypto/poly1305/asm/poly1305-x86_64.pl, Sledgehammer (K8), IALU"
_AES128_CPB = 33.0


def _aes_gcm(bits: int) -> CodePath:
    rounds = FIPS197_ROUNDS[bits] / FIPS197_ROUNDS[128]
    return CodePath((Part(f"AES-{bits} AES_encrypt (compact tables, x{rounds:g} the rounds of AES-128, FIPS-197)",
                          _AES128_CPB * rounds, _AES), Part("GHASH 4-bit", 7.7, _GHASH)))


K10_FEATURES = frozenset({
    # CPUID.1 EDX (QEMU Opteron_G3) and HTT (a multi-core Opteron sets it)
    "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge", "mca", "cmov",
    "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "ht",
    # CPUID.1 ECX
    "pni", "monitor", "cx16", "popcnt",
    # 0x80000001 (not in OpenSSL's vector but for XOP)
    "lahf_lm", "svm", "abm", "sse4a", "misalignsse", "syscall", "nx", "lm", "rdtscp"})

MODELS: dict[str, CpuModel] = {
    "opteron-6174": CpuModel(
        "opteron-6174", K10_FEATURES, 2.2,
        "the seed (\"2 x 2.2GHz AMD Opteron 6174\"); AnandTech 2978 (45 nm, 2.2 GHz)",
        "QEMU Opteron_G3 (family 10h), qemu/qemu d45f24fe target/i386/cpu.c",
        {"aes-256-gcm": _aes_gcm(256), "aes-128-gcm": _aes_gcm(128),
         "chacha20-poly1305": CodePath((Part("ChaCha20", 7.28, _CHACHA), Part("Poly1305", 1.38, _POLY)))}),
}


def model(name: str) -> CpuModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"cpu model {name!r}: one of host, {', '.join(MODELS)} (or a described one)") from None


def resolve(setting) -> CpuModel | None:
    """`cpu.model` as a CpuModel (None: host, this machine as it is)."""
    if isinstance(setting, str):
        return None if setting == "host" else model(setting)
    return CpuModel(setting.name, frozenset(setting.features), setting.clock_ghz, setting.clock_source,
                    setting.features_source,
                    {p: CodePath((Part(p, c, setting.sources[p]),)) for p, c in setting.cycles_per_byte.items()},
                    reference="aes-256-gcm" if "aes-256-gcm" in setting.cycles_per_byte else
                    next(iter(setting.cycles_per_byte)))


# --- the capability vector that leaves OpenSSL exactly a model's features -------------------------------
@dataclass(frozen=True)
class Mask:
    env: str                       # OPENSSL_ia32cap's value
    masked: tuple[str, ...]        # features this machine has and the model does not (hidden from OpenSSL)
    lacking: tuple[str, ...]       # features the model has and this machine does not (cannot be given)


def ia32cap(m: CpuModel, host_flags: set[str]) -> Mask:
    """`~word0:~word1` clearing every CPUID.1 ECX bit, EDX bit and leaf-7 bit the model lacks (OpenSSL's
    own adjusted bits left alone): OpenSSL then picks the code paths the model's CPU runs."""
    w0 = sum(1 << b for f, b in WORD0.items() if f not in m.features and b not in SYNTHESIZED)
    w0 |= sum(1 << b for b in range(32, 64) if b not in {WORD0[f] for f in m.features if f in WORD0})
    w1 = sum(1 << b for b in range(64) if b not in {WORD1[f] for f in m.features if f in WORD1})
    known = set(WORD0) | set(WORD1)
    return Mask(f"~{w0:#x}:~{w1:#x}", tuple(sorted((host_flags - m.features) & known)),
                tuple(sorted((m.features - host_flags) & known)))


# --- which code path a TLS setting runs ---------------------------------------------------------------
PATH_OF_SUITE = (("CHACHA20", "chacha20-poly1305"), ("AES256-GCM", "aes-256-gcm"), ("AES_256_GCM", "aes-256-gcm"),
                 ("AES128-GCM", "aes-128-gcm"), ("AES_128_GCM", "aes-128-gcm"))
TLS13_DEFAULT = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256")


def suite_path(suite: str) -> str | None:
    """OpenSSL suite name -> the code path that encrypts its records (None: one not modelled, e.g. CBC)."""
    return next((p for key, p in PATH_OF_SUITE if key in suite), None)


def negotiated(tls, client_suites: list[str] | None = None) -> str:
    """The suite nginx with `tls` (TlsSettings) and a client offering `client_suites` (default: Python's
    own, as labkit's clients and curl on this machine offer) agree on, as OpenSSL decides it: TLS 1.3 when
    both allow it (its suites, the server's order: OpenSSL's default or `Ciphersuites`), else TLS 1.2 with
    the server's order if prefer_server_ciphers, else the client's."""
    client = client_suites or [c["name"] for c in ssl.create_default_context().get_ciphers()]
    if "TLSv1.3" in tls.protocols.split():
        own = dict(conf_commands(tls.conf_command)).get("Ciphersuites")
        server13 = own.split(":") if own else list(TLS13_DEFAULT)
        # a client offering no TLS 1.3 suite (OpenSSL 1.0.2k's: TLS 1.2 at most) does not speak TLS 1.3
        offered13 = [c for c in client if c.startswith("TLS_")] or ([] if client_suites else list(TLS13_DEFAULT))
        pick = [c for c in server13 if c in offered13] if tls.prefer_server_ciphers else \
            [c for c in offered13 if c in server13]
        if pick:
            return pick[0]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers(tls.ciphers)
    server = [c["name"] for c in ctx.get_ciphers() if not c["name"].startswith("TLS_")]
    offered = [c for c in client if not c.startswith("TLS_")]
    order = [c for c in server if c in offered] if tls.prefer_server_ciphers else [c for c in offered if c in server]
    if not order:
        raise ValueError(f"tls.ciphers {tls.ciphers!r} shares no suite with the client's offer")
    return order[0]


def code_path(tls, m: CpuModel, client_suites: list[str] | None = None) -> tuple[str, str, str]:
    """(path, suite, why) the model's speed ratio is taken from: the negotiated suite's (with a client offering
    `client_suites`, default Python's own), or the model's reference path when TLS is off or the suite's code is
    not among the model's published paths."""
    if not tls.enabled:
        return m.reference, "", f"TLS off: {m.reference}, the model's reference path, stands for its core"
    suite = negotiated(tls, client_suites)
    path = suite_path(suite)
    if path in m.paths:
        return path, suite, f"{suite} is negotiated: OpenSSL's {path} code path"
    return m.reference, suite, (f"{suite} is negotiated but its code path has no published figure for "
                                f"{m.name}: {m.reference} stands for its core")


def ratio(host_mbps: float, model_mbps: float) -> float:
    """How many times faster this machine runs the same (masked) code than the model's core: the factor each
    program is slowed by. 1 when this machine is already as slow or slower: no slowdown is invented."""
    return max(1.0, host_mbps / model_mbps) if model_mbps > 0 else 1.0
