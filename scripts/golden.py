"""Rewrite tests/golden/ from the templates (after an intended change to a template or preset)."""
from dataclasses import replace
from pathlib import Path

from labkit.bundle.export import DEPLOY_NGINX, DEPLOY_UWSGI
from labkit.config.render import (OCI_FRONT, RegistryPaths, render_nginx, render_nginx_server,
                                  render_registry_config, render_uwsgi)
from labkit.config.presets import PRESETS

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


# an OCI registry's front (registry.kind "distribution"): /v2/ proxied to the registry's container, as the
# recipe's `upstream docker-registry { server registry:5000; }`; its config.yml where the image keeps it
DEPLOY_OCI_FRONT = replace(DEPLOY_NGINX, server_template=OCI_FRONT, proxy_pass="http://registry:5000", uwsgi_upstream="")
DEPLOY_REGISTRY = RegistryPaths(":5000", "/var/lib/registry")


def rendered() -> dict[str, str]:
    out = {}
    for name, s in PRESETS.items():
        if s.registry.kind == "distribution":
            out[f"{name}.nginx.conf"] = render_nginx(s, DEPLOY_OCI_FRONT)
            out[f"{name}.server.conf"] = render_nginx_server(s, DEPLOY_OCI_FRONT)
            out[f"{name}.config.yml"] = render_registry_config(s, DEPLOY_REGISTRY)
            continue
        out[f"{name}.nginx.conf"] = render_nginx(s, DEPLOY_NGINX)
        out[f"{name}.server.conf"] = render_nginx_server(s, DEPLOY_NGINX)
        out[f"{name}.uwsgi.ini"] = render_uwsgi(s, DEPLOY_UWSGI)
    return out


if __name__ == "__main__":
    for name, text in rendered().items():
        (GOLDEN / name).write_text(text)
        print("wrote", GOLDEN / name)
