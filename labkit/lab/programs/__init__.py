"""The path's programs, one class each: how each starts, shows it is ready, changes settings and stops.

    Iperf3Server   iperf3 -s on a node
    Uwsgi          uwsgi with the registry app (restarted to change settings)
    Nginx          nginx in front of its upstream (reloaded gracefully with SIGHUP)
    DockerProxy    Docker's docker-proxy for one published port (reports start-up on fd 3)
    DockerNat      Docker's published-port rules (`"iptables": true`) as one nftables table: rules, not a process
    DistributionRegistry, OciFront   an OCI registry (docker-registry 2.8) and nginx proxying /v2/ to it
                   (registry.kind "distribution"; labkit.lab.programs.distribution)

Every class is built the same way, `Class(site, spec, settings)`: `site` says where the lab keeps
its files and how the path is placed, `spec` is the path's declaration of it (a ServiceSpec; a
publisher's, the published ports it carries), `settings` the lab's settings. A service of the
path names its class in PROGRAMS (`ServiceSpec.program`); the publishers are in PUBLISHERS, keyed
by the daemon.json key that turns each on (`iptables`: DockerNat, `userland-proxy`: DockerProxy;
labkit.lab.programs.publish says what Docker does with them). A new program is a module here and a line in
one of the two tables.
"""
from __future__ import annotations

from ...config.settings import LabSettings
from ...path import Published
from .base import Service, Site
from .distribution import DistributionRegistry, OciFront
from .dnat import DockerNat, nat_counters
from .docker_proxy import DockerProxy
from .iperf3 import Iperf3Server
from .nginx import Nginx
from .uwsgi import Uwsgi

__all__ = ["PROGRAMS", "PUBLISHERS", "DistributionRegistry", "DockerNat", "DockerProxy", "Iperf3Server", "Nginx",
           "OciFront", "Service", "Site", "Uwsgi", "nat_counters", "program_problems", "publishing"]

# The program classes by the name a ServiceSpec gives (`ServiceSpec.program`), and the publishers by the
# daemon.json key that turns each on, in the order they start: the lab builds every service and
# published port from these two tables.
PROGRAMS: dict[str, type[Service]] = {"iperf3": Iperf3Server, "uwsgi": Uwsgi, "nginx": Nginx,
                                      "distribution": DistributionRegistry, "nginx-oci": OciFront}
PUBLISHERS: dict[str, type] = {"iptables": DockerNat, "userland-proxy": DockerProxy}


def publishing(site: Site, published: tuple[Published, ...], settings: LabSettings) -> list:
    """Everything Docker runs for `published` under settings.publish, in start order."""
    return [x for cls in PUBLISHERS.values() for x in cls.publishing(site, published, settings)]


def program_problems(path) -> list[str]:
    """Services of `path` whose program has no class here (one sentence each; [] when all have)."""
    return [f"service {s.name}: program {s.program!r} is not one of {', '.join(PROGRAMS)}"
            for s in path.services if s.program not in PROGRAMS]
