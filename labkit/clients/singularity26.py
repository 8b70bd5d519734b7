"""Kind `singularity-2.6`: Singularity 2.6.1's shub:// pull (the program: labkit.clients.singularity26_pull).

The manifest, then the image in 1 MiB reads into a temporary file renamed to
<collection>-<name>-<tag>.simg in its pull folder (its own directory); https verified against the lab's
CA when the path has TLS ({cacert}), else plain http (SINGULARITY_NOHTTPS).
"""
from __future__ import annotations

import sys
from pathlib import Path

from .program import Program, with_labkit

PROGRAM = "labkit.clients.singularity26_pull"


class Singularity26(Program):
    name = "singularity-2.6"

    def argv(self, values: dict[str, str]) -> list[str]:
        ca = values.get("cacert")
        return [sys.executable, "-m", PROGRAM, f"{values['host']}:{values['port']}", values["uri"],
                *(["--cafile", ca] if ca else ["--http"])]

    def env(self, values: dict[str, str], workdir: Path, secrets: Path) -> dict[str, str]:
        """Its pull folder is its own directory (pull.exec's order: SINGULARITY_CACHEDIR first, so unset)."""
        env = with_labkit(super().env(values, workdir, secrets))
        env.pop("SINGULARITY_CACHEDIR", None)
        env["SINGULARITY_PULLFOLDER"] = str(workdir)
        return env
