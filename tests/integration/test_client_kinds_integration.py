"""The ranged curl kind through a real lab (root; -s shows the numbers): with nginx serving the file
(nginx-alias) each pull is 10 connections at once, each its own byte range, the file whole and its
sha256 the manifest's; with Django's FileResponse (no Range support) the probe's 200 is said and the
pull takes one connection, still verified."""
from __future__ import annotations

import pytest

from labkit.clients.command import EXAMPLE
from labkit.clients.kinds import KINDS
from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.units import parse_size

pytestmark = pytest.mark.integration
S = SREGISTRY_SHIPPED.changed(client={"kind": "curl-ranged"})


@pytest.fixture(scope="module")
def lab():
    with Lab("ly-ranged", settings=S, image_size=parse_size("64MiB"), quiet=True) as lab:
        yield lab


def _sockets(run) -> int:
    """The most sockets one declared connection's receiving side was seen with carrying an image's worth
(sampled every 20 ms: a range that starts and ends between two samples is not seen)."""
    return max((row["sockets"] for row in run.tcp if row["side"] == "receiver"), default=0)


@pytest.mark.parametrize("mode,ranged", [("nginx-alias", True), ("fileresponse", False)])
def test_the_ranged_curl_pulls_over_its_connections_where_the_server_takes_ranges(lab, mode, ranged):
    lab.apply(S.changed(app={"serve_mode": mode}))
    runs = [pull_at(lab, tcp=True) for _ in range(2)]
    for run in runs:
        print(f"\nmeasured: curl-ranged, {mode}: {run.mbps:.0f} MB/s, {_sockets(run)} connections, "
              f"client CPU {run.results[0].cpu_s:.2f} s", flush=True)
        assert run.ok and run.client == "curl-ranged" and run.results[0].sha256_ok, run.errors
        n = _sockets(run)
        assert (1 < n <= KINDS["curl-ranged"].connections) if ranged else n == 1
        assert run.results[0].cpu_s > 0                   # the driver's and its curls' rusage, counted


def test_every_kind_in_the_table_pulls_through_the_whole_path(lab):
    for name, cls in ((n, k) for n, k in KINDS.items() if "sregistry" in k.apis):   # the OCI kinds: test_oci_clients
        extra = {"command": EXAMPLE} if name == "command" else {}
        lab.apply(S.changed(client={"kind": name, **extra}))
        run = pull_at(lab)
        print(f"\nmeasured: {name}: {run.mbps:.0f} MB/s", flush=True)
        assert run.ok and run.client == name and run.results[0].sha256_ok, run.errors
