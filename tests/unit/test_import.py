"""`labkit import`: an operator's sregistry files into settings, every directive accounted for, bad files refused.

The files are written here from facts, not copied: sregistry's at 0d1274df (2018-10) from the
directive tables of notes/upstream-facts.md §1.2-1.5, each directive on the line the table gives
it, and the seed poster's as the seed (shared/seed/sregistry-serving-performance.txt) states his
changes. They must give exactly the presets pinned to the same sources.
"""
import json

import pytest

from labkit.bundle.export import DEPLOY_NGINX, DEPLOY_UWSGI, daemon_json, kernel_sysctls
from labkit.cli import main
from labkit.config.importer import ImportRejected, import_files
from labkit.config.import_nginx import match_location, nginx_seconds
from labkit.config.import_uwsgi import ini_lines
from labkit.config.nginx_tree import Item
from labkit.config.directives import Origin
from labkit.config.overrides import apply_overrides, load_settings
from labkit.config.presets import PRESETS
from labkit.config.render import render_nginx, render_nginx_server, render_uwsgi, templates
from labkit.config.settings import LabSettings

from ..sregistry_files import (FILES_2018_10, MAIN_2018_10, SERVER_2018_10,
                               UWSGI_2018_10, UWSGI_PARAMS, https, placed, seed_poster, write)


# --- the two operators' files give exactly their presets ------------------------------
@pytest.mark.parametrize("files,preset", [(FILES_2018_10, "sregistry-2018-10"),
                                          (seed_poster(FILES_2018_10), "seed-poster"),
                                          (https(FILES_2018_10), "sregistry-2018-10-https"),
                                          (https(seed_poster(FILES_2018_10)), "seed-poster-https")])
def test_sregistrys_and_the_seed_posters_files_give_their_presets(tmp_path, files, preset):
    r = import_files(write(tmp_path, files))
    want = PRESETS[preset]
    for group in LabSettings.model_fields:
        assert getattr(r.settings, group) == getattr(want, group), group
    assert r.settings == want


def test_every_directive_of_the_files_is_listed_modelled_or_ignored_at_its_line(tmp_path):
    r = import_files(write(tmp_path, FILES_2018_10))
    at = {(e.file, e.line): e for e in r.entries}
    for name in ("uwsgi.ini", "nginx.conf", "nginx/nginx.conf"):
        directive_lines = {n for n, text in FILES_2018_10[name].items()
                           if text.strip() and not text.strip().startswith(("#", "}", "'", "["))}
        assert {n for f, n in at if f == name} == directive_lines, name
    assert at["uwsgi.ini", 7].note == "uwsgi.post_buffering = 'true' (uwsgi reads it as 0: off)"
    assert at["nginx.conf", 23].setting == "nginx.uwsgi_max_temp_file_size"
    assert at["nginx/nginx.conf", 30].status == "modelled" and "nginx.conf" in at["nginx/nginx.conf", 30].note
    assert all(at["nginx.conf", n].setting == "nginx.cors_headers" for n in range(9, 15))
    uploads = [e for e in r.ignored if e.directive.startswith("upload_")]
    assert len(uploads) == 14 and all("nginx-upload-module" in e.note for e in uploads)
    assert at["nginx.conf", 27].status == "ignored" and "location /static" in at["nginx.conf", 27].note
    assert at["docker-compose.yml", 19].setting == "publish.host_port"
    assert at["docker-compose.yml", 1].status == "ignored"            # the database: off the pull's path
    assert {e.file for e in r.entries} == {"uwsgi.ini", "nginx.conf", "nginx/nginx.conf", "docker-compose.yml",
                                           "uwsgi_params.par"}
    assert all(e.note for e in r.entries)


def test_the_settings_file_feeds_load_settings_and_set(tmp_path, capsys):
    write(tmp_path / "in", FILES_2018_10)
    out = tmp_path / "mine.json"
    assert main(["import", str(tmp_path / "in"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "modelled (" in printed and "ignored (" in printed and str(out) in printed
    s = apply_overrides(load_settings(out), ["links.wan=6gbit", "uwsgi.processes=8"])
    assert s.links.wan == "6gbit" and s.uwsgi.processes == 8 and s.nginx == PRESETS["sregistry-2018-10"].nginx
    doc = json.loads(out.read_text())
    assert set(doc) == {"settings", "imported_from", "directives", "assumed"}


# every knob the bundle's files can carry, off its default
EVERYTHING = PRESETS["recommended"].changed(
    nginx={"tcp_nopush": True, "sendfile_max_chunk": "512k", "output_buffers": {"number": 4, "size": "64k"},
           "directio": "4m", "uwsgi_buffering": False, "uwsgi_buffer_size": "16k",
           "uwsgi_buffers": {"number": 8, "size": "16k"}, "keepalive_timeout": 30, "worker_processes": "auto"},
    uwsgi={"harakiri": 600, "offload_threads": 2, "buffer_size": 32768, "post_buffering": 65536},
    app={"serve_mode": "fileresponse-iter"},
    kernel={"tcp_rmem": (4096, 131072, 6291456), "tcp_wmem": (4096, 65536, 8388608), "congestion_control": "bbr"},
    cpu={"nginx_cpus": 1.5, "uwsgi_cpus": 0.5, "nginx_cpuset": "0-1", "uwsgi_cpuset": "1"})


# the bundle is sregistry's (an OCI registry's bundle is issue 27's item 3, not built yet)
@pytest.mark.parametrize("name", [*(n for n, s in PRESETS.items() if s.registry.kind == "sregistry"), "everything"])
def test_each_preset_exported_as_a_bundle_imports_back_to_itself(tmp_path, name):
    s = PRESETS.get(name, EVERYTHING)
    override = templates().get_template("compose-override.yml.j2").render(nofile=65536, sysctls=kernel_sysctls(s),
                                                                          cpu=s.cpu)
    files = {"nginx.conf": render_nginx_server(s, DEPLOY_NGINX), "nginx/nginx.conf": render_nginx(s, DEPLOY_NGINX),
             "uwsgi.ini": render_uwsgi(s, DEPLOY_UWSGI), "uwsgi_params.par": placed(UWSGI_PARAMS),
             "docker-compose.yml": override}
    if daemon := daemon_json(s):
        files["daemon.json"] = json.dumps(daemon)
    assert import_files(write(tmp_path, files)).settings == s


def test_compose_cpu_limits_ports_sysctls_and_daemon_json(tmp_path):
    compose = {1: "services:", 2: "  nginx:", 3: "    image: nginx", 4: "    cpus: 1.5", 5: "    cpuset: '0-1'",
               6: "    ports:", 7: "      - 0.0.0.0:8080:80", 8: "      - '443:443'", 9: "    volumes:",
               10: "      - ./nginx.conf:/etc/nginx/conf.d/default.conf:ro",
               11: "      - ./uwsgi_params.par:/etc/nginx/uwsgi_params.par:ro",
               12: "    sysctls:", 13: "      net.ipv4.tcp_wmem: 4096 65536 8388608", 14: "  uwsgi:",
               15: "    image: vanessa/sregistry", 16: "    cpu_quota: 50000", 17: "    cpu_period: 100000",
               18: "version: '3'"}
    files = dict(FILES_2018_10, **{"docker-compose.yml": compose,
                                   "daemon.json": '{\n  "log-driver": "json-file",\n  "userland-proxy": false\n}\n'})
    r = import_files(write(tmp_path, files))
    c = r.settings
    assert (c.cpu.nginx_cpus, c.cpu.nginx_cpuset, c.cpu.uwsgi_cpus) == (1.5, "0-1", 0.5)
    assert c.publish.host_port == 8080 and (c.publish.iptables, c.publish.userland_proxy) == (True, False)
    assert c.kernel.tcp_wmem == (4096, 65536, 8388608)
    at = {(e.file, e.line): e for e in r.entries}
    assert at["daemon.json", 3].setting == "publish.userland_proxy" and at["daemon.json", 2].status == "ignored"
    assert at["docker-compose.yml", 8].status == "ignored"        # 443: not the port pulls arrive on


# --- bad files: every one refused with file:line and the directive, nothing written ------
BAD = [
    # (file, replacement lines, expected message)
    ("nginx/nginx.conf", {9: "    worker_connections  1024"},
     'nginx/nginx.conf:9: worker_connections: directive "worker_connections" is not terminated by ";"'),
    ("nginx/nginx.conf", {2: "worker_processess 4;"}, 'nginx/nginx.conf:2: worker_processess: unknown directive'),
    ("nginx/nginx.conf", {9: "    worker_connections  8;"},
     "nginx/nginx.conf:9: worker_connections: nginx.worker_connections: Input should be greater than or equal to 16"),
    ("nginx/nginx.conf", {2: "worker_processes  300;"}, "nginx/nginx.conf:2: worker_processes: nginx.worker_processes"),
    ("nginx/nginx.conf", {23: "    sendfile maybe;"}, 'nginx/nginx.conf:23: sendfile: invalid value "maybe"'),
    ("nginx/nginx.conf", {30: "    include /etc/nginx/sites-enabled/registry;"},
     "nginx/nginx.conf:30: include: include /etc/nginx/sites-enabled/registry: no such file"),
    ("nginx/nginx.conf", {26: "    keepalive_timeout  soon;"}, "nginx/nginx.conf:26: keepalive_timeout: 'soon' is not an nginx time"),
    ("nginx/nginx.conf", {24: "    sendfile off;"}, 'nginx/nginx.conf:24: sendfile: "sendfile" directive is duplicate (first at nginx/nginx.conf:23)'),
    ("nginx.conf", {23: "    uwsgi_max_temp_file_size 10024q;"}, "nginx.conf:23: uwsgi_max_temp_file_size: nginx.uwsgi_max_temp_file_size"),
    ("nginx.conf", {22: "    uwsgi_pass uwsgi:3031 extra;"}, 'nginx.conf:22: uwsgi_pass: invalid number of arguments'),
    ("nginx.conf", {3: "  worker_processes 2;"}, 'nginx.conf:3: worker_processes: "worker_processes" directive is not allowed here'),
    ("nginx.conf", {23: "    uwsgi_buffers 2 4k;"}, "nginx.conf:23: uwsgi_buffers: nginx.uwsgi_buffers: 2 4k is too small"),
    ("uwsgi.ini", {3: "proceses = 128"}, "uwsgi.ini:3: proceses: not a uwsgi option"),
    ("uwsgi.ini", {3: "processes = 0"}, "uwsgi.ini:3: processes: uwsgi.processes: Input should be greater than or equal to 1"),
    ("uwsgi.ini", {4: "threads = four"}, "uwsgi.ini:4: threads: 'four' is not a whole number"),
    ("uwsgi.ini", {1: "[uwsgi-old]"}, "uwsgi.ini:1: no [uwsgi] section"),
    ("docker-compose.yml", {17: "\timage: vanessa/sregistry_nginx"}, "docker-compose.yml:17: not YAML"),
    ("docker-compose.yml", {16: "  cpuss: 2"}, "docker-compose.yml:16: nginx.cpuss: service nginx: not a compose service key"),
    ("docker-compose.yml", {16: "  cpus: 2000"}, "docker-compose.yml:16: nginx.cpus: cpu.nginx_cpus: Input should be less than or equal to 1024"),
    ("docker-compose.yml", {19: '    - "80"'}, "docker-compose.yml:19: nginx.ports: '80': nginx's port is published on a random host port"),
    ("daemon.json", '{\n  "userland-proxy": "no"\n}\n', "daemon.json:2: userland-proxy: 'no': must be true or false"),
    ("daemon.json", '{\n  "userland-proxi": false\n}\n', "daemon.json:2: userland-proxi: not a dockerd option"),
    ("daemon.json", '{\n  "userland-proxy": false,\n}\n', "daemon.json:3: not JSON"),
]


@pytest.mark.parametrize("name,change,message", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_a_bad_file_is_refused_naming_file_line_and_directive(tmp_path, name, change, message, capsys):
    files = dict(FILES_2018_10)
    files[name] = change if isinstance(change, str) else {**files[name], **change}
    with pytest.raises(ImportRejected) as exc:
        import_files(write(tmp_path / "in", files))
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems
    out = tmp_path / "never.json"
    assert main(["import", str(tmp_path / "in"), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_a_missing_mounted_include_names_where_it_was_looked_for(tmp_path):
    files = {k: v for k, v in FILES_2018_10.items() if k != "uwsgi_params.par"}
    with pytest.raises(ImportRejected, match=r"uwsgi_params.par:1: no such file"):
        import_files(write(tmp_path, files))


def test_without_compose_sregistrys_own_mounts_are_assumed_and_program_defaults_fill_gaps(tmp_path):
    main_conf = {k: v for k, v in MAIN_2018_10.items() if k not in (9, 23, 26)}   # no connections, sendfile, keepalive
    uwsgi = {k: v for k, v in UWSGI_2018_10.items() if k != 9}                     # no max-requests
    files = {"nginx/nginx.conf": main_conf, "nginx.conf": SERVER_2018_10, "uwsgi.ini": uwsgi,
             "uwsgi_params.par": UWSGI_PARAMS}
    r = import_files(write(tmp_path, files))
    n = r.settings.nginx
    assert (n.worker_connections, n.sendfile, n.keepalive_timeout) == (512, False, 75)
    assert r.settings.uwsgi.max_requests == 0
    assert any(a.startswith("nginx.worker_connections = 512") for a in r.assumed)


# --- the readers' rules, on their own ----------------------------------------------
def test_uwsgi_ini_rules_sections_flags_repeats_and_strtoul(tmp_path):
    ini = ("[other]\nprocesses = 9\n[uwsgi]\nmaster\nprocesses = 2\nworkers = 6\npost-buffering = 64k\n"
           "ignore-sigpipe = no\nlog-date = %%Y\nwsgi-disable-file-wrapper = true\nlisten = 1024\n")
    assert ini_lines(ini)[1] == (4, "uwsgi", "master", "")
    files = dict(FILES_2018_10, **{"uwsgi.ini": ini})
    r = import_files(write(tmp_path, files))
    u = r.settings.uwsgi
    assert (u.processes, u.post_buffering, u.ignore_sigpipe, u.log_date) == (6, 64, False, True)
    assert r.settings.app.serve_mode == "fileresponse-iter"
    at = {(e.file, e.line): e for e in r.entries}
    assert at["uwsgi.ini", 2].status == "ignored" and "[other]" in at["uwsgi.ini", 2].note
    assert at["uwsgi.ini", 5].note == "overridden by uwsgi.ini:6 (workers)"
    assert "strtoul" in at["uwsgi.ini", 7].note and at["uwsgi.ini", 11].status == "ignored"


def _loc(*args):
    return Item(Origin("f", 1, "location"), ("http", "server"), "location", list(args), True)


def test_nginx_picks_the_location_for_the_download_as_nginx_does():
    root, images, containers = _loc("/"), _loc("/images"), _loc("/containers/")
    regex, stop = _loc("~*", r"\.(img|sif)$"), _loc("^~", "/containers/")
    uri = "/containers/1/download/secret"
    assert match_location([root, images], uri) is root
    assert match_location([root, containers], uri) is containers
    assert match_location([root, _loc("~", "/download/")], uri).args[0] == "~"
    assert match_location([stop, _loc("~", "/download/")], uri) is stop
    assert match_location([root, regex], uri) is root
    assert match_location([_loc("=", uri), root], uri).args[0] == "="
    assert [nginx_seconds(t) for t in ("65", "65s", "1m30s", "500ms", "x")] == [65, 65, 90, 0.5, None]


def test_settings_in_server_and_location_override_http_and_other_servers_do_not_count(tmp_path):
    server = dict(SERVER_2018_10)
    server |= {4: "  sendfile off;", 23: "    uwsgi_buffering off;"}
    extra = {60: "server {", 61: "  listen 8443;", 62: "  location / {", 63: "    uwsgi_pass uwsgi:3031;",
             64: "    uwsgi_buffering on;", 65: "    tcp_nopush on;", 66: "  }", 67: "}"}
    r = import_files(write(tmp_path, dict(FILES_2018_10, **{"nginx.conf": server | extra})))
    n = r.settings.nginx
    assert (n.sendfile, n.uwsgi_buffering, n.tcp_nopush, n.uwsgi_max_temp_file_size) == (False, False, False, "1024m")
    at = {(e.file, e.line): e for e in r.entries}
    assert at["nginx/nginx.conf", 23].note == "overridden by nginx.conf:4 (sendfile)"
    assert "another server block" in at["nginx.conf", 64].note


def test_https_certificate_paths_are_recorded_and_no_key_is_read(tmp_path):
    r = import_files(write(tmp_path, https(FILES_2018_10)))      # /etc/ssl/private/domain.key is not here
    notes = {(e.directive, e.value): e for e in r.modelled}
    key = notes["ssl_certificate_key", "/etc/ssl/private/domain.key"]
    assert "recorded, not read" in key.note and not (tmp_path / "etc").exists()
    assert notes["listen", "443"].setting in ("tls.enabled", "tls.port")
    assert any(e.directive == "nginx.ports" and "https port 443" in e.note for e in r.modelled)
    assert any("https server block" in e.note for e in r.ignored if e.directive == "root")
