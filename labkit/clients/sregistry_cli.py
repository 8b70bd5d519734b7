"""Kind `sregistry-cli`: `sregistry pull {uri}` with its `registry` client (PyPI sregistry 0.2.39).

It asks the manifest itself and downloads the manifest's `image` URL in 1 MiB chunks into a temp file
in SREGISTRY_TMPDIR, then moves it to ./<collection>-<name>:<tag>.sif.
"""
from __future__ import annotations

from pathlib import Path

from .program import Program


class SregistryCli(Program):
    name = "sregistry-cli"

    def argv(self, values: dict[str, str]) -> list[str]:
        return ["sregistry", "pull", values["uri"]]

    def env(self, values: dict[str, str], workdir: Path, secrets: Path) -> dict[str, str]:
        """Its registry client pointed at the lab, writing in `workdir`."""
        env = super().env(values, workdir, secrets)
        tls = bool(values.get("cacert"))
        env.update(SREGISTRY_CLIENT="registry",
                   SREGISTRY_REGISTRY_BASE=f"{'https' if tls else 'http'}://{values['host']}:{values['port']}",
                   SREGISTRY_CLIENT_SECRETS=str(secrets), SREGISTRY_TMPDIR=str(workdir), SREGISTRY_DISABLE="1")
        if tls:      # sregistry-cli's requests verifies against REQUESTS_CA_BUNDLE
            env["REQUESTS_CA_BUNDLE"] = values["cacert"]
        else:
            env["SREGISTRY_REGISTRY_NOHTTPS"] = "1"
        return env
