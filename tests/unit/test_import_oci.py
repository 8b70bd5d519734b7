"""labkit.config.import_oci: distribution's config.yml, harbor.yml and Harbor's nginx.conf, every directive named."""
import crossplane
import pytest

from labkit.config.directives import Ledger
from labkit.config.import_oci import read_distribution, read_harbor, read_harbor_nginx
from labkit.config.settings import LabSettings

# distribution's cmd/registry/config-example.yml at v2.8.2, its keys (the values this test's)
DISTRIBUTION = """version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  redirect:
    disable: false
http:
  addr: :5000
  tls:
    certificate: /certs/domain.crt
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/registry
"""


def entries(led):
    return {e.directive: e for e in led.entries}


def test_distribution_every_key_named():
    led = Ledger()
    read_distribution(DISTRIBUTION, "config.yml", led)
    got = entries(led)
    assert not led.problems and all(e.status == "ignored" for e in led.entries)
    assert set(got) == {"version", "log.fields.service", "storage.cache.blobdescriptor", "storage.filesystem.rootdirectory",
                        "storage.redirect.disable", "http.addr", "http.tls.certificate", "auth.htpasswd.realm",
                        "auth.htpasswd.path"}
    assert got["http.tls.certificate"].line == 15 and "Go process" in got["http.tls.certificate"].note
    assert "redirected" in got["storage.redirect.disable"].note and "--user" in got["auth.htpasswd.path"].note


def test_distribution_bad_files():
    led = Ledger()
    read_distribution("version: 0.1\nstorrage:\n  filesystem: {}\n", "config.yml", led)
    assert led.problems == ["config.yml:3: storrage.filesystem: not a key of distribution's configuration "
                            "(configuration.go at v2.8.2 has version, log, loglevel, storage, auth, middleware, "
                            "reporting, http, notifications, redis, health, catalog, proxy, compatibility, "
                            "validation, policy)"]
    led = Ledger()
    read_distribution("http: [\n", "config.yml", led)
    assert led.problems and led.problems[0].startswith("config.yml:") and "not YAML" in led.problems[0]


def test_harbor_yml():
    led = Ledger()
    read_harbor("hostname: reg.example.org\nhttp:\n  port: 80\nhttps:\n  port: 8443\n  certificate: /c.pem\n"
                "  private_key: /k.pem\ntrivy:\n  skip_update: false\n", "harbor.yml", led)
    s = led.settings(LabSettings())
    assert s.publish.host_port == 8443 and s.tls.enabled and not led.problems
    got = entries(led)
    assert got["http.port"].status == "ignored" and got["trivy.skip_update"].status == "ignored"
    led = Ledger()
    read_harbor("http:\n  port: eighty\n", "harbor.yml", led)
    assert led.problems == ["harbor.yml:2: http.port: 'eighty' is not a port number"]


def test_harbors_nginx_conf(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("""worker_processes auto;
events { worker_connections 3096; use epoll; }
http {
  upstream core { server core:8080; }
  map $http_x_forwarded_proto $x_forwarded_proto { default $http_x_forwarded_proto; "" $scheme; }
  access_log off;
  server {
    listen 8443 ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    location /v2/ { proxy_pass http://core/v2/; proxy_buffering off; }
  }
}
""")
    stmts = crossplane.parse(str(conf), single=True, comments=False, check_ctx=False, check_args=False)["config"][0]["parsed"]
    led = Ledger()
    read_harbor_nginx(stmts, "nginx.conf", led)
    s = led.settings(LabSettings())
    assert (s.nginx.worker_processes, s.nginx.worker_connections, s.nginx.access_log) == ("auto", 3096, False)
    assert s.tls.enabled and s.tls.protocols == "TLSv1.2 TLSv1.3" and s.tls.prefer_server_ciphers
    ignored = {e.directive: e.note for e in led.entries if e.status == "ignored"}
    assert {"upstream", "map", "proxy_pass", "proxy_buffering", "location", "use"} <= set(ignored)
    assert "default" not in ignored                       # a map's table is not read as directives
    assert "uwsgi" in ignored["proxy_pass"]


@pytest.mark.parametrize("bad", ["worker_connections 3;", "ssl_protocols SSLv2;"])
def test_bad_nginx_values_named(tmp_path, bad):
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{ {bad if bad.startswith('worker') else ''} }}\nhttp {{ {bad if bad.startswith('ssl') else ''} }}\n")
    stmts = crossplane.parse(str(conf), single=True, comments=False, check_ctx=False, check_args=False)["config"][0]["parsed"]
    led = Ledger()
    read_harbor_nginx(stmts, "nginx.conf", led)
    assert led.settings(LabSettings()) is None and led.problems[0].startswith("nginx.conf:")
