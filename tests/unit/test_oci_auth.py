"""labkit.clients.oci.auth and session: challenges, tokens, Basic, credentials files, against crafted answers."""
import base64
import json

import pytest

from labkit.clients.oci import AuthError, Credentials, OciError, Reference, Session, parse_challenge
from labkit.clients.oci.auth import read_token
from labkit.errors import SettingsError

from .oci_fakes import Registry, Resp

REF = Reference.parse("http://reg:5000/lib/img:1")
V2 = "http://reg:5000/v2/"
BEARER = 'Bearer realm="http://auth:9000/token",service="reg.example",scope="repository:lib/img:pull"'


def test_bearer_challenge_parsed():
    ch = parse_challenge(BEARER, V2)
    assert (ch.scheme, ch.realm, ch.service, ch.scope) == ("bearer", "http://auth:9000/token", "reg.example",
                                                           "repository:lib/img:pull")
    assert ch.token_url() == "http://auth:9000/token?service=reg.example&scope=repository%3Alib%2Fimg%3Apull"
    assert parse_challenge('Bearer realm="http://a/t?x=1"', V2).token_url("repository:a:pull") == \
        "http://a/t?x=1&scope=repository%3Aa%3Apull"


def test_basic_challenge_parsed():
    ch = parse_challenge('Basic realm="basic-realm"', V2)
    assert (ch.scheme, ch.realm) == ("basic", "basic-realm")


@pytest.mark.parametrize("header, words", [
    (None, "HTTP 401 without a WWW-Authenticate challenge"),
    ("", "HTTP 401 without a WWW-Authenticate challenge"),
    ('Negotiate abc', "asks for 'Negotiate' authentication"),
    ('Bearer service="x"', "Bearer challenge without a realm"),
    ('Bearer realm="/token"', "is not an http(s) URL"),
])
def test_bad_challenge_named(header, words):
    with pytest.raises(AuthError) as e:
        parse_challenge(header, V2)
    assert words in str(e.value) and V2 in str(e.value)


def test_token_answers():
    assert read_token(b'{"token": "t1", "expires_in": 60}', "u") == "t1"
    assert read_token(b'{"access_token": "t2"}', "u") == "t2"
    with pytest.raises(AuthError, match="neither `token` nor `access_token`"):
        read_token(b'{"expires_in": 60}', "u")
    with pytest.raises(AuthError, match="not JSON"):
        read_token(b"<html>", "u")


def test_credentials_from_user_and_files(tmp_path):
    assert Credentials.find("reg:5000", "me:pa:ss") == Credentials("me", "pa:ss", "--user")
    with pytest.raises(SettingsError, match="USER:PASSWORD"):
        Credentials.of_user("nopassword")
    f = tmp_path / "auth.json"
    f.write_text(json.dumps({"auths": {"reg:5000": {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
    home = tmp_path / "home"
    assert Credentials.find("reg:5000", env={"REGISTRY_AUTH_FILE": str(f)}, home=home) == \
        Credentials("alice", "s3cret", str(f))
    assert Credentials.find("other:5000", env={"REGISTRY_AUTH_FILE": str(f)}, home=home) is None
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {"reg": {"auth": base64.b64encode(b"bob:x").decode()}}}))
    assert Credentials.find("reg:5000", env={}, home=home).username == "bob"          # the host alone
    f.write_text(json.dumps({"auths": {"reg:5000": {"auth": "%%%"}}}))
    with pytest.raises(SettingsError, match=r"auths\['reg:5000'\].auth is not base64"):
        Credentials.find("reg:5000", env={"REGISTRY_AUTH_FILE": str(f)}, home=home)
    f.write_text("{not json")
    with pytest.raises(SettingsError, match="not readable JSON"):
        Credentials.find("reg:5000", env={"REGISTRY_AUTH_FILE": str(f)}, home=home)


def token_registry(token_status=200, token_body=b'{"token": "T"}'):
    def v2(url, headers):
        if headers.get("Authorization") == "Bearer T":
            return Resp(200)
        return Resp(401, b"", {"WWW-Authenticate": BEARER})
    return Registry({V2: v2, "http://auth:9000/token": Resp(token_status, token_body)})


def test_bearer_token_fetched_and_used():
    reg = token_registry()
    s = Session(REF, reg.get)
    s.ping()
    assert s.authorization == "Bearer T" and s.auth_kind == "token"
    token_url, token_headers = reg.requests[1]
    assert "service=reg.example" in token_url and "scope=repository%3Alib%2Fimg%3Apull" in token_url
    assert "Authorization" not in token_headers                      # anonymous: no credentials given
    assert [st["step"] for st in s.steps] == ["ping", "token"]
    got = s.open(V2)
    assert got.resp.status == 200 and reg.requests[-1][1]["Authorization"] == "Bearer T"


def test_token_service_given_the_credentials():
    reg = token_registry()
    Session(REF, reg.get, Credentials("me", "pw", "--user")).ping()
    assert reg.requests[1][1]["Authorization"] == "Basic " + base64.b64encode(b"me:pw").decode()


def test_a_failing_token_endpoint_is_named():
    reg = token_registry(503, b'{"errors": [{"code": "UNAVAILABLE"}]}')
    with pytest.raises(AuthError, match=r"token endpoint http://auth:9000/token: HTTP 503 .*UNAVAILABLE.* anonymously"):
        Session(REF, reg.get).ping()


def test_401_without_a_challenge():
    reg = Registry({V2: Resp(401)})
    with pytest.raises(AuthError, match="HTTP 401 without a WWW-Authenticate challenge"):
        Session(REF, reg.get).ping()


def test_not_an_oci_registry():
    reg = Registry({V2: Resp(404)})
    with pytest.raises(OciError, match="not an OCI distribution API.*collection/name:tag"):
        Session(REF, reg.get).ping()


def test_basic():
    creds = Credentials("me", "pw", "--user")

    def v2(url, headers):
        return Resp(200) if headers.get("Authorization") == creds.basic else Resp(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    with pytest.raises(AuthError, match="asks for Basic credentials.*--user USER:PASSWORD"):
        Session(REF, Registry({V2: v2}).get).ping()
    s = Session(REF, Registry({V2: v2}).get, creds)
    s.ping()
    assert s.auth_kind == "basic"
    wrong = Credentials("me", "nope", "/x/auth.json")
    with pytest.raises(AuthError, match="HTTP 401 again with basic authorization \\(credentials from /x/auth.json\\)"):
        Session(REF, Registry({V2: v2}).get, wrong).open(V2)
