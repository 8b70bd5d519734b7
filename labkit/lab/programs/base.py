"""What every program of the path is built from: `Site` (where the lab keeps its files, how the path is
placed) and `Service` (a program the path declares, as a process with its node, port, CPU key and disk)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...config.settings import LabSettings
from ...path import Plan, ServiceSpec
from ..host.process import Process


@dataclass(frozen=True)
class Site:
    plan: Plan
    run_dir: Path
    images_dir: Path          # where nginx and uwsgi find the images (the VM's storage)
    temp_dir: Path            # nginx's temp files (the container's own file system, on the VM's storage)

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def ready_at(self, node: str, port_key: str) -> tuple[str, int]:
        return self.plan.ip(node), self.plan.port(port_key)


class Service(Process):
    """A program the path declares (a ServiceSpec): its node, port, CPU key and disk come from there."""

    def __init__(self, site: Site, spec: ServiceSpec, settings: LabSettings):
        super().__init__(spec.name, spec.node, site.plan.ns(spec.node), site.log(spec.name),
                         site.ready_at(spec.node, spec.port))
        self.site, self.spec, self.settings = site, spec, settings
        self.cpu_member, self.uses_vm_disk = spec.cpu, spec.disk == "vm"

    def file(self, suffix: str) -> Path:
        """One of its own files in the lab's run directory: `<service name><suffix>`."""
        return self.site.run_dir / f"{self.name}{suffix}"
