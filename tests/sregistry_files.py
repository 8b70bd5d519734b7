"""sregistry's files at 0d1274df as the importer reads them (each line at its number), the seed poster's
changes on them, and a writer that lays them out as sregistry's checkout: shared by the unit and
integration tests of `labkit import`."""
from labkit.config.importer import SregistryFiles
from labkit.config.presets import PRESETS


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
