"""A small OCI registry the lab did not build, for tests/integration/test_foreign_oci.py.

`python foreign_oci.py MODE LAYOUT REPO [CERT KEY]` serves the OCI image layout LAYOUT (built by
oci_layout.py) as repository REPO over the distribution API's pull endpoints (opencontainers/
distribution-spec @967efdc079b91785ad18c77cc4f8991a47feefbf spec.md: end-1 /v2/, end-2 blobs, end-3
manifests; blobs answer Range requests with 206) and prints one JSON line with its addresses once it listens:

    token     every request needs a Bearer token from the token service beside it (Docker's token spec,
              distribution/distribution @0d6b721dc3ceacb5d678c25b718b2f40a507c2d8 docs/content/spec/auth/token.md):
              a 401 names realm, service and scope; the service answers `{"token", "expires_in", "issued_at"}`
              with a JWT (HS256, claims iss/sub/aud/exp/access as the spec's jwt.md lists) the registry checks:
              its signature, audience, expiry and a `pull` on the repository. Anonymous pulls get a token;
              Basic credentials, when sent, must be puller:secret. REPO `lib/broken`'s realm answers 503.
    redirect  token auth as above, and every blob answers 307 to a file server on another host
              (127.0.0.2, a pre-signed-looking URL, as object storage is used); that server refuses any
              request carrying Authorization (the spec: never across host boundaries)
    index     anonymous; the tag names an image index with several platforms
    tls       anonymous, https with the given certificate (a private CA's)
    nochallenge  answers 401 without WWW-Authenticate
    corrupt   anonymous; every layer blob has its last byte changed (its length right, its digest wrong)
    cut       anonymous; a layer blob's GET without Range (each client's first for that layer) sends its
              headers (the whole Content-Length, Accept-Ranges: bytes) and half the bytes, then closes the
              connection; a GET with Range is answered 206 (the client resumes)
    cutnorange  as cut, but Range is not supported: no Accept-Ranges, a Range ignored (200, cut as well)
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

KEY = b"servelab-test-token-key"
SERVICE = "servelab-test-registry"
USER, PASSWORD = "puller", "secret"
OTHER_HOST = "127.0.0.2"
CHUNK = 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(claims: dict) -> str:
    head = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def check_jwt(token: str, repo: str) -> str:
    """'' when the token grants a pull of `repo`, else why not."""
    try:
        head, body, sig = token.split(".")
        if not hmac.compare_digest(_unb64(sig), hmac.new(KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()):
            return "bad signature"
        c = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError):
        return "not a JWT"
    if c.get("aud") != SERVICE:
        return "wrong audience"
    if c.get("exp", 0) < time.time():
        return "expired"
    if not any(a.get("type") == "repository" and a.get("name") == repo and "pull" in a.get("actions", [])
               for a in c.get("access", [])):
        return "no pull access"
    return ""


class TokenService(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_a):
        pass

    def _json(self, status: int, doc: dict):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        u = urlsplit(self.path)
        if u.path == "/token-broken":
            return self._json(503, {"errors": [{"code": "UNAVAILABLE", "message": "token service down"}]})
        q = parse_qs(u.query)
        sub = "anonymous"
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if (name, pw) != (USER, PASSWORD):
                return self._json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            sub = name
        if q.get("service") != [SERVICE]:
            return self._json(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
        access = []
        for scope in q.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a == "pull"]})
        now = int(time.time())
        token = make_jwt({"iss": "servelab-test-issuer", "sub": sub, "aud": SERVICE, "exp": now + 300,
                          "nbf": now - 5, "iat": now, "jti": _b64(hashlib.sha256(str(time.time_ns()).encode()).digest()[:9]),
                          "access": access})
        self._json(200, {"token": token, "expires_in": 300, "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


class Registry(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *a, mode: str, layout: Path, repo: str, realm: str = "", other: str = "", **kw):
        self.mode, self.layout, self.repo, self.realm, self.other = mode, layout, repo, realm, other
        super().__init__(*a, **kw)

    def log_message(self, *_a):
        pass

    def _head(self, status: int, length: int, **headers):
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()

    def _error(self, status: int, code: str, message: str, **headers):
        data = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._head(status, len(data), Content_Type="application/json", **headers)
        self.wfile.write(data)

    def _authorized(self, path: str) -> bool:
        if self.mode == "nochallenge":
            self._head(401, 0)
            return False
        if self.mode not in ("token", "redirect"):
            return True
        auth = self.headers.get("Authorization", "")
        why = check_jwt(auth[7:], self.repo) if auth.startswith("Bearer ") else "no token"
        if not why:
            return True
        realm = self.realm + ("-broken" if self.repo == "lib/broken" else "")
        scope = f',scope="repository:{self.repo}:pull"' if path != "/v2/" else ""
        self._error(401, "UNAUTHORIZED", why, WWW_Authenticate=f'Bearer realm="{realm}",service="{SERVICE}"{scope}')
        return False

    def do_GET(self):  # noqa: N802
        path = urlsplit(self.path).path
        if not self._authorized(path):
            return
        if path == "/v2/":
            return self._head(200, 0)
        prefix = f"/v2/{self.repo}/"
        if not path.startswith(prefix):
            return self._error(404, "NAME_UNKNOWN", "repository name not known to registry")
        kind, _, ref = path[len(prefix):].partition("/")
        index = json.loads((self.layout / "index.json").read_text())
        if kind == "manifests":
            tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
            digest = tags.get(ref, ref)
            f = self.layout / "blobs" / "sha256" / digest.partition(":")[2]
            if not digest.startswith("sha256:") or not f.is_file():
                return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            data = f.read_bytes()
            self._head(200, len(data), Content_Type=json.loads(data)["mediaType"], Docker_Content_Digest=digest)
            return self.wfile.write(data)
        if kind != "blobs":
            return self._error(404, "UNSUPPORTED", "not a pull endpoint")
        f = self.layout / "blobs" / "sha256" / ref.partition(":")[2]
        if not ref.startswith("sha256:") or not f.is_file():
            return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        if self.mode == "redirect":
            return self._head(307, 0, Location=f"{self.other}/blobs/sha256/{f.name}?X-Amz-Expires=300&X-Amz-Signature=abc")
        layer = f.stat().st_size > 4096
        cut = layer and (self.mode == "cutnorange" or (self.mode == "cut" and "Range" not in self.headers))
        send_file(self, f, {"Docker-Content-Digest": ref}, corrupt=self.mode == "corrupt" and layer, cut=cut,
                  ranges=self.mode != "cutnorange")


def send_file(h: BaseHTTPRequestHandler, f: Path, headers: dict, corrupt: bool = False, cut: bool = False,
              ranges: bool = True) -> None:
    """The file, whole (200) or the Range asked for (206), in 1 MiB writes (`corrupt`: its last byte changed;
    `cut`: the connection closed after half the bytes its Content-Length says; `ranges` False: Range ignored)."""
    size = f.stat().st_size
    start, end, status = 0, size - 1, 200
    rng = h.headers.get("Range", "") if ranges else ""
    if rng.startswith("bytes="):
        a, _, b = rng[6:].partition("-")
        start, end, status = int(a or 0), min(int(b) if b else size - 1, size - 1), 206
    h.send_response(status)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", str(end - start + 1))
    if ranges:
        h.send_header("Accept-Ranges", "bytes")
    if status == 206:
        h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    with open(f, "rb") as src:
        src.seek(start)
        left = end - start + 1
        stop = left // 2 if cut else 0
        while left > stop:
            block = src.read(min(CHUNK, left - stop))
            if not block:
                break
            if corrupt and len(block) == left:
                block = block[:-1] + bytes([block[-1] ^ 0xFF])
            h.wfile.write(block)
            left -= len(block)
    if cut:
        h.wfile.flush()
        h.close_connection = True           # the rest never comes: the connection closes


class Files(BaseHTTPRequestHandler):
    """The object store a redirect points to: the layout's blobs, never with Authorization."""
    protocol_version = "HTTP/1.1"

    def __init__(self, *a, layout: Path, **kw):
        self.layout = layout
        super().__init__(*a, **kw)

    def log_message(self, *_a):
        pass

    def do_GET(self):  # noqa: N802
        u = urlsplit(self.path)
        f = self.layout / u.path.lstrip("/")
        if self.headers.get("Authorization"):
            data = b"Authorization forwarded to the object store"
            self.send_response(400)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if "X-Amz-Signature" not in u.query or not f.is_file():
            self.send_response(403)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        send_file(self, f, {})


def _serve(server: ThreadingHTTPServer) -> None:
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main(argv: list[str]) -> None:
    mode, layout, repo = argv[0], Path(argv[1]), argv[2]
    realm = other = ""
    if mode in ("token", "redirect"):
        tokens = ThreadingHTTPServer(("127.0.0.1", 0), TokenService)
        _serve(tokens)
        realm = f"http://127.0.0.1:{tokens.server_address[1]}/token"
    if mode == "redirect":
        files = ThreadingHTTPServer((OTHER_HOST, 0), partial(Files, layout=layout))
        _serve(files)
        other = f"http://{OTHER_HOST}:{files.server_address[1]}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Registry, mode=mode, layout=layout, repo=repo,
                                                           realm=realm, other=other))
    server.daemon_threads = True
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(argv[3], argv[4])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    scheme = "https" if mode == "tls" else "http"
    print(json.dumps({"base": f"{scheme}://127.0.0.1:{server.server_address[1]}", "realm": realm, "other": other}),
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
