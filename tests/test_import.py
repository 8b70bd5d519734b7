"""`labkit import`: an operator's sregistry files into settings, every directive accounted for, bad files refused.

The files are written here from facts, not copied: sregistry's at 0d1274df (2018-10) from the
directive tables of notes/upstream-facts.md §1.2-1.5, each directive on the line the table gives
it, and the seed poster's as the seed (shared/seed/sregistry-serving-performance.txt) states his
changes. They must give exactly the presets pinned to the same sources.
"""
import json

import pytest

from labkit.bundle.export import DEPLOY_NGINX, DEPLOY_UWSGI, kernel_sysctls
from labkit.cli import main
from labkit.config.importer import ImportRejected, SregistryFiles, import_files
from labkit.config.import_nginx import match_location, nginx_seconds
from labkit.config.import_uwsgi import ini_lines
from labkit.config.nginx_tree import Item
from labkit.config.directives import Origin
from labkit.config.overrides import apply_overrides, load_settings
from labkit.config.presets import PRESETS
from labkit.config.render import render_nginx, render_nginx_server, render_uwsgi, templates
from labkit.config.settings import LabSettings


def placed(lines: dict[int, str]) -> str:
    """A file with each text on its line number (the upstream tables give them); blank lines between."""
    return "\n".join(lines.get(n, "") for n in range(1, max(lines) + 1)) + "\n"


# uwsgi.ini at 0d1274df (facts §1.2: blob 697157c3, no comments)
UWSGI_2018_10 = {1: "[uwsgi]", 2: "master = true", 3: "processes = 4", 4: "threads = 4", 5: "socket = :3031",
                 6: "chdir = /code/", 7: "post-buffering = true", 8: "log-date = true", 9: "max-requests = 5000",
                 10: "http-timeout = 3600000", 11: "socket-timeout = 120", 12: "wsgi-file = shub/wsgi.py",
                 13: "ignore-sigpipe = true", 14: "ignore-write-errors = true", 15: "disable-write-exception = true"}

# nginx.conf, the server block, at 0d1274df (facts §1.3: blob 833c2d31)
_UPLOAD = {31: "  location /upload {", 30: "  # Upload form should be submitted to this location",
           33: "    # Pass altered request body to this location", 34: "    upload_pass /api/uploads/complete/;",
           36: "    # Store files to this directory", 37: "    # The directory is hashed, subdirectories 0 1 2 3 4 5 6 7 8 9 should exist",
           38: "    upload_store /var/www/images/_upload 1;   ", 39: "    upload_store_access user:rw group:rw all:rw;",
           41: "    # Set specified fields in request body",
           42: '    upload_set_form_field $upload_field_name.name "$upload_file_name";',
           43: '    upload_set_form_field $upload_field_name.content_type "$upload_content_type";',
           44: '    upload_set_form_field $upload_field_name.path "$upload_tmp_path";',
           46: "    # Inform backend about hash and size of a file",
           47: '    upload_aggregate_form_field "$upload_field_name.md5" "$upload_file_md5";',
           48: '    upload_aggregate_form_field "$upload_field_name.size" "$upload_file_size";',
           50: '    upload_pass_form_field "^submit$|^description$";', 51: '    upload_pass_form_field "^SREGISTRY_EVENT$";',
           52: '    upload_pass_form_field "^collection$";', 53: '    upload_pass_form_field "^name$";',
           54: '    upload_pass_form_field "^tag$";', 55: "    upload_cleanup 400-599;", 56: "  }", 57: "}"}
SERVER_2018_10 = {
    1: "server {", 2: "  listen *:80;", 3: "  server_name localhost;",
    5: "  client_max_body_size 8000M;", 6: "  client_body_buffer_size 8000M;", 7: "  client_body_timeout 120;",
    9: '  add_header X-Clacks-Overhead "GNU Terry Pratchett";', 10: '  add_header X-Clacks-Overhead "GNU Terry Pratchet";',
    11: "  add_header Access-Control-Allow-Origin *;", 12: "  add_header 'Access-Control-Allow-Credentials' 'true';",
    13: "  add_header 'Access-Control-Allow-Methods' 'GET, POST, OPTIONS';",
    14: "  add_header 'Access-Control-Allow-Headers' 'Authorization,DNT,X-CustomHeader,Keep-Alive,User-Agent,"
        "X-Requested-With,If-Modified-Since,Cache-Control,Content-Type';",
    16: "  location /images {", 17: "    alias /var/www/images;", 18: "  }",
    20: "  location / {", 21: "    include /etc/nginx/uwsgi_params.par;", 22: "    uwsgi_pass uwsgi:3031;",
    23: "    uwsgi_max_temp_file_size 10024m;", 24: "  }",
    26: "  location /static {", 27: "    alias /var/www/static;", 28: "  }", **_UPLOAD}

# nginx/nginx.conf at 0d1274df (facts §1.4: blob 8f66c5c5); lines 24 and 28 are commented out
MAIN_2018_10 = {
    1: "user  nginx;", 2: "worker_processes  1;", 4: "error_log  /var/log/nginx/error.log warn;",
    5: "pid        /var/run/nginx.pid;", 8: "events {", 9: "    worker_connections  1024;", 10: "}",
    13: "http {", 14: "    include       /etc/nginx/mime.types;", 15: "    default_type  application/octet-stream;",
    17: "    log_format  main  '$remote_addr - $remote_user [$time_local] \"$request\" '",
    18: "                      '$status $body_bytes_sent \"$http_referer\" '",
    19: "                      '\"$http_user_agent\" \"$http_x_forwarded_for\"';",
    21: "    access_log  /var/log/nginx/access.log  main;", 23: "    sendfile        on;", 24: "    #tcp_nopush     on;",
    26: "    keepalive_timeout  65;", 28: "    #gzip  on;", 30: "    include /etc/nginx/conf.d/*.conf;", 31: "}"}

# docker-compose.yml at 0d1274df (facts §1.5: blob 8d140e48, compose v1: services at the top level)
COMPOSE_2018_10 = {
    1: "db:", 2: "  image: postgres",
    4: "uwsgi:", 5: "  restart: always", 6: "  image: vanessa/sregistry", 7: "  volumes:", 8: "    - .:/code",
    9: "    - ./static:/var/www/static", 10: "    - ./images:/var/www/images", 11: "  links:", 12: "    - redis",
    13: "    - db",
    15: "nginx:", 16: "  restart: always", 17: "  image: vanessa/sregistry_nginx", 18: "  ports:", 19: '    - "80:80"',
    20: "  volumes:", 21: "    - ./nginx.conf:/etc/nginx/conf.d/default.conf:ro",
    22: "    - ./uwsgi_params.par:/etc/nginx/uwsgi_params.par:ro", 23: "  volumes_from:", 24: "    - uwsgi",
    25: "  links:", 26: "    - uwsgi", 27: "    - db",
    29: "redis:", 30: "  restart: always", 31: "  image: redis:latest", 32: "  ports:", 33: '    - "6379:6379"',
    36: "worker:", 37: "  image: vanessa/sregistry", 38: "  command: celery worker -A shub.celery -Q default -n default@%h -B"}

# uwsgi_params.par (facts §1.3: 16 lines, line 1 blank, these params)
UWSGI_PARAMS = {1: ""} | {n: f"uwsgi_param  {k} {v};" for n, (k, v) in enumerate([
    ("QUERY_STRING", "$query_string"), ("REQUEST_METHOD", "$request_method"), ("CONTENT_TYPE", "$content_type"),
    ("CONTENT_LENGTH", "$content_length"), ("REQUEST_URI", "$request_uri"), ("PATH_INFO", "$document_uri"),
    ("DOCUMENT_ROOT", "$document_root"), ("SERVER_PROTOCOL", "$server_protocol"), ("HTTPS", "$https if_not_empty"),
    ("REMOTE_ADDR", "$remote_addr"), ("REMOTE_PORT", "$remote_port"), ("SERVER_PORT", "$server_port"),
    ("SERVER_NAME", "$server_name")], start=2)}


def seed_poster(files: dict[str, dict]) -> dict[str, dict]:
    """The seed's changes on 2018-10's files: uwsgi processes 128, threads 1 (the other lines he lists are
    2018-10's own); nginx worker_processes 32, access logging off, worker_connections 2048, asynchronous
    IO (he does not say which spelling; `aio threads`, as the seed-poster preset reads it), sendfile off."""
    out = {k: dict(v) for k, v in files.items()}
    out["uwsgi.ini"] |= {3: "processes = 128", 4: "threads = 1"}
    out["nginx/nginx.conf"] |= {2: "worker_processes  32;", 9: "    worker_connections  2048;",
                                21: "    access_log  off;", 23: "    sendfile        off;", 24: "    aio threads;"}
    return out


FILES_2018_10 = {"uwsgi.ini": UWSGI_2018_10, "nginx.conf": SERVER_2018_10, "nginx/nginx.conf": MAIN_2018_10,
                 "docker-compose.yml": COMPOSE_2018_10, "uwsgi_params.par": UWSGI_PARAMS}


# https/nginx.conf.https at 0d1274df (the https setup its docs recommend): the plain block, then a server on
# 443 with `ssl on`, sregistry's certificate paths, its ssl_* values and the same locations (no add_header)
_TLS_BLOCK = [
    "server {", "    listen 443;", "    server_name localhost;", "    root html;",
    "    client_max_body_size 8000M;", "    client_body_buffer_size 8000M;", "    ssl on;",
    "    ssl_certificate /etc/ssl/certs/chained.pem;", "    ssl_certificate_key /etc/ssl/private/domain.key;",
    "    ssl_session_timeout 5m;", "    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;",
    "    ssl_ciphers " + PRESETS["sregistry-2018-10-https"].tls.ciphers + ";",
    "    ssl_session_cache shared:SSL:50m;", "    ssl_dhparam /etc/ssl/certs/dhparam.pem;",
    "    ssl_prefer_server_ciphers on;",
    "    location /images {", "        alias /var/www/images;", "    }",
    "    location /static {", "        alias /var/www/static;", "    }",
    "    location / {", "        include /etc/nginx/uwsgi_params.par;", "        uwsgi_pass uwsgi:3031;",
    "        uwsgi_max_temp_file_size 10024m;", "    }", "}"]


def https(files: dict[str, dict]) -> dict[str, dict]:
    """sregistry's https setup on these files: nginx.conf.https as nginx.conf, https/docker-compose.yml's
    "443:443" and the host's /etc/ssl mounted."""
    out = {k: dict(v) for k, v in files.items()}
    last = max(out["nginx.conf"])
    out["nginx.conf"] |= {last + 2 + i: line for i, line in enumerate(_TLS_BLOCK)}
    out["docker-compose.yml"] |= {19: '    - "80:80"\n    - "443:443"',
                                  22: "    - ./uwsgi_params.par:/etc/nginx/uwsgi_params.par:ro\n"
                                      "    - /etc/ssl/certs:/etc/ssl/certs:ro\n    - /etc/ssl/private:/etc/ssl/private:ro"}
    return out


def write(tmp_path, files: dict[str, dict | str]):
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(placed(content) if isinstance(content, dict) else content)
    return SregistryFiles.in_dir(tmp_path)


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


@pytest.mark.integration
def test_survey_and_export_run_on_the_imported_seed_posters_settings(tmp_path, capsys):
    write(tmp_path / "in", seed_poster(FILES_2018_10))
    settings = tmp_path / "seed.json"
    assert main(["import", str(tmp_path / "in"), "--out", str(settings)]) == 0
    assert main(["survey", "--settings", str(settings), "--set", "links.wan=6gbit", "--name", "ip-import",
                 "--image-mib", "8", "--parallel", "2", "--iperf-seconds", "1", "--verify", "length"]) == 0
    out = capsys.readouterr().out
    assert "full path" in out and "saved" in out
    assert main(["export", "--settings", str(settings), "--set", "app.serve_mode=accel", "--out",
                 str(tmp_path / "bundles")]) == 0
    ini = (tmp_path / "bundles" / "seed" / "uwsgi.ini").read_text()
    assert "processes = 128" in ini and "aio threads;" in (tmp_path / "bundles" / "seed" / "nginx/nginx.conf").read_text()


# every knob the bundle's files can carry, off its default
EVERYTHING = PRESETS["recommended"].changed(
    nginx={"tcp_nopush": True, "sendfile_max_chunk": "512k", "output_buffers": {"number": 4, "size": "64k"},
           "directio": "4m", "uwsgi_buffering": False, "uwsgi_buffer_size": "16k",
           "uwsgi_buffers": {"number": 8, "size": "16k"}, "keepalive_timeout": 30, "worker_processes": "auto"},
    uwsgi={"harakiri": 600, "offload_threads": 2, "buffer_size": 32768, "post_buffering": 65536},
    app={"serve_mode": "fileresponse-iter"},
    kernel={"tcp_rmem": (4096, 131072, 6291456), "tcp_wmem": (4096, 65536, 8388608), "congestion_control": "bbr"},
    cpu={"nginx_cpus": 1.5, "uwsgi_cpus": 0.5, "nginx_cpuset": "0-1", "uwsgi_cpuset": "1"})


@pytest.mark.parametrize("name", [*PRESETS, "everything"])
def test_each_preset_exported_as_a_bundle_imports_back_to_itself(tmp_path, name):
    s = PRESETS.get(name, EVERYTHING)
    override = templates().get_template("compose-override.yml.j2").render(nofile=65536, sysctls=kernel_sysctls(s),
                                                                          cpu=s.cpu)
    files = {"nginx.conf": render_nginx_server(s, DEPLOY_NGINX), "nginx/nginx.conf": render_nginx(s, DEPLOY_NGINX),
             "uwsgi.ini": render_uwsgi(s, DEPLOY_UWSGI), "uwsgi_params.par": placed(UWSGI_PARAMS),
             "docker-compose.yml": override}
    if s.publish.mode == "dnat":
        files["daemon.json"] = '{"userland-proxy": false}\n'
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
    assert c.publish.host_port == 8080 and c.publish.mode == "dnat"
    assert c.kernel.tcp_wmem == (4096, 65536, 8388608)
    at = {(e.file, e.line): e for e in r.entries}
    assert at["daemon.json", 3].setting == "publish.mode" and at["daemon.json", 2].status == "ignored"
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
