"""What every client kind is: one interface for the programs that pull an image on the compute node.

    kind = KINDS[settings.client.kind](settings.client)      # labkit.clients.kinds
    kind.pull(Target(ns, host, port, uri, sha256, size, trust), Where(dest_root, preexec, find), parallel=5)

A kind pulls a target to a destination, `parallel` pulls at once, each verified (its bytes, and by
default their sha256); it says how many connections one pull opens (`connections`) and how its CPU is
accounted (`cpu`: the pulling threads' own CPU time in this process, or the program's rusage, its
children included, when it is reaped). Every pull is a PullResult (labkit.records).
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ..config.settings import ClientSettings
from ..errors import SettingsError
from ..records import PullResult, Verify
from .registry_api import Trust


API = Literal["sregistry", "oci"]


@dataclass(frozen=True)
class OciImageRef:
    """An image in an OCI registry (`/v2/`), as a pull must end with it: its name and every digest.

    `layers`: (digest, size) of each layer blob in the manifest's order; a pull is verified when every
    layer (and the config) arrives with the bytes its digest names."""
    repository: str
    tag: str
    manifest_digest: str
    config_digest: str
    layers: tuple[tuple[str, int], ...]

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def size(self) -> int:
        return sum(size for _, size in self.layers)


@dataclass(frozen=True)
class Target:
    """What to pull and from where: the compute node's namespace, the published address, the image.

    sregistry's API (`oci` None): one file at `uri`, `sha256` and `size` its own. An OCI registry
    (`oci` given): the image `oci` names, pulled by `/v2/`; `uri` is then its manifest's path, `sha256`
    the large layer's digest (hex) and `size` the layers' total."""
    ns: str | None
    host: str
    port: int
    uri: str
    sha256: str
    size: int
    trust: Trust | None = None      # https, verified against this (the lab's CA) when given
    oci: OciImageRef | None = None

    @property
    def api(self) -> API:
        return "sregistry" if self.oci is None else "oci"


@dataclass(frozen=True)
class Where:
    """Where the pulls run and write, as the host gives it (the lab: its compute node's storage).

    `dest_root`: the directory each pull writes its file under (None: nowhere; only a kind that may
    discard takes it); `preexec`: run in a program's child before it execs (joins the compute node's
    block-I/O group and CPU group); `find`: a program's path by its name (the lab's tool lookup, with its
    hint); `keeps`: whether the destination keeps the bytes (False: the lab's shared file system verifies
    and drops them, so no room is needed); `own_process`: a kind that pulls in this process's threads
    (labkit's own) runs its pulls in a child process started with `preexec` instead, so the compute node's
    CPU group holds them (labkit.clients.own)."""
    dest_root: Path | None = None
    preexec: Callable[[], None] | None = None
    find: Callable[[str], str] | None = None
    keeps: bool = True
    own_process: bool = False


class ClientKind(ABC):
    """One kind of client; a subclass per kind, registered by name in labkit.clients.kinds.KINDS."""
    name: ClassVar[str]                          # as client.kind names it
    connections: ClassVar[int] = 1               # TCP connections one pull opens for the image
    cpu: ClassVar[Literal["threads", "rusage"]] = "rusage"
    discards: ClassVar[bool] = False             # with dest=memory it keeps no file at all (else /dev/shm)
    apis: ClassVar[tuple[API, ...]] = ("sregistry",)   # the registry APIs it speaks (Target.api)

    def __init__(self, settings: ClientSettings | None = None):
        self.settings = settings or ClientSettings(kind=self.name)

    @abstractmethod
    def pull(self, t: Target, where: Where, parallel: int = 1, verify: Verify = "sha256", timeout: float = 30,
             deadline: float = 600, first_byte: threading.Event | None = None) -> list[PullResult]:
        """`parallel` pulls of `t` at once, each verified as `verify` says; results in order. A failed
        pull is a result with its error, not an exception; bad settings or no room raise before any pull."""

    def require_api(self, t: Target) -> None:
        """Refuse, before anything runs, a target in an API this kind does not speak (SettingsError naming it)."""
        if t.api not in self.apis:
            raise SettingsError(f"client.kind {self.name!r} speaks {' and '.join(self.apis)} only; the target "
                                f"{t.host}:{t.port} {t.uri} is {t.api}'s API: choose a kind that speaks {t.api}")

    def describe(self) -> str:
        """One line: the kind, its connections per pull, how its CPU is counted."""
        cpu = "its threads' CPU time" if self.cpu == "threads" else "its rusage (children included)"
        return f"{self.name}: {self.connections} connection(s) per pull, CPU counted by {cpu}"
