"""Typed, validated settings for every hop of the serving path, and the presets.

Everything here is pure: no files, no processes. A value nginx or uwsgi would
reject is refused here, with the setting's name and the allowed range, before
anything is applied to a running lab.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from ..errors import SettingsError
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError,
                      model_validator)
from pydantic_core import PydanticCustomError

from .modes import SERVE_MODES

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
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
        return self


class UwsgiSettings(_Model):
    processes: int = Field(1, ge=1, le=1024)
    threads: int = Field(1, ge=1, le=256)
    buffer_size: int = Field(4096, ge=4096, le=65535, description="bytes, the uwsgi request header buffer")
    offload_threads: int = Field(0, ge=0, le=64)
    # uwsgi parses post-buffering as a number (strtoul): sregistry's `post-buffering = true` is 0, off.
    # "true" keeps that spelling in the rendered ini; None leaves the line out.
    post_buffering: Literal["true"] | Annotated[int, Field(ge=0, le=1 << 30)] | None = None
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
    chunk_size: int = Field(4096, ge=512, le=16 * 1024**2,
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
            if v is not None and not (4096 <= v[0] <= v[1] <= v[2] <= 1 << 30):
                raise ValueError(f"{name}: {v} must be min <= default <= max, each 4096..1073741824 bytes")
        return self


class PublishSettings(_Model):
    mode: Literal["userland-proxy", "dnat"] = "userland-proxy"
    host_port: int = Field(80, ge=1, le=65535)


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


class CpuSettings(_Keyed):
    """Per-container CPU as docker-compose's `cpus:` (CFS quota) and `cpuset:`, keyed by the path's
    names: `<name>_cpus`, `<name>_cpuset` (nginx_cpus, uwsgi_cpuset, proxy_cpus); absent = unlimited."""

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


class StorageSettings(_Model):
    """The VM's disk: where the images and nginx's temp files live, as sregistry's bind mount and container layer.

    `host`: the lab's data directory (the host's page cache and disk). `loop`: an ext4 file system
    on a direct-I/O loop device, with block-I/O limits and, through a FUSE passthrough, a delay per
    request (a qcow2 image on GPFS: one stream slow, many streams adding up).
    """
    disk: Literal["host", "loop"] = "host"
    cache: Literal["warm", "cold"] = "warm"
    read_mbps: MBps | None = None
    write_mbps: MBps | None = None
    read_iops: int | None = Field(None, ge=1, le=10_000_000)
    write_iops: int | None = Field(None, ge=1, le=10_000_000)
    latency_ms: float = Field(0.0, ge=0, le=1000)

    @model_validator(mode="after")
    def _needs_loop(self) -> "StorageSettings":
        limits = [n for n in ("read_mbps", "write_mbps", "read_iops", "write_iops") if getattr(self, n) is not None]
        if self.disk == "host" and (limits or self.latency_ms):
            raise ValueError(f"{', '.join(limits + (['latency_ms'] if self.latency_ms else []))} "
                             "need storage.disk = 'loop' (the host's own disk is not the lab's to limit)")
        return self


COMMAND_FIELDS = ("host", "port", "uri", "url", "dest")   # what a client.command template may use


def command_fields(template: str) -> set[str]:
    """The {fields} a command template uses; ValueError for a line a shell could not split."""
    import shlex
    import string
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


class ClientSettings(_Model):
    """The last hop: the program that pulls on the compute node, and what it writes to."""
    kind: Literal["labkit", "curl", "sregistry-cli", "command"] = "labkit"
    command: str | None = Field(None, description="for kind 'command': e.g. 'singularity pull {dest} shub://{host}/{uri}'")
    write_to: Literal["discard", "disk"] = "discard"
    write_mbps: MBps | None = None

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
        if self.write_mbps is not None and self.write_to != "disk":
            raise ValueError("write_mbps: limits the client's disk, so it needs write_to = 'disk'")
        return self


class LabSettings(_Model):
    nginx: NginxSettings = NginxSettings()
    uwsgi: UwsgiSettings = UwsgiSettings()
    app: AppSettings = AppSettings()
    kernel: KernelSettings = KernelSettings()
    publish: PublishSettings = PublishSettings()
    links: LinkSettings = LinkSettings()
    storage: StorageSettings = StorageSettings()
    cpu: CpuSettings = CpuSettings()
    client: ClientSettings = ClientSettings()

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
    return part.get(field) if isinstance(part, _Keyed) else getattr(part, field)


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
