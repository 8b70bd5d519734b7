"""iperf3 -s on a node: what measures each hop's capacity."""
from __future__ import annotations

from ..host.tools import tool
from .base import Service


class Iperf3Server(Service):
    def argv(self) -> list[str]:
        return [tool("iperf3"), "-s", "-p", str(self.ready_at[1])]
