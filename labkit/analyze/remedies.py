"""What to change for a named constraint (pure): a table from what binds to candidate setting changes.

    candidates("nginx", "cpu", settings, path)    # the remedies for nginx's CPU that change something here

Each remedy is a set of `--set` overrides with why it addresses the constraint, and the settings
under which it applies (a remedy that would change nothing is left out). The table is keyed by
the program whose stage binds (CLIENT for the pulling client, ANY for every stage) and the kind
of cause, so it holds for any path that has those programs; `{cpu}` in a remedy stands for the
program's key in settings.cpu on the path in hand (docker-proxy's is `proxy`).
`labkit.experiments.survey.fix` tries each candidate on the lab and keeps the one that measurably wins.

With TLS on, nginx's CPU also gets the TLS fixes (labkit.config.tls_fixes.FIXES, those that help
throughput), as overrides computed from the settings in hand (a cipher moved first keeps the rest).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config.modes import modes_where
from ..path import CLIENT
from .noise import FLOOR, Rate, above
from ..config.settings import as_text
from ..config.tls_fixes import FIXES
from ..config.cpu_models import negotiated
from ..config.tls_clients import offer as tls_offer

ANY = "*"        # a table key for a cause whatever program's stage it binds in


@dataclass(frozen=True)
class Remedy:
    name: str
    set: tuple[str, ...]                     # overrides, as `labkit survey --set` takes them
    why: str
    when: dict[str, tuple] = field(default_factory=dict)   # group.field -> values under which it applies

    def applies(self, settings) -> bool:
        if settings is None:
            return True
        for dotted, values in self.when.items():
            group, _, name = dotted.partition(".")
            if getattr(getattr(settings, group), name, None) not in values:
                return False
        return True

    def on(self, cpu_key: str | None) -> "Remedy | None":
        """This remedy with `{cpu}` filled in for a program's settings.cpu key (None: it has none)."""
        if not any("{cpu}" in x for x in (*self.set, *self.when)):
            return self
        if cpu_key is None:
            return None
        return replace(self, name=self.name, set=tuple(x.format(cpu=cpu_key) for x in self.set),
                       when={k.format(cpu=cpu_key): v for k, v in self.when.items()})


class _AnySet(tuple):
    """`when` values meaning 'set to anything but None'."""
    def __contains__(self, value) -> bool:
        return value is not None


_ANY_SET = _AnySet()
SREGISTRY = {"registry.kind": ("sregistry",)}          # remedies of sregistry's app and uwsgi
SPOOLING = {**SREGISTRY, "app.serve_mode": modes_where(lambda m: m.app_sends_image)}   # the app's response carries it
ACCEL = Remedy("X-Accel-Redirect", ("app.serve_mode=accel",),
               "nginx sends the image itself with sendfile: nothing is spooled through its buffers and temp files, "
               "and the uwsgi worker is free once the headers are sent", SPOOLING)
NO_BUFFERING = Remedy("uwsgi_buffering off", ("nginx.uwsgi_buffering=off",),
                      "nginx passes uwsgi's bytes on as they come instead of spooling every pull to temp files",
                      {**SPOOLING, "nginx.uwsgi_buffering": (True,)})
DNAT = Remedy("DNAT publishing", ("publish.iptables=true",),
              "Docker's default `\"iptables\": true`: the kernel DNATs the published port and forwards the packets, "
              "no user-space copy by docker-proxy (docker/libnetwork 02d0f9d6 portmapper/mapper.go MapRange)",
              {"publish.iptables": (False,)})
FILE_WRAPPER = Remedy("uwsgi's file wrapper", ("app.serve_mode=fileresponse",),
                      "uwsgi sendfile()s the file instead of Django iterating it in 4 KiB blocks in Python",
                      {**SREGISTRY, "app.serve_mode": modes_where(lambda m: m.app_sends_image and not m.file_wrapper)})
PROXY_NO_BUFFERING = Remedy(
    "proxy_buffering off", ("nginx.proxy_buffering=off",),
    "nginx passes the registry's blob bytes on as they come instead of spooling every pull through its buffers "
    "and temp files (Harbor's nginx ships it: goharbor/harbor v2.15.2 "
    "make/photon/prepare/templates/nginx/nginx.https.conf.jinja, location /v2/)",
    {"registry.kind": ("distribution",), "nginx.proxy_buffering": (True,)})
WARM_CACHE = Remedy("a warm page cache", ("storage.cache=warm",),
                    "images read from RAM: enough memory for the images the nodes pull", {"storage.cache": ("cold",)})
RMEM = Remedy("a larger receive buffer", ("kernel.tcp_rmem=4096 131072 33554432",),
              "tcp_rmem's maximum bounds the receive window: 32 MiB covers this path's bandwidth times its round trip")
DISCARD = Remedy("a destination that keeps up", ("client.dest=memory", "client.write_mbps=none"),
                 "the client writes to a destination as fast as the path, e.g. local SSD or tmpfs (Singularity: "
                 "SINGULARITY_CACHEDIR / SINGULARITY_PULLFOLDER), instead of the slow disk or shared file system: "
                 "the lab stands for it by keeping the image in memory", {"client.dest": ("local-disk", "shared-fs")})


LIFT = Remedy("no CPU quota", ("cpu.{cpu}_cpus=none",), "the program gets the CPU it needs instead of its CFS quota",
              {"cpu.{cpu}_cpus": _ANY_SET})


REMEDIES: dict[tuple[str, str], tuple[Remedy, ...]] = {
    ("nginx", "cpu"): (ACCEL, NO_BUFFERING, PROXY_NO_BUFFERING, LIFT),
    ("nginx", "app"): (ACCEL, NO_BUFFERING, PROXY_NO_BUFFERING),
    ("docker-proxy", "cpu"): (DNAT, LIFT),
    ("uwsgi", "cpu"): (FILE_WRAPPER, ACCEL, LIFT),
    ("uwsgi", "app"): (FILE_WRAPPER, ACCEL),
    ("uwsgi", "disk"): (WARM_CACHE,),
    ("registry", "cpu"): (LIFT,),                 # distribution (registry.kind "distribution"): its service
    ("registry", "disk"): (WARM_CACHE,),
    (ANY, "window"): (RMEM,),
    (CLIENT, "client"): (DISCARD,),
}
NOTHING = {"link": "no server setting raises a link's capacity, a faster link does",
           "down": "a service is down: `labkit heal` restarts it",
           "client": "the lab's own client binds: nothing on the server to change"}


def tls_remedies(settings) -> tuple[Remedy, ...]:
    """The TLS fixes that help throughput, as remedies for the TLS-encrypting nginx's CPU under `settings`."""
    if settings is None or not settings.tls.enabled:
        return ()
    out, offered = [], tls_offer(settings.client.tls_offer).suites()
    for f in (f for f in FIXES if f.speeds_up):
        new = f.apply(settings)
        if set(f.changes) == {"tls"} and new.tls.enabled and negotiated(new.tls, offered) == negotiated(settings.tls, offered):
            continue        # the operator's clients would negotiate the same suite (CentOS 7 and ChaCha20 first)
        sets = tuple(f"{g}.{k}={as_text(v)}" for g in f.changes for k in type(getattr(new, g)).model_fields
                     if getattr(getattr(settings, g), k) != (v := getattr(getattr(new, g), k)))
        if sets:
            who = f.oci_clients if settings.registry.kind != "sregistry" and f.oci_clients else f.clients
            out.append(Remedy(f.name, sets, f"TLS at nginx binds on this CPU; {f.helps}: {who}"))
    return tuple(out)


def candidates(stage: str, cause: str, settings, path) -> list[Remedy]:
    """The remedies for `cause` at `stage` of `path` that would change something under `settings`."""
    out = []
    for prog in (*path.stage(stage).programs, ANY):
        extra = tls_remedies(settings) if (prog, cause) == ("nginx", "cpu") else ()
        for r in (*extra, *REMEDIES.get((prog, cause), ())):
            r = r.on(path.cpu_key(prog)) if prog != ANY else r
            if r is not None and r.applies(settings) and r not in out:
                out.append(replace(r, name=f"{r.name} on {prog}") if r.name == LIFT.name else r)
    return out


def nothing_to_change(stage: str, cause: str, settings, path) -> str:
    """Why no remedy is offered ('' when there are candidates)."""
    if candidates(stage, cause, settings, path):
        return ""
    return NOTHING.get(cause, f"no setting the lab models addresses {cause} at {stage}")


@dataclass
class Trial:
    """One remedy tried on the lab: one pull and N at once, each repeated (median and range)."""
    name: str
    set: tuple[str, ...]
    one: Rate
    many: Rate
    parallel: int
    failures: int = 0

    def to_dict(self) -> dict:
        return {"remedy": self.name, "set": list(self.set), "one_MBps": round(self.one.median, 1),
                "one_lo": round(self.one.lo, 1), "one_hi": round(self.one.hi, 1),
                "parallel": self.parallel, "many_MBps": round(self.many.median, 1),
                "many_lo": round(self.many.lo, 1), "many_hi": round(self.many.hi, 1), "runs": self.one.runs,
                "failures": self.failures}


WIN_RULE = ("no failed pull; above the settings as they were by more than the noise in one pull or in N at once, "
            f"and not below them beyond the noise in the other (noise: {FLOOR:.0%} or the runs' spread); "
            "among those, the highest geometric mean of the two medians")


def winner(before: Trial, trials: list[Trial]) -> Trial | None:
    """The remedy that measurably beats `before` (WIN_RULE), or None when none does."""
    def beats(t: Trial) -> bool:
        if t.failures:
            return False
        up = above(t.one, before.one) or above(t.many, before.many)
        down = above(before.one, t.one) or above(before.many, t.many)
        return up and not down
    good = [t for t in trials if beats(t)]
    return max(good, key=lambda t: (t.one.median * t.many.median) ** 0.5, default=None)


@dataclass
class Fix:
    """Remedies tried for a verdict: the settings as they were, each remedy, the winner and its bundle."""
    hop: str
    cause: str
    before: Trial | None            # None: there was nothing to try
    trials: list[Trial]
    best: Trial | None
    changes: list[dict] = field(default_factory=list)     # {path, old, new, why} of the winner
    bundle: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        b, w = self.before, self.best
        num = lambda t, attr: round(getattr(t, attr).median, 1) if t else None   # noqa: E731
        return {"hop": self.hop, "cause": self.cause, "remedy": w.name if w else None,
                "settings": self.changes, "before_MBps": num(b, "one"), "after_MBps": num(w, "one"),
                "parallel": b.parallel if b else None, "before_parallel_MBps": num(b, "many"),
                "after_parallel_MBps": num(w, "many"),
                "trials": [t.to_dict() for t in ([b] if b else []) + self.trials], "rule": WIN_RULE,
                "bundle": self.bundle, "notes": self.notes}
