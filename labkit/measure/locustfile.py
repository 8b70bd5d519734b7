"""Pull storms on Locust: each user pulls like a Singularity client, many at once from many compute nodes.

With `--api oci` a user's task is one pull as an OCI client makes it (labkit.measure.oci_probe.oci_pull:
ping, token, manifest, config, its layers `--layers-at-once` at a time, each checked by its digest; with
`--sha256 HEX` the manifest the tag resolves to must be sha256:HEX, else the pull is a checksum failure).
Otherwise a user's task is one pull, exactly as `labkit.clients.puller.pull` makes it (the primitive
`pull_at` uses): GET `/api/container/<collection>/<name>:<tag>`, then the `image` URL the
manifest names, streamed in 1 MiB reads, checked against Content-Length and (by default)
the sha256 (`--sha256`, else the manifest's `version`). A failed pull is counted by kind
(labkit.clients.failures: connect, reset, http, short body, checksum, timeout, other).

Bounded: users and spawn rate, and `--pulls N` (the master hands out exactly N tickets,
labkit.measure.budget) or `-t/--run-time`. Every pull has an idle timeout and a deadline.
The master writes one JSON line per pull to `--records`; `labkit storm` reads them into the
tables of labkit.analyze.storm_tables.

On a cluster (labkit installed on every host; `labkit storm` builds these command lines):

    locust -f locustfile.py --master --headless --expect-workers 8 -u 40 -r 40 \\
           -H http://registry:80 --image library/ubuntu:latest --pulls 200 --records pulls.jsonl
           (an https registry: -H https://registry:443, and --cacert CA.pem unless the system's CAs sign it,
            or REQUESTS_CA_BUNDLE / SSL_CERT_FILE name it; --insecure checks nothing; --follow-hosts lets
            a pull go where the manifest's image URL or a redirect points on another host)
    LABKIT_NODE=$(hostname) locust -f locustfile.py --worker --master-host MASTER     # each compute node
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import time
from dataclasses import asdict
from urllib.parse import urlsplit

import gevent
from gevent.event import AsyncResult
from locust import User, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from labkit.clients.oci import Reference
from labkit.measure.budget import Budget
from labkit.measure.oci_probe import OciClient, oci_pull
from labkit.clients.puller import pull
from labkit.clients.registry_api import Trust
from labkit.clients.follow import Follow

log = logging.getLogger("labkit.storm")
CLAIM, TICKET, PULLED = "labkit_claim", "labkit_ticket", "labkit_pull"
START_LINE_S = 30.0                  # the first round waits at most this long for every user to ask
_waiting: dict[int, AsyncResult] = {}   # worker side: user key -> its ticket, when the master answers
_master: dict = {}                   # master side: the budget and the records file


class PullFailed(Exception):
    """A failed pull as Locust's own statistics see it (grouped by kind in its failures table)."""


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--image", default="", help="collection/name:tag to pull")
    parser.add_argument("--pulls", type=int, default=0, help="stop after this many pulls in all (0: run time only)")
    parser.add_argument("--verify", choices=["sha256", "length"], default="sha256")
    parser.add_argument("--sha256", default="", help="the image's sha256 (default: the manifest's version); "
                                                     "oci: the manifest's digest (hex) each pull must resolve to")
    parser.add_argument("--pull-timeout", type=float, default=30.0, help="idle timeout of one read, s")
    parser.add_argument("--pull-deadline", type=float, default=300.0, help="longest one pull may take, s")
    parser.add_argument("--records", default="", help="master: write one JSON line per pull here")
    parser.add_argument("--cacert", default="", help="an https registry's CA file (default: REQUESTS_CA_BUNDLE, "
                                                     "SSL_CERT_FILE, else the system's CAs)")
    parser.add_argument("--insecure", action="store_true", help="do NOT check the server's certificate")
    parser.add_argument("--follow-hosts", action="store_true",
                        help="fetch an image URL or follow a redirect that names another host")
    parser.add_argument("--api", choices=["sregistry", "oci"], default="sregistry",
                        help="oci: pull --image (repo/name:tag) from -H's /v2/ (labkit.clients.oci); credentials "
                             "from $REGISTRY_AUTH_FILE or ~/.docker/config.json on each worker")
    parser.add_argument("--platform", default="linux/amd64", help="oci: the image chosen from an index")
    parser.add_argument("--layers-at-once", type=int, default=6, help="oci: layers fetched at once per pull")
    parser.add_argument("--no-keep-alive", action="store_true",
                        help="oci: a new connection for every request of a pull (default: kept alive, as containers/image)")
    parser.add_argument("--no-start-line", action="store_true",
                        help="do not hold the first round until every user is ready")


@events.init.add_listener
def _init(environment, **_kw) -> None:
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):          # the master, or a single process
        runner.register_message(CLAIM, _on_claim)
        runner.register_message(PULLED, _on_pulled)
    if not isinstance(runner, MasterRunner):          # a worker, or a single process
        runner.register_message(TICKET, _on_ticket)


@events.test_start.add_listener
def _test_start(environment, **_kw) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    opts = environment.parsed_options
    if opts.pulls < 0 or not opts.image or not urlsplit(environment.host or "").hostname:
        log.error("--pulls %s must be >= 0, --image collection/name:tag and -H http://host:port are required",
                  opts.pulls)
        gevent.spawn_later(0, environment.runner.quit)
        return
    _master["budget"] = Budget(opts.pulls, max(1, opts.num_users or 1), start_together=not opts.no_start_line)
    if opts.records and _master.get("out") is None:
        _master["out"] = open(opts.records, "a", buffering=1)


@events.quitting.add_listener
def _quitting(environment, **_kw) -> None:
    out = _master.pop("out", None)
    if out is not None:
        out.close()


def _send(environment, grants) -> None:
    for (node, key), ticket in grants:
        environment.runner.send_message(TICKET, {"user": key, "ticket": ticket}, client_id=node)


def _on_claim(environment, msg, **_kw) -> None:
    budget: Budget = _master["budget"]
    first = not budget.started and not budget.waiting
    _send(environment, budget.claim((msg.node_id, msg.data["user"])))
    if first and not budget.started:      # the start line opens when all users asked, or after START_LINE_S
        gevent.spawn_later(START_LINE_S, lambda: _send(environment, budget.flush()))
    if budget.pulls and budget.issued == budget.pulls and not _master.get("last_call"):
        # every ticket is out: a pull ends within its deadline (+ one idle read), so a pull not reported
        # by then was lost with its worker; the storm ends and `labkit storm` counts it as missing
        opts = environment.parsed_options
        _master["last_call"] = gevent.spawn_later(opts.pull_deadline + opts.pull_timeout + 5,
                                                  environment.runner.quit)


def _on_pulled(environment, msg, **_kw) -> None:
    out = _master.get("out")
    if out is not None:
        out.write(json.dumps(msg.data) + "\n")
    if _master["budget"].finish():
        log.info("all %d pulls reported: stopping", _master["budget"].pulls)
        gevent.spawn_later(0.1, environment.runner.quit)


def _on_ticket(environment, msg, **_kw) -> None:
    waiter = _waiting.pop(msg.data["user"], None)
    if waiter is not None:
        waiter.set(msg.data["ticket"])


class SingularityPull(User):
    """One Singularity client on a compute node, pulling the image again and again while tickets last."""
    wait_time = constant(0)
    _keys = itertools.count()

    def on_start(self) -> None:
        u = urlsplit(self.host or "")
        self.addr, self.port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
        opts = self.environment.parsed_options
        self.trust = Trust.of(opts.cacert or None, opts.insecure) if u.scheme == "https" else None
        self.follow = Follow(other_hosts=opts.follow_hosts)
        self.key = next(SingularityPull._keys)
        self.node = os.environ.get("LABKIT_NODE") or socket.gethostname()
        self.oci = None
        if opts.api == "oci":          # an OCI registry: the reference is -H and --image together
            ref = Reference.parse(f"{self.host.rstrip('/')}/{opts.image}")
            self.oci = OciClient(ref, None, opts.pull_timeout, self.trust, None, opts.platform, opts.layers_at_once,
                                 keep_alive=not opts.no_keep_alive)

    def _ticket(self) -> int | None:
        res = AsyncResult()
        _waiting[self.key] = res
        self.environment.runner.send_message(CLAIM, {"user": self.key})
        try:
            return res.get(timeout=START_LINE_S + 30)
        except gevent.Timeout:
            log.error("no ticket from the master in %.0f s: this user stops", START_LINE_S + 30)
            return None
        finally:
            _waiting.pop(self.key, None)

    @task
    def pull_image(self) -> None:
        opts = self.environment.parsed_options
        ticket = self._ticket()
        if ticket is None:
            raise StopUser()
        wall_minus_perf = time.time() - time.perf_counter()
        if self.oci is not None:
            r = oci_pull(self.oci, opts.pull_deadline, opts.sha256 if opts.verify == "sha256" else "")
        else:
            r = pull(None, self.addr, self.port, opts.image, opts.sha256 or None, timeout=opts.pull_timeout,
                     deadline=opts.pull_deadline, verify=opts.verify, trust=self.trust, follow=self.follow)
        record = {**asdict(r), "MBps": r.mbps, "start": r.start + wall_minus_perf, "end": r.end + wall_minus_perf,
                  "node": self.node, "worker": getattr(self.environment.runner, "worker_index", 0),
                  "user": f"{self.node}/{self.key}", "ticket": ticket}
        self.environment.events.request.fire(
            request_type="PULL", name=opts.image, response_time=r.seconds * 1e3, response_length=r.bytes,
            exception=None if r.ok else PullFailed(r.kind), context={"node": self.node})
        self.environment.runner.send_message(PULLED, record)
