"""Bundles written only once the real programs accept them: labkit.bundle renders and writes, the checks
(`nginx -t` in sregistry's container layout, uwsgi's strict parser; for an OCI registry `nginx -t` in the
nginx recipe's layout and the registry started on its config.yml) come from the lab, handed in here."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from ..bundle import export as _export
from ..bundle import oci as _oci
from ..config.settings import LabSettings
from ..lab.programs.checks import nginx_t_deployed, registry_check, uwsgi_check


def check_bundle(stage: Path, s: LabSettings) -> None:
    """nginx -t on the exported nginx files as they sit in the container; then uwsgi --strict on uwsgi.ini, or
    (an OCI registry) the registry started on config.yml, answering GET /v2/."""
    if s.registry.kind == "distribution":
        nginx_t_deployed(stage / "nginx/nginx.conf", stage / "nginx.conf", upstream_host=_oci.REGISTRY_HOST,
                         tls=_oci.DEPLOY_OCI_NGINX if s.tls.enabled else None)
        registry_check(stage / _oci.CONFIG_YML, _oci.REGISTRY_PORT)
        return
    nginx_t_deployed(stage / "nginx/nginx.conf", stage / "nginx.conf",
                     tls=_export.DEPLOY_NGINX if s.tls.enabled else None)
    uwsgi_check(stage / "uwsgi.ini", expect_processes=s.uwsgi.processes)


export_bundle = partial(_export.export_bundle, check=check_bundle)
export_bundle.__doc__ = _export.export_bundle.__doc__
