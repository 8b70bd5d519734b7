"""Typed, validated settings for every hop of the serving path, and the presets.

Everything here is pure: no files, no processes. A value nginx or uwsgi would
reject is refused here, with the setting's name and the allowed range, before
anything is applied to a running lab.
"""
from __future__ import annotations

import re
import shlex
import ssl
import string
import warnings
from typing import Annotated, Literal, get_args

from ..errors import SettingsError
from ..units import GiB, KiB, MiB
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from .modes import SERVE_MODES
from .sslconf import conf_commands
from .cpu_models import MODELS

_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB}     # nginx's size syntax: a bare number is bytes
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)\s*$", re.I)
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)\s*$", re.I)
_RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


def size_bytes(value: str | int) -> int:
    """'4k' -> 4096, '10024m' -> 10024 MiB, 512 -> 512 (nginx's size syntax)."""
    if isinstance(value, int):
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size: use a whole number with an optional k, m or g (e.g. 64k, 8m)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _size(v: str | int) -> str:
    size_bytes(v)
    return str(v).strip().lower()


Size = Annotated[str, AfterValidator(_size)]


def rate_bits(value: str) -> float:
    """'10gbit' -> 1e10 (tc's rate syntax, decimal units)."""
    m = _RATE_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a link rate: use a number with bit, kbit, mbit or gbit (e.g. 5gbit)")
    return float(m.group(1)) * _RATE_UNITS[m.group(2).lower()]


def _rate(v: str | None) -> str | None:
    if v is None:
        return None
    bits = rate_bits(v)
    if not 1e6 <= bits <= 1e11:
        raise ValueError(f"{v!r} is outside 1mbit..100gbit")
    return v.strip().lower()


Rate = Annotated[str | None, AfterValidator(_rate)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class BufferSpec(_Model):
    """nginx's `number size` pair (uwsgi_buffers, output_buffers)."""
    number: int = Field(ge=1, le=1024)
    size: Size

    @property
    def size_bytes(self) -> int:
        return size_bytes(self.size)

    def __str__(self) -> str:
        return f"{self.number} {self.size}"


PROXY_TEMP_WRITE = 8192    # nginx's proxy_temp_file_write_size with proxy_buffers 8 4k: 2 x the larger buffer


class NginxSettings(_Model):
    worker_processes: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    worker_connections: int = Field(1024, ge=16, le=65536)
    sendfile: bool = True
    tcp_nopush: bool = False
    aio: Literal["off", "on", "threads"] = "off"
    directio: Size | Literal["off"] = "off"
    output_buffers: BufferSpec = BufferSpec(number=2, size="32k")
    sendfile_max_chunk: Size = "2m"
    uwsgi_buffering: bool = True
    uwsgi_buffer_size: Size = "4k"
    uwsgi_buffers: BufferSpec = BufferSpec(number=8, size="4k")
    uwsgi_max_temp_file_size: Size = "1024m"
    access_log: bool = True
    keepalive_timeout: int = Field(65, ge=0, le=3600)
    # the server block's request-body limits and sregistry's CORS headers (uploads, not pulls)
    client_max_body_size: Size = "1m"
    http_client_max_body_size: Size | None = None     # the main config's (sregistry master sets one there too)
    client_body_buffer_size: Size | None = None
    client_body_timeout: int = Field(60, ge=1, le=86400)
    cors_headers: bool = False
    # the deadlines that can end a slow pull (seconds, nginx's defaults; data/seed/failure-mechanisms.json):
    # written only when they differ, so a time-dilated lab (labkit.config.dilation) can stretch them
    send_timeout: int = Field(60, ge=1, le=864000, description="s without progress writing to the client")
    uwsgi_read_timeout: int = Field(60, ge=1, le=864000, description="s without a byte from uwsgi")
    uwsgi_send_timeout: int = Field(60, ge=1, le=864000, description="s without progress sending to uwsgi")
    uwsgi_connect_timeout: int = Field(60, ge=1, le=864000, description="s to connect to uwsgi")
    # nginx in front of an OCI registry (registry.kind "distribution": proxy_pass to it on /v2/); nginx's
    # defaults (ngx_http_proxy_module), each written only when it differs
    proxy_buffering: bool = True
    proxy_request_buffering: bool = True
    proxy_max_temp_file_size: Size = "1024m"
    proxy_read_timeout: int = Field(60, ge=1, le=864000, description="s without a byte from the registry")
    proxy_send_timeout: int = Field(60, ge=1, le=864000, description="s without progress sending to the registry")
    proxy_http_version: Literal["1.0", "1.1"] = "1.0"

    @model_validator(mode="after")
    def _consistent(self) -> "NginxSettings":
        # The checks nginx itself makes at start-up (ngx_http_uwsgi_module.c).
        biggest = max(size_bytes(self.uwsgi_buffer_size), self.uwsgi_buffers.size_bytes)
        busy = 2 * biggest
        if busy >= (self.uwsgi_buffers.number - 1) * self.uwsgi_buffers.size_bytes:
            raise ValueError(
                f"uwsgi_buffers: {self.uwsgi_buffers} is too small for uwsgi_buffer_size "
                f"{self.uwsgi_buffer_size}: nginx needs the buffers minus one to exceed "
                f"{busy} bytes (2 x the larger buffer); e.g. uwsgi_buffers {max(4, busy // self.uwsgi_buffers.size_bytes + 2)} {self.uwsgi_buffers.size}")
        temp = size_bytes(self.uwsgi_max_temp_file_size)
        if temp and temp < busy:
            raise ValueError(
                f"uwsgi_max_temp_file_size: {self.uwsgi_max_temp_file_size} must be 0 (no temp files) "
                f"or at least {busy} bytes (nginx's temp write size)")
        # proxy_buffers stay at nginx's 8 4k, so its temp write size is 8k (ngx_http_proxy_module.c)
        proxy_temp = size_bytes(self.proxy_max_temp_file_size)
        if proxy_temp and proxy_temp < PROXY_TEMP_WRITE:
            raise ValueError(f"proxy_max_temp_file_size: {self.proxy_max_temp_file_size} must be 0 (no temp files) "
                             f"or at least {PROXY_TEMP_WRITE} bytes (nginx's proxy temp write size)")
        return self


class UwsgiSettings(_Model):
    processes: int = Field(1, ge=1, le=1024)
    threads: int = Field(1, ge=1, le=256)
    buffer_size: int = Field(4096, ge=4096, le=65535, description="bytes, the uwsgi request header buffer")
    offload_threads: int = Field(0, ge=0, le=64)
    # uwsgi parses post-buffering as a number (strtoul): sregistry's `post-buffering = true` is 0, off.
    # "true" keeps that spelling in the rendered ini; None leaves the line out.
    post_buffering: Literal["true"] | Annotated[int, Field(ge=0, le=GiB)] | None = None
    log_date: bool = False
    harakiri: int = Field(0, ge=0, le=86400, description="seconds, 0 = off")
    socket_timeout: int = Field(4, ge=1, le=86400, description="seconds a socket read/write may block (uwsgi default 4)")
    http_timeout: int | None = Field(None, ge=1, le=86_400_000, description="uwsgi's own HTTP router only")
    max_requests: int = Field(5000, ge=0, le=10_000_000)
    ignore_sigpipe: bool = False
    ignore_write_errors: bool = False
    disable_write_exception: bool = False


ServeMode = Literal[tuple(SERVE_MODES)]


class AppSettings(_Model):
    """How the registry app hands out the image file (labkit.config.modes.SERVE_MODES says what each implies)."""
    serve_mode: ServeMode = "fileresponse"
    chunk_size: int = Field(4096, ge=512, le=16 * MiB,
                            description="FileResponse.block_size: bytes per read when Django iterates the file")


SYSCTLS = {"tcp_rmem": "net.ipv4.tcp_rmem", "tcp_wmem": "net.ipv4.tcp_wmem",
           "congestion_control": "net.ipv4.tcp_congestion_control"}


class KernelSettings(_Model):
    """Per-namespace TCP sysctls (names in SYSCTLS); None leaves the kernel's default."""
    tcp_rmem: tuple[int, int, int] | None = None
    tcp_wmem: tuple[int, int, int] | None = None
    congestion_control: str | None = Field(None, pattern=r"^[a-z0-9_]+$")

    @model_validator(mode="after")
    def _ordered(self) -> "KernelSettings":
        for name in ("tcp_rmem", "tcp_wmem"):
            v = getattr(self, name)
            if v is not None and not (4096 <= v[0] <= v[1] <= v[2] <= GiB):
                raise ValueError(f"{name}: {v} must be min <= default <= max, each 4096..1073741824 bytes")
        return self


def renamed(data, group: str, old: str, table: dict[str, dict], replaced_by: str, why: dict[str, str] = {}):
    """A settings group's raw data with a retired field `old` read as the fields `table[value]` names,
    with a FutureWarning saying so; a value the table lacks is refused naming the replacement."""
    if not isinstance(data, dict) or old not in data:
        return data
    data = dict(data)
    value = data.pop(old)
    if value not in table:
        raise ValueError(f"{old}: {value!r}: {group}.{old} is replaced by {replaced_by} "
                         f"(old values: {', '.join(map(repr, table))})")
    mapped = table[value]
    warnings.warn(f"{group}.{old} = {value!r} is replaced by {replaced_by}: read as "
                  + ", ".join(f"{group}.{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}"
                              for k, v in mapped.items()) + why.get(value, ""), FutureWarning, stacklevel=3)
    return {**data, **mapped}


PUBLISH_SOURCES = "docker/libnetwork 02d0f9d684d320c80105be781d6932481f30a543"
LEGACY_PUBLISH_MODE = {"userland-proxy": {"iptables": True, "userland_proxy": True},
                       "dnat": {"iptables": True, "userland_proxy": False}}


class PublishSettings(_Model):
    """How Docker publishes nginx's port on the VM: daemon.json's `iptables`, `userland-proxy` and `ip`.

    What Docker does with them (PUBLISH_SOURCES; labkit.path.publish_route decides per vantage point):
    - `iptables: true` (the default): the port is DNATed by the kernel whatever `userland-proxy`
      says (portmapper/mapper.go MapRange installs the forward rule either way). A client on
      another host (a compute node) is DNATed in PREROUTING (`-m addrtype --dst-type LOCAL -j
      DOCKER`, `-A DOCKER ! -i docker0 -p tcp --dport 80 -j DNAT`, iptables/iptables.go
      ProgramChain and Forward), forwarded through conntrack and the bridge: docker-proxy never
      sees its bytes.
    - `userland-proxy: true` (the default) also starts docker-proxy, which then carries what the
      rules leave to it: the VM's own 127.0.0.1 (the OUTPUT jump has `! -d 127.0.0.0/8`) and a
      container dialling the VM's address (hairpin: `-A DOCKER -i docker0 -j RETURN`,
      drivers/bridge/setup_ip_tables.go). `false`: no docker-proxy, and those are DNATed too
      (hairpin mode: route_localnet on docker0, local sources masqueraded).
    - `iptables: false`: no rules at all (MapRange's forward is a no-op without a chain), so
      docker-proxy carries every byte, from every client; without the proxy too, nothing does.
    - `ip`: the address published ports bind ("0.0.0.0", Docker's default; "127.0.0.1"; or
      "eth0", standing for the VM's own address, whatever it is).
    Old settings' `mode` is read as these keys ("userland-proxy": Docker's defaults; "dnat":
    userland_proxy false), with a warning.
    """
    iptables: bool = True
    userland_proxy: bool = True
    ip: Literal["0.0.0.0", "127.0.0.1", "eth0"] = "0.0.0.0"
    host_port: int = Field(80, ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _legacy_mode(cls, data):
        return renamed(data, "publish", "mode", LEGACY_PUBLISH_MODE, "daemon.json's keys", {
            "userland-proxy": " (Docker's defaults: a compute node's pull is DNATed, docker-proxy carries only the "
                              "VM's own 127.0.0.1; for docker-proxy on every pull set publish.iptables = false)"})

    @model_validator(mode="after")
    def _reachable(self) -> "PublishSettings":
        if not self.iptables and not self.userland_proxy:
            raise ValueError("iptables false with userland_proxy false publishes nothing: Docker then only holds "
                             "the port (a dummy proxy, portmapper/mapper.go newDummyProxy); set one of them true")
        return self

    @property
    def outside_path(self) -> str:
        """What carries a compute node's pull: "dnat" (the kernel) or "docker-proxy"."""
        return "dnat" if self.iptables else "docker-proxy"


MBps = Annotated[float, Field(gt=0, le=100_000)]
Cpus = Annotated[float, Field(ge=0.01, le=1024)]
CpuList = Annotated[str, Field(pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$")]
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9@_-]*$")


def _keyed_problem(key: str, value, msg: str) -> PydanticCustomError:
    """A problem with one entry of a group keyed by the path's names, named `group.<key>` by explain()."""
    return PydanticCustomError("keyed_setting", "{msg}", {"setting": key, "input": value, "msg": msg})


class _Keyed(BaseModel):
    """A settings group keyed by the path's names (links, services): which names exist is the path's
    to say (`ServingPath.problems`); here each value is checked. An entry set to None is left out:
    absent and None mean the same (unshaped, unlimited)."""
    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _entries(cls, data):
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"write a mapping of names to values, not {data!r}")
        out = {}
        for key, value in data.items():
            if key in cls.model_fields:           # a declared field (cpu.model): validated as fields are
                out[key] = value
                continue
            if value is None:
                continue
            if not isinstance(key, str) or not _NAME.match(key):
                raise _keyed_problem(str(key), value, "not a name (letters, digits, '-', '@', '_')")
            out[key] = cls._value(key, value)
        return out

    @classmethod
    def _value(cls, key: str, value):
        raise NotImplementedError

    @staticmethod
    def _check(adapter: TypeAdapter, key: str, value):
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise _keyed_problem(key, value, exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    def get(self, key: str):
        return (self.model_extra or {}).get(key)


_RATE = TypeAdapter(Rate)
_CPUS, _CPUSET = TypeAdapter(Cpus), TypeAdapter(CpuList)


class LinkSettings(_Keyed):
    """tc tbf rate per link of the path, keyed by the link's name (`links.wan=6gbit`); absent = unshaped."""

    @classmethod
    def _value(cls, key: str, value):
        return cls._check(_RATE, key, value)

    def rate(self, link: str) -> str | None:
        return self.get(link)

    def names(self) -> list[str]:
        return list(self.model_extra or {})


CODE_PATHS = ("aes-256-gcm", "aes-128-gcm", "chacha20-poly1305")   # OpenSSL code paths a CPU model prices


class DescribedCpu(_Model):
    """A server CPU given by hand: its instruction-set features (/proc/cpuinfo names), its clock, and the
    cycles per byte OpenSSL's code takes on it per code path, each figure with where it is published."""
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,40}$")
    features: tuple[str, ...]
    clock_ghz: float = Field(gt=0.1, le=10)
    clock_source: str = Field(min_length=3)
    features_source: str = Field(min_length=3)
    cycles_per_byte: dict[str, float]
    sources: dict[str, str]

    @model_validator(mode="after")
    def _paths(self) -> "DescribedCpu":
        bad = sorted(set(self.cycles_per_byte) - set(CODE_PATHS))
        if bad or not self.cycles_per_byte:
            raise ValueError(f"cycles_per_byte: give one or more of {', '.join(CODE_PATHS)} (got {bad or 'none'})")
        if missing := sorted(set(self.cycles_per_byte) - set(self.sources)):
            raise ValueError(f"sources: every figure needs where it is published; missing for {', '.join(missing)}")
        if any(v <= 0 for v in self.cycles_per_byte.values()):
            raise ValueError("cycles_per_byte: figures must be positive")
        return self


def _cpu_model(v):
    if isinstance(v, str):
        if v != "host" and v not in MODELS:
            raise ValueError(f"{v!r}: host (this machine), {', '.join(MODELS)}, or a described CPU "
                             "(name, features, clock_ghz, cycles_per_byte, sources)")
    return v


class CpuSettings(_Keyed):
    """Per-container CPU as docker-compose's `cpus:` (CFS quota) and `cpuset:`, keyed by the path's
    names: `<name>_cpus`, `<name>_cpuset` (nginx_cpus, uwsgi_cpuset, proxy_cpus); absent = unlimited.

    `model`: the server's CPU (labkit.config.cpu_models): `host` is this machine; a model hides from
    OpenSSL the features it lacks (OPENSSL_ia32cap in nginx's and uwsgi's environment) and, with
    `model_speed` emulate, holds each process of nginx, uwsgi and docker-proxy to that CPU's per-core speed
    (a CFS quota per process). `native` keeps this machine's speed (instruction set only)."""
    model: Annotated[str | DescribedCpu, AfterValidator(_cpu_model)] = "host"
    model_speed: Literal["emulate", "native"] = "emulate"

    @classmethod
    def _value(cls, key: str, value):
        name, _, kind = key.rpartition("_")
        if not name or kind not in ("cpus", "cpuset"):
            raise _keyed_problem(key, value, "write <name>_cpus or <name>_cpuset, e.g. nginx_cpus")
        if kind == "cpuset":
            return cls._check(_CPUSET, key, str(value) if isinstance(value, int) and not isinstance(value, bool)
                              else value)
        return cls._check(_CPUS, key, value)

    def cpus(self, name: str) -> float | None:
        return self.get(f"{name}_cpus")

    def cpuset(self, name: str) -> str | None:
        return self.get(f"{name}_cpuset")

    def keys(self) -> list[str]:
        """The names that have a limit set."""
        return list(dict.fromkeys(k.rpartition("_")[0] for k in self.model_extra or {}))


def dirty_bound(write_bps: float | None, dirty_mib: int | None = None) -> int:
    """Bytes of dirty pages a lab disk may hold before a buffered writer waits for it: `dirty_mib` if
    given, else two seconds at the write ceiling, 8..256 MiB (16 MiB without a byte ceiling)."""
    if dirty_mib is not None:
        return dirty_mib * MiB
    if write_bps:
        return int(max(8 * MiB, min(256 * MiB, 2 * write_bps)))
    return 16 * MiB


class StorageSettings(_Model):
    """The VM's disk: where the images and nginx's temp files live, as sregistry's bind mount and container layer.

    `host`: the lab's data directory (the host's page cache and disk). `loop`: an ext4 file system
    on a direct-I/O loop device, with block-I/O limits and, through a FUSE passthrough, a delay per
    request (a qcow2 image on GPFS: one stream slow, many streams adding up). `temp_mib`: nginx's temp
    files get a small file system of their own (its own loop device, unlimited), as a container layer on a
    host in low disk status: a response nginx spools past its room is cut (goharbor/harbor PR#3148, commit 026e8e7f, "When
    host in low disk status, enable the buffer will cause upload error").
    """
    disk: Literal["host", "loop"] = "host"
    cache: Literal["warm", "cold"] = "warm"
    read_mbps: MBps | None = None
    write_mbps: MBps | None = None
    read_iops: int | None = Field(None, ge=1, le=10_000_000)
    write_iops: int | None = Field(None, ge=1, le=10_000_000)
    latency_ms: float = Field(0.0, ge=0, le=1000)
    dirty_mib: int | None = Field(None, ge=1, le=4096, description="dirty pages the VM disk may hold (with write limits)")
    temp_mib: int | None = Field(None, ge=16, le=65536, description=(
        "room for nginx's temp files: a file system of this size of their own (a host in low disk status)"))

    @model_validator(mode="after")
    def _needs_loop(self) -> "StorageSettings":
        limits = [n for n in ("read_mbps", "write_mbps", "read_iops", "write_iops", "dirty_mib", "temp_mib")
                  if getattr(self, n) is not None]
        if self.disk == "host" and (limits or self.latency_ms):
            raise ValueError(f"{', '.join(limits + (['latency_ms'] if self.latency_ms else []))} "
                             "need storage.disk = 'loop' (the host's own disk is not the lab's to limit)")
        return self


TLS_PROTOCOLS = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")   # nginx's ssl_protocols words
_TIME_RE = re.compile(r"^\d+[smhd]?$")
_CACHE_RE = re.compile(r"^(off|none|builtin(:\d+)?|shared:[A-Za-z0-9_]+:\d+[km]?)$")


def _session_cache(v: str) -> str:
    if not _CACHE_RE.match(v.strip()):
        raise ValueError(f"{v!r}: use off, none, builtin[:size] or shared:name:size (e.g. shared:SSL:50m)")
    return v.strip()


def _time(v: str) -> str:
    if not _TIME_RE.match(v.strip()):
        raise ValueError(f"{v!r} is not an nginx time: a whole number with s, m, h or d (e.g. 5m)")
    return v.strip()


def _protocols(v: str) -> str:
    words = v.split()
    bad = [w for w in words if w not in TLS_PROTOCOLS]
    if not words or bad or len(set(words)) != len(words):
        raise ValueError(f"{v!r}: give one or more of {', '.join(TLS_PROTOCOLS)}, each once")
    return " ".join(words)


def _ciphers(v: str) -> str:
    """A cipher list OpenSSL accepts (checked with this machine's library, as nginx will load it)."""
    v = v.strip()
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(v)
    except ssl.SSLError:
        raise ValueError(f"{v!r}: OpenSSL ({ssl.OPENSSL_VERSION}) finds no cipher in this list") from None
    return v


def _conf_command(v: str) -> str:
    return "; ".join(f"{n} {val}" for n, val in conf_commands(v))


class TlsSettings(_Model):
    """TLS at nginx, as sregistry's https/nginx.conf.https adds it: a second server block on `port`
    (published as compose's "443:443") beside the plain one. Off unless `enabled`; each directive is
    written only when it differs from nginx 1.22's default (http://nginx.org/en/docs/http/ngx_http_ssl_module.html).
    Everything applies live: nginx reloads; turning TLS on or off (or moving its port) also re-publishes."""
    enabled: bool = False
    port: int = Field(443, ge=1, le=65535)
    protocols: Annotated[str, AfterValidator(_protocols)] = "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"
    ciphers: Annotated[str, AfterValidator(_ciphers)] = "HIGH:!aNULL:!MD5"
    prefer_server_ciphers: bool = False
    session_cache: Annotated[str, AfterValidator(_session_cache)] = "none"
    session_timeout: Annotated[str, AfterValidator(_time)] = "5m"
    buffer_size: Size = "16k"
    conf_command: Annotated[str, AfterValidator(_conf_command)] = ""
    dhparam: bool = False            # an ssl_dhparam file (DHE suites); the lab makes RFC 7919 ffdhe4096

    @model_validator(mode="after")
    def _sizes(self) -> "TlsSettings":
        if not 512 <= size_bytes(self.buffer_size) <= 16384:
            raise ValueError(f"buffer_size: {self.buffer_size} is outside 512..16k (a TLS record holds at most 16 KiB)")
        return self


COMMAND_FIELDS = ("host", "port", "uri", "url", "dest", "cacert")   # what a client.command template may use ({cacert}: the CA file with TLS on, else empty)


def command_fields(template: str) -> set[str]:
    """The {fields} a command template uses; ValueError for a line a shell could not split."""
    try:
        words = shlex.split(template)
    except ValueError as e:
        raise ValueError(f"{template!r}: {e}") from None
    if not words:
        raise ValueError("an empty command")
    try:
        return {f for w in words for _, f, _, _ in string.Formatter().parse(w) if f is not None}
    except ValueError as e:
        raise ValueError(f"{template!r}: {e} (write {{{{ and }}}} for literal braces)") from None


# The client kinds' names: the keys of labkit.clients.kinds.KINDS (config imports no clients; a unit test
# holds the two equal). A new kind is a module and a row there, and its name here.
ClientKindName = Literal["labkit", "curl", "sregistry-cli", "singularity-2.6", "command", "curl-ranged", "oci",
                         "skopeo", "podman", "oras-style", "enroot-style"]
CLIENT_KINDS: tuple[str, ...] = get_args(ClientKindName)
LEGACY_WRITE_TO = {"discard": "memory", "disk": "local-disk"}


class ClientSettings(_Model):
    """The last hop: the program that pulls on the compute node, and where it writes the image.

    `dest`, as HPC has it:
    - `memory`: nowhere that can be slow (labkit's client discards; the others write to /dev/shm).
    - `local-disk`: the compute node's own disk (an ext4 loop device), its device write ceiling
      `write_mbps`. Writes go through the page cache: the ceiling binds only once the disk's dirty
      pages reach `dirty_mib` (None: two seconds at the ceiling, 8..256 MiB), so an image must be
      larger than that for the disk to show in the pull.
    - `shared-fs`: a network file system as a compute node sees it (NFS, GPFS): each write request
      of `fs_request_kib` waits `fs_delay_ms` (requests from several writers overlap) and each
      compute node's requests share its own `fs_node_mbps`: one stream is slow, streams and nodes
      add up. Mounted without a writeback cache, every write() waits for its requests, so it binds
      from the first MiB at any image size (labkit.lab.conditions.sharedfs). Its server keeps no byte
      unless `fs_keep`: each file's sha256 is streamed as its writes arrive and read back by the client
      (an extended attribute), so no pull count is left out for the memory the bytes would take.
    Old settings' `write_to` is read as `dest` ("discard": memory, "disk": local-disk), with a warning.
    """
    kind: ClientKindName = "labkit"
    command: str | None = Field(None, description="for kind 'command': e.g. 'singularity pull {dest} shub://{host}/{uri}'")
    dest: Literal["memory", "local-disk", "shared-fs"] = "memory"
    write_mbps: MBps | None = None
    dirty_mib: int | None = Field(None, ge=1, le=4096, description="local-disk: dirty pages the disk may hold")
    fs_delay_ms: float = Field(4.0, gt=0, le=1000, description="shared-fs: delay per write request")
    fs_request_kib: int = Field(128, ge=4, le=1024, description="shared-fs: bytes per write request (FUSE max_write)")
    fs_node_mbps: MBps = Field(200.0, description="shared-fs: each compute node's bandwidth to it")
    fs_keep: bool = Field(False, description="shared-fs: keep the bytes written (else verified by a sha256 "
                                             "streamed as they arrive, and dropped)")
    layers_at_once: int | None = Field(None, ge=1, le=64, description="kind oci: layers fetched at once "
                                       "(None: containers/image's maxParallelDownloads, 6)")
    tls_offer: Literal["this machine", "centos7"] = Field("this machine", description="what labkit's client "
                                                          "offers over https (labkit.config.tls_clients): centos7 "
                                                          "= TLS 1.2 at most, OpenSSL 1.0.2k's suites (the seed's)")

    @model_validator(mode="before")
    @classmethod
    def _legacy_write_to(cls, data):
        return renamed(data, "client", "write_to", {k: {"dest": v} for k, v in LEGACY_WRITE_TO.items()}, "client.dest")

    @model_validator(mode="after")
    def _command(self) -> "ClientSettings":
        if (self.kind == "command") != bool(self.command):
            raise ValueError("command: give a command template exactly when kind is 'command'")
        if self.command:
            try:
                used = command_fields(self.command)
            except ValueError as e:
                raise ValueError(f"command: {e}") from None
            bad = sorted(used - set(COMMAND_FIELDS))
            if bad:
                raise ValueError(f"command: {self.command!r} uses {', '.join('{' + b + '}' for b in bad)}; "
                                 f"a template may use {', '.join('{' + f + '}' for f in COMMAND_FIELDS)}")
        for name in ("write_mbps", "dirty_mib"):
            if getattr(self, name) is not None and self.dest != "local-disk":
                raise ValueError(f"{name}: belongs to the compute node's disk, so it needs dest = 'local-disk'")
        if self.layers_at_once is not None and self.kind != "oci":
            raise ValueError(f"layers_at_once: belongs to kind 'oci' (labkit's OCI client), not {self.kind!r}")
        if self.fs_request_kib % 4:
            raise ValueError(f"fs_request_kib: {self.fs_request_kib} must be a multiple of 4 (pages)")
        return self

    @property
    def writes(self) -> bool:
        """Whether the client writes the image somewhere that can be slow (a disk of the lab)."""
        return self.dest != "memory"


MAX_DILATION = 16          # beyond this an emulated core's CFS quota is a few ms per 100 ms period, every run 16x long


class MachineSettings(_Model):
    """The emulated server machine and time dilation (DieCast: Gupta, Vishwanath, Vahdat, NSDI 2008).

    `vcpus`: the emulated server's cores, shared by nginx, uwsgi and docker-proxy (None: the lab's own
    CPU, as before). `dilation`: k >= 1: every resource slowed by k (each emulated core, link rates,
    disk and shared-fs bandwidth, the clients' CPU) and every timeout stretched by k, so the whole
    system runs k times slower and every measured rate is read back x k (labkit.config.dilation).
    Whether this machine can give `vcpus` cores of the CPU model at k is `dilation.machine_problems`'s
    to say (it needs this machine's cores and the model's speed ratio)."""
    vcpus: int | None = None
    dilation: float = 1.0

    @field_validator("vcpus")
    @classmethod
    def _vcpus(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= 256:
            raise ValueError(f"{v} emulated cores: give 1..256 (or leave it unset for this machine's own CPU)")
        return v

    @field_validator("dilation")
    @classmethod
    def _dilation(cls, k: float) -> float:
        if not k >= 1:
            raise ValueError(f"k = {k:g} is below 1: time dilation slows every resource by k so that a machine "
                             "larger than this one fits; k < 1 would ask this machine to run faster than it "
                             "does (k = 1: real time)")
        if k > MAX_DILATION:
            raise ValueError(f"k = {k:g} is above {MAX_DILATION}: an emulated core would get a few ms of CPU per "
                             f"100 ms CFS period and every run would take {k:g}x as long")
        return k


REGISTRY_KINDS = ("sregistry", "distribution")
REGISTRY_API = {"sregistry": "sregistry", "distribution": "oci"}    # the API each registry serves (Target.api)


class RegistrySettings(_Model):
    """Which registry the path serves, and what the lab pushes into an OCI one.

    `kind`: "sregistry" (sregistry's Django app in uwsgi behind nginx, the seed's system) or "distribution"
    (Debian's docker-registry, distribution/distribution 2.8, behind nginx proxying /v2/ to it: the path
    labkit.path.registry_path(registry="distribution") declares). The rest applies to "distribution" only:
    `layers`: the OCI image's layer count (the last one large, standing for a SIF; the others each a 16th
    of the image); `blobdescriptor_cache`: config.yml's storage.cache.blobdescriptor; `health_storagedriver`:
    its health.storagedriver check (interval 10s, threshold 3 as config-example.yml); `log_level`."""
    kind: Literal["sregistry", "distribution"] = "sregistry"
    layers: int = Field(3, ge=1, le=16)
    blobdescriptor_cache: Literal["inmemory", "none"] = "inmemory"
    health_storagedriver: bool = True
    log_level: Literal["error", "warn", "info", "debug"] = "info"

    @property
    def api(self) -> str:
        """The API a client speaks to it: "sregistry" (the manifest, then one file) or "oci" (`/v2/`)."""
        return REGISTRY_API[self.kind]


class LabSettings(_Model):
    nginx: NginxSettings = NginxSettings()
    tls: TlsSettings = TlsSettings()
    uwsgi: UwsgiSettings = UwsgiSettings()
    app: AppSettings = AppSettings()
    kernel: KernelSettings = KernelSettings()
    publish: PublishSettings = PublishSettings()
    links: LinkSettings = LinkSettings()
    storage: StorageSettings = StorageSettings()
    cpu: CpuSettings = CpuSettings()
    client: ClientSettings = ClientSettings()
    machine: MachineSettings = MachineSettings()
    registry: RegistrySettings = RegistrySettings()

    def changed(self, **groups: dict) -> "LabSettings":
        """A copy with some fields changed, validated: `s.changed(nginx={'sendfile': False})`."""
        data = self.model_dump()
        for group, values in groups.items():
            if group not in data:
                raise SettingsError(f"unknown settings group {group!r}; groups: {', '.join(data)}")
            data[group].update(values)
        return parse_settings(data)


def is_keyed(group: str) -> bool:
    """Whether a settings group is keyed by the path's names (links, cpu) rather than fixed fields."""
    model = LabSettings.model_fields[group].annotation
    return isinstance(model, type) and issubclass(model, _Keyed)


def setting(s: LabSettings, group: str, field: str):
    """One setting's value; None for an entry a keyed group does not have."""
    part = getattr(s, group)
    return part.get(field) if isinstance(part, _Keyed) and field not in type(part).model_fields \
        else getattr(part, field)


def field_names(s: LabSettings, group: str, *more: LabSettings) -> list[str]:
    """A group's settings: its fields, or for a keyed group the entries any of `s`, `more` has."""
    part = getattr(s, group)
    if not isinstance(part, _Keyed):
        return list(type(part).model_fields)
    return list(dict.fromkeys(k for x in (s, *more) for k in getattr(x, group).model_extra or {}))


def parse_settings(data: dict) -> LabSettings:
    try:
        return LabSettings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(explain(exc)) from None


def error_loc(err: dict) -> tuple[list[str], object]:
    """A validation error's setting, as its dotted parts, and the value it refused."""
    # pydantic names union branches ("constrained-int", "literal['auto']"): not settings
    parts = [str(p) for p in err["loc"] if not re.search(r"[\[\]-]", str(p))]
    ctx = err.get("ctx") or {}
    if "setting" in ctx:                     # an entry of a group keyed by the path's names
        return [*parts, ctx["setting"]], ctx.get("input")
    return parts, err.get("input")


def explain(exc: ValidationError) -> str:
    """One clause per bad setting, named by its dotted path (union branches merged)."""
    problems: dict[str, list[str]] = {}
    got: dict[str, object] = {}
    for err in exc.errors():
        parts, value = error_loc(err)
        where = ".".join(parts) or "settings"
        problems.setdefault(where, []).append(err["msg"].removeprefix("Value error, "))
        if not isinstance(value, dict):
            got[where] = value
    return "; ".join(f"{where}: {' or '.join(msgs)}" + (f" (got {got[where]!r})" if where in got else "")
                     for where, msgs in problems.items())


def as_text(value) -> str:
    """A setting as an operator writes it: '4096 65536 8388608', '8 4k', 'accel'; '' for None (default)."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)
