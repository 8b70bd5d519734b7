"""Where the lab's real programs are, with a clear message when one is missing."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ...errors import ToolMissing

HINT = "run `make setup` (scripts/setup.sh) to install it"


def tool(name: str) -> str:
    """Path of a program: the virtualenv's bin (uwsgi, docker-proxy), then PATH and sbin."""
    env = os.environ.get(f"SERVELAB_{name.upper().replace('-', '_')}")
    if env:
        return env
    search = os.pathsep.join([str(Path(sys.prefix) / "bin"), os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if not found:
        raise ToolMissing(f"{name} not found: {HINT}")
    return found
