"""The bundle's files for an OCI registry (registry.kind "distribution"): nginx in front of distribution, laid out
as distribution's own nginx recipe deploys them (distribution/distribution @0d6b721dc3ceacb5d678c25b718b2f40a507c2d8
docs/content/recipes/nginx.md, step 5's docker-compose.yml: services `nginx` and `registry`, nginx's files mounted
at /etc/nginx/nginx.conf and /etc/nginx/conf.d, `upstream docker-registry { server registry:5000; }`).

    nginx.conf                     the server block (/v2/ proxied to registry:5000), mounted as conf.d/default.conf
    nginx/nginx.conf               main config: workers, buffers, timeouts
    config.yml                     the registry's (the registry image reads /etc/docker/registry/config.yml:
                                   distribution v2.8.2 Dockerfile `CMD ["serve", "/etc/docker/registry/config.yml"]`),
                                   its filesystem root /var/lib/registry and `addr: :5000` as v2.8.2's
                                   cmd/registry/config-example.yml has them
    sysctl.d/60-servelab-tcp.conf  the VM's TCP settings
    docker-compose.override.yml    mounts the files above; ulimits; TCP sysctls; cpus/cpuset of nginx and registry

Checked before it is written (labkit.experiments.bundles): `nginx -t` as the nginx container mounts them, and the
registry itself started on config.yml, answering GET /v2/ with 200.
"""
from __future__ import annotations

from ..config.render import OCI_FRONT, NginxPaths, RegistryPaths, render_nginx, render_nginx_server, \
    render_registry_config, templates
from ..config.settings import LabSettings

REGISTRY_HOST, REGISTRY_PORT = "registry", 5000
CONFIG_YML = "config.yml"
DEPLOY_OCI_NGINX = NginxPaths(listen="*:80", uwsgi_upstream="", images_dir="/var/www/images",
                              pid="/var/run/nginx.pid", error_log="/var/log/nginx/error.log",
                              access_log="/var/log/nginx/access.log", user="nginx",
                              server_include="/etc/nginx/conf.d/*.conf",
                              proxy_pass=f"http://{REGISTRY_HOST}:{REGISTRY_PORT}", server_template=OCI_FRONT)
DEPLOY_REGISTRY = RegistryPaths(f":{REGISTRY_PORT}", "/var/lib/registry")


def config_files(s: LabSettings) -> dict[str, str]:
    """The configs a bundle for `s` holds, rendered as deployed (what import_bundle reads back and compares)."""
    return {"nginx.conf": render_nginx_server(s, DEPLOY_OCI_NGINX), "nginx/nginx.conf": render_nginx(s, DEPLOY_OCI_NGINX),
            CONFIG_YML: render_registry_config(s, DEPLOY_REGISTRY)}


def compose_override(s: LabSettings, nofile: int, sysctls: dict[str, str]) -> str:
    """docker-compose.override.yml for the recipe's two services (the template's empty macro lines dropped)."""
    text = templates().get_template("compose-oci-override.yml.j2").render(nofile=nofile, sysctls=sysctls, cpu=s.cpu,
                                                                         tls=s.tls, config=CONFIG_YML)
    return "\n".join(line for line in text.splitlines() if line.strip()) + "\n"
