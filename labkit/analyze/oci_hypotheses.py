"""Today's slow pulls on the OCI path (registry.kind "distribution" behind nginx): each explanation an operator
meets in upstream issues, made real as settings on the distribution path, with what undoes it; and the rule that
judges which of them binds on the lab (pure: rows in, a judged table out).

Each hypothesis carries the upstream issue it comes from (repository and number) and the code that makes its
mechanism real (repository, commit, file), read at the versions the lab runs where the lab runs them (nginx
release-1.22.1: Debian 12's nginx-light 1.22.1; distribution v2.8.2: Debian 12's docker-registry; containers/image
v5.23.1: what Debian 12's skopeo 1.9.3 is built with). `overrides` make it real on its base preset, `fix` (applied
after them) undoes it as the issue's fix does. A hypothesis the lab cannot make real says why in `unmeasurable`
and is carried in the table, never run.

The rule (`judge`): a hypothesis binds where the fix is faster than it beyond the runs' noise
(labkit.analyze.noise), or where its pulls fail and the fix's do not; one pull and N at once are judged apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..config.overrides import apply_overrides
from ..config.presets import DISTRIBUTION, DISTRIBUTION_V2_8_2, HARBOR, preset
from ..config.settings import LabSettings
from .noise import Rate, above

NGINX, NGINX_1_22_1 = "nginx/nginx", "352a7d2bc4aa6b51e6e5c13f811bf961201c763d"          # tag release-1.22.1
IMAGE, IMAGE_5_23_1 = "containers/image", "a3bfb8695c8e2a6ce73cb5957c646d2243299151"     # tag v5.23.1
LIBNETWORK, LIBNETWORK_2018 = "docker/libnetwork", "02d0f9d6"                             # as DESIGN.md reads it
HARBOR_BUFFER_ON = "885ddfddd0dec04909e152c4476269a405f482cc"      # PR#2973's commit: "enable buffer on nginx"
HARBOR_BUFFER_OFF = "026e8e7f95e8b3afa37f9cd05119c904a1c79b9b"     # PR#3148's commit: "disable nginx buffer"
HARBOR_NGINX_2017 = "make/common/templates/nginx/nginx.https.conf"


@dataclass(frozen=True)
class Issue:
    """An upstream issue or pull request: `repo`, `number` ("#2936", "PR#2973") and what it reports."""
    repo: str
    number: str
    says: str

    def __str__(self) -> str:
        return f"{self.repo}{self.number}" if self.number.startswith("#") else f"{self.repo} {self.number}"


@dataclass(frozen=True)
class Code:
    """Upstream code that makes a mechanism real: `repo` at `commit`, `path`, and what it does there."""
    repo: str
    commit: str
    path: str
    does: str

    def __str__(self) -> str:
        return f"{self.repo} {self.commit[:8]} {self.path}"


@dataclass(frozen=True)
class OciHypothesis:
    name: str
    explains: str
    overrides: tuple[str, ...]
    fix: tuple[str, ...]
    fix_text: str
    issues: tuple[Issue, ...]
    code: tuple[Code, ...]
    base: str = "distribution-2.8"
    honest: str = ""            # what the lab's nginx / registry / client really do, where it differs from the report
    unmeasurable: str = ""      # why the lab cannot make it real (then it is carried, never run)

    def settings(self, *extra: str, fixed: bool = False) -> LabSettings:
        """Its base preset with `extra` (the experiment's own), its overrides and, `fixed`, its fix after them."""
        return apply_overrides(preset(self.base), [*extra, *self.overrides, *(self.fix if fixed else ())])

    @property
    def cited(self) -> str:
        """Its issues, then its code, in one line."""
        return "; ".join([*map(str, self.issues), *map(str, self.code)])


# nginx 1.22.1's event pipe: the one place buffering, temp files, the cap and the read timer meet
PIPE = Code(NGINX, NGINX_1_22_1, "src/event/ngx_event_pipe.c",
            "ngx_event_pipe_read_upstream writes the response to a temp file while temp_file->offset < "
            "max_temp_file_size, else reads no more from the upstream until the client has taken what nginx holds; "
            "the read timer (proxy_read_timeout) is armed only while the upstream is not ready")
FILEREADER = Code(DISTRIBUTION, DISTRIBUTION_V2_8_2, "registry/storage/filereader.go",
                  "a blob is read through bufio.NewReaderSize with its fileReaderBufferSize of 4 MiB: 4 MiB reads from the "
                  "storage driver, nothing sent while one is waited for")
BLOBSERVER = Code(DISTRIBUTION, DISTRIBUTION_V2_8_2, "registry/storage/blobserver.go",
                  "ServeBlob answers with http.ServeContent over that reader (the filesystem driver: no redirect)")

# The experiment's own change on every hypothesis: the VM's disk a loop device (the registry's root and nginx's
# temp dir on it), so the disk can be limited and its reads and writes are counted, the same for all.
COMMON = ("storage.disk=loop",)

HYPOTHESES: tuple[OciHypothesis, ...] = (
    OciHypothesis(
        "nginx spools blobs to a slow temp disk",
        "with proxy_buffering on (nginx's default; distribution's nginx recipe leaves it on) nginx reads the "
        "registry as fast as it can and writes what the client has not yet taken to temp files on its own disk: "
        "past the dirty pages that disk may hold, every pull waits on its writes",
        ("storage.write_mbps=20", "storage.dirty_mib=1"),
        ("nginx.proxy_buffering=false",),
        "proxy_buffering off on /v2/ (Harbor's nginx since PR#3148; harbor-front), or temp files on a fast disk",
        (Issue(HARBOR, "#2936", "slow pulls through Harbor's nginx; PR#2973 turned buffering on to mitigate it"),
         Issue(HARBOR, "PR#2973", "'Enable buffer on nginx ... to accelerate the speed to download image': a 100 MB "
               "layer by curl from below 100 MB/s to 200+ MB/s"),
         Issue(HARBOR, "PR#3148", "'disable nginx buffer': with the host low on disk, buffering caused errors")),
        (PIPE,
         Code(HARBOR, HARBOR_BUFFER_ON, HARBOR_NGINX_2017, "PR#2973: proxy_buffering off removed (buffering on), "
              "proxy_buffers 4 32k"),
         Code(HARBOR, HARBOR_BUFFER_OFF, HARBOR_NGINX_2017, "PR#3148: proxy_buffering off, proxy_request_buffering "
              "off again (as Harbor ships today: harbor-front)")),
        honest="Harbor went both ways in 2017: buffering on made pulls faster where the registry was slow to pace "
               "the client, and off again because temp files fill the disk; which wins depends on the temp disk"),
    OciHypothesis(
        "the 1 GiB proxy_max_temp_file_size cap",
        "a blob larger than proxy_max_temp_file_size (1024m by default) fails through a buffering nginx (the "
        "reports' claim); here the cap is 1m, so every large layer is larger than it",
        ("nginx.proxy_max_temp_file_size=1m",),
        ("nginx.proxy_max_temp_file_size=0m",),
        "proxy_max_temp_file_size 0 (no temp files) or proxy_buffering off",
        (Issue(HARBOR, "#2936", "large pulls through Harbor's buffering nginx"),
         Issue("podman-container-tools/podman", "#14481", "a layer over 1 GiB pulled through a reverse nginx fails "
               "('upstream prematurely closed connection while reading upstream'); proxy_max_temp_file_size 0 ended "
               "it"),
         Issue("NginxProxyManager/nginx-proxy-manager", "#3567", "large layers behind its proxy (issue 27's "
               "citation)")),
        (PIPE,),
        honest="nginx 1.22.1 does not fail a blob over the cap: it spools up to the cap, then stops reading the "
               "registry until the client has taken what it holds, and the pull completes "
               "(tests/integration/test_distribution_integration.py); a failure needs more: a temp disk with less "
               "room than the cap (storage.temp_mib; the same test: 16 MiB of room, a 56 MiB blob, the pull cut "
               "with \"No space left on device\" and whole with proxy_buffering off), or a deadline of the client "
               "or the registry (distribution v2.8.2's http.Server has none: registry/registry.go:173)"),
    OciHypothesis(
        "proxy_read_timeout on big blobs",
        "nginx ends a response when the registry sends nothing for proxy_read_timeout (60 s by default; the "
        "recipe and Harbor set 900): a registry that waits on slow storage between its 4 MiB reads is cut off "
        "mid-blob, more often with more pulls sharing the storage",
        ("nginx.proxy_read_timeout=1", "storage.read_mbps=2", "storage.cache=cold"),
        ("nginx.proxy_read_timeout=900",),
        "proxy_read_timeout 900 (distribution's recipe, Harbor) hides it; faster storage under the registry ends it",
        (Issue(HARBOR, "#17242", "a 12 GB layer that would not go through Harbor's nginx (a push); the "
               "maintainers: 'enlarge the http timeout in the nginx'"),),
        (PIPE, FILEREADER,
         Code(NGINX, NGINX_1_22_1, "src/http/ngx_http_upstream.c",
              "ngx_http_upstream_process_non_buffered_request (buffering off) arms read_timeout on the upstream's "
              "read event while it is active and not ready; with buffering on the event pipe does (PIPE)")),
        honest="the lab's timeout is 1 s (nginx's least) against a disk held to 2 MB/s: a 4 MiB read of the "
               "registry waits about 2 s, longer than the timeout, the scaled-down form of 60 s against a slow "
               "network file system"),
    OciHypothesis(
        "one nginx worker for every TLS pull",
        "distribution's recipe leaves worker_processes at nginx's default 1: every TLS connection is encrypted "
        "on one core, so N pulls share it and add nothing",
        (),
        ("nginx.worker_processes=2",),
        "worker_processes = the CPUs nginx may use (its cgroup's, not the host's)",
        (Issue(HARBOR, "#16651", "nginx-photon ignores the CPU limit with worker_processes auto: the worker count "
               "and the cgroup's CPUs disagree"),),
        (Code(NGINX, NGINX_1_22_1, "src/core/nginx.c", "worker_processes auto sets ccf->worker_processes = ngx_ncpu"),
         Code(NGINX, NGINX_1_22_1, "src/os/unix/ngx_posix_init.c",
              "ngx_ncpu = sysconf(_SC_NPROCESSORS_ONLN): the host's CPUs online, not a cgroup's quota or cpuset"))),
    OciHypothesis(
        "worker_processes auto against a CPU quota",
        "harbor#16651: worker_processes auto starts one worker per host CPU while the container may use fewer: "
        "the workers take turns under the quota",
        ("nginx.worker_processes=auto", "cpu.nginx_cpus=1"),
        ("nginx.worker_processes=1",),
        "worker_processes = the quota's CPUs (nginx's docker image: NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE)",
        (Issue(HARBOR, "#16651", "nginx-photon ignores the CPU limit; spawns one process per core"),),
        (Code(NGINX, NGINX_1_22_1, "src/os/unix/ngx_posix_init.c",
              "ngx_ncpu = sysconf(_SC_NPROCESSORS_ONLN): the host's CPUs online, not the cgroup's quota"),),
        base="harbor-front",
        honest="on this 2-core machine auto means 2 workers against a 1-CPU quota: the quota binds either way, "
               "so more workers than the quota are expected to cost little"),
    OciHypothesis(
        "a client that pulls one layer at a time",
        "a client fetching its layers one after another (or slowly per layer) leaves the path idle between "
        "them and rests each layer on one stream",
        ("client.kind=oci", "client.layers_at_once=1"),
        ("client.layers_at_once=6",),
        "several layers at once: containers/image's 6 (skopeo, podman, Apptainer docker://), containerd's "
        "max_concurrent_downloads",
        (Issue("containerd/containerd", "#8160", "130 MB/s per layer where curl got 2400 MB/s from the same cache"),
         Issue(IMAGE, "#776", "layers copied one at a time (issue 27's citation)")),
        (Code(IMAGE, IMAGE_5_23_1, "copy/copy.go", "maxParallelDownloads = uint(6): layers fetched 6 at a time"),),
        honest="a layer at a time costs where one stream cannot fill the path (a long round trip, a per-stream "
               "limit); on the lab's short path one stream may already fill what nginx can send"),
    OciHypothesis(
        "HTTP/2 flow-control windows",
        "over HTTP/2 a stream may only have its receive window in flight: a small window on a long round trip "
        "limits one blob, whatever the link",
        (), (),
        "a larger window (curl's later defaults, Go's 4 MiB stream window), or HTTP/1.1",
        (Issue("golang/go", "#47840", "HTTP/2 flow-control windows in Go's transport (issue 27's citation)"),
         Issue("curl/curl", "#1102", "HTTP/2 downloads slower with the default 64 KiB window: 23 MB at 33 ms RTT in "
               "8.3 s against 1.1 s over HTTP/1.1")),
        (Code(NGINX, NGINX_1_22_1, "src/http/v2/ngx_http_v2.h",
              "NGX_HTTP_V2_DEFAULT_WINDOW 65535: nginx sends within the window the client grants"),
         Code(IMAGE, IMAGE_5_23_1, "pkg/tlsclientconfig/tlsclientconfig.go",
              "NewTransport sets its own DialContext and no ForceAttemptHTTP2: skopeo and podman speak HTTP/1.1")),
        unmeasurable="nginx-light 1.22.1 here is built --with-http_v2_module, but the lab cannot make a window bind: "
                     "this kernel has no netem, so there is no round trip to fill (a 64 KiB window at the lab's "
                     "~0.1 ms RTT allows ~650 MB/s), the lab's settings have no http2 listen switch, and skopeo and "
                     "podman (containers/image 5.23.1) never negotiate HTTP/2"),
    OciHypothesis(
        "docker-proxy under pull storms",
        "with Docker's `\"iptables\": false` every byte crosses docker-proxy, a user-space copy per connection, "
        "which saturates a core when many pulls run at once",
        ("publish.iptables=false",),
        ("publish.iptables=true",),
        "Docker's default `\"iptables\": true` (the kernel DNATs the published port) or `userland-proxy: false`",
        (Issue("moby/moby", "#47537", "docker-proxy at 100% CPU and timeouts after 30k connections"),
         Issue(HARBOR, "#21753", "the docker-proxy Harbor's nginx is published by goes zombie after pulling many "
               "images at once")),
        (Code(LIBNETWORK, LIBNETWORK_2018, "portmapper/mapper.go",
              "MapRange installs the DNAT rule whatever userland-proxy says: docker-proxy carries a compute node's "
              "pull only with iptables off"),
         Code(LIBNETWORK, LIBNETWORK_2018, "iptables/iptables.go",
              "ProgramChain: PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"))),
    OciHypothesis(
        "storage latency under the registry's root",
        "the registry's root on a networked file system (distribution#2456: glusterfs): each read of a blob waits "
        "on it, and a blob is read 4 MiB at a time",
        ("storage.latency_ms=2", "storage.cache=cold"),
        ("storage.latency_ms=0", "storage.cache=warm"),
        "the registry's root on local disk, a warm page cache, or a storage driver that redirects blobs to "
        "object storage (URLFor)",
        (Issue(DISTRIBUTION, "#2456", "Blobs API sometimes quick (0.165 s), sometimes slow (5 s): the root on "
               "glusterfs mounted as a local file system"),),
        (FILEREADER, BLOBSERVER)),
)


def by_name(name: str) -> OciHypothesis:
    """The hypothesis called `name` (KeyError naming the ones there are)."""
    for h in HYPOTHESES:
        if h.name == name:
            return h
    raise KeyError(f"no OCI hypothesis {name!r}; there are: {', '.join(h.name for h in HYPOTHESES)}")


def table(hypotheses=HYPOTHESES) -> pd.DataFrame:
    """The hypotheses as a reader meets them: what each explains, its settings, its fix, where it comes from."""
    return pd.DataFrame([{
        "hypothesis": h.name, "explains": h.explains, "base": h.base, "settings": ", ".join(h.overrides) or "as shipped",
        "fix": ", ".join(h.fix) or "-", "fix_text": h.fix_text, "issues": ", ".join(map(str, h.issues)),
        "code": "; ".join(map(str, h.code)), "honest": h.honest or "as the issues report it",
        "measured": "no: " + h.unmeasurable if h.unmeasurable else "yes"} for h in hypotheses])


# --- the rule ------------------------------------------------------------------------------------------------

def _rate(rows: pd.DataFrame) -> Rate | None:
    return Rate.of_runs(rows.MBps) if len(rows) else None


def judge_one(as_is: pd.DataFrame, fixed: pd.DataFrame) -> dict:
    """One hypothesis at one pull count: its runs and its fix's (columns MBps, failures), and the word for them."""
    a, f = _rate(as_is), _rate(fixed)
    fail_a, fail_f = int(as_is.failures.sum()), int(fixed.failures.sum())
    if a is None or f is None:
        word = "not measured"
    elif fail_a and not fail_f:
        word = "binds: its pulls fail, the fix's do not"
    elif above(f, a):
        word = f"binds: the fix is {f.median / a.median:.1f}x faster" if a.median > 0 else "binds"
    elif above(a, f):
        word = "the fix is slower"
    else:
        word = "does not bind here (within noise)"
    return {"MBps": a.median if a else None, "MBps_lo": a.lo if a else None, "MBps_hi": a.hi if a else None,
            "fix_MBps": f.median if f else None, "fix_lo": f.lo if f else None, "fix_hi": f.hi if f else None,
            "failures": fail_a, "fix_failures": fail_f, "binds": word.startswith("binds"), "judged": word}


def judge(runs: pd.DataFrame, hypotheses=HYPOTHESES) -> pd.DataFrame:
    """Runs (hypothesis, variant "as is" | "fixed", parallel, round, MBps, failures) -> one row per hypothesis and
    pull count, judged; an unmeasurable hypothesis is one row saying why."""
    out = []
    for h in hypotheses:
        if h.unmeasurable:
            out.append({"hypothesis": h.name, "parallel": None, "binds": False, "judged": "not measurable here",
                        "cited": h.cited})
            continue
        mine = runs[runs.hypothesis == h.name]
        for n in sorted(mine.parallel.unique()):
            at = mine[mine.parallel == n]
            out.append({"hypothesis": h.name, "parallel": int(n),
                        **judge_one(at[at.variant == "as is"], at[at.variant == "fixed"]), "cited": h.cited})
    return pd.DataFrame(out)


def binding(judged: pd.DataFrame) -> list[str]:
    """The hypotheses that bind at some pull count, the largest gain first."""
    b = judged[judged.binds].copy()
    if b.empty:
        return []
    b["gain"] = b.fix_MBps / b.MBps.where(b.MBps > 0)
    return list(dict.fromkeys(b.sort_values("gain", ascending=False, na_position="first").hypothesis))


DEPLOYABLE = ("nginx.", "tls.", "publish.", "registry.")   # settings a bundle carries (not the lab's conditions)


def fix_for(judged: pd.DataFrame, base: LabSettings, hypotheses=HYPOTHESES) -> tuple[LabSettings, list[str]]:
    """`base` with the fix of every hypothesis that binds, where its fix is a setting a deployment carries
    (nginx, TLS, Docker's publishing, the registry); the fixes of the machine's conditions (a disk, the client)
    are left to the operator and said. Returns the settings and one line per hypothesis that binds."""
    binds = set(binding(judged))
    changes, lines = [], []
    for h in hypotheses:
        if h.name not in binds:
            continue
        mine = [o for o in h.fix if o.startswith(DEPLOYABLE)]
        new = [o for o in mine if apply_overrides(base, [o]) != base]
        changes += new
        lines.append(f"{h.name}: " + (f"bundled ({', '.join(new)})" if new else
                                      f"already so in these settings ({', '.join(mine)})" if mine else
                                      f"not a setting to deploy: {h.fix_text}"))
    return apply_overrides(base, changes), lines
