"""The pure parts of a pull storm: Jain's index, failure kinds, the pull budget, the tables, the spec (no root)."""
import errno
import http.client
import http.server
import json
import math
import socket
import socketserver
import threading
import time

import pytest

from labkit.analyze.storm_tables import (FAIL_COLUMNS, NODE_COLUMNS, PULL_COLUMNS, STORM_COLUMNS, fairness, failures_table,
                                  jain, nodes_table, pulls_table, records_of, storm_row)
from labkit.cli import main, seconds
from labkit.errors import SettingsError
from labkit.measure.budget import Budget
from labkit.clients.failures import HttpStatusError, classify, outcome
from labkit.clients.puller import pull
from labkit.records import KINDS, PullResult
from labkit.measure.locust_storm import StormSpec


# --- Jain's index and fairness ------------------------------------------------------------
def test_jain_is_one_for_equal_shares_and_one_over_n_when_one_takes_all():
    assert jain([50.0] * 8) == pytest.approx(1.0)
    assert jain([100.0, 0, 0, 0]) == pytest.approx(0.25)
    assert jain([1, 2, 3]) == pytest.approx(36 / 42)
    assert jain([10.0]) == 1.0
    assert math.isnan(jain([])) and math.isnan(jain([0, 0]))
    with pytest.raises(ValueError, match="rates >= 0"):
        jain([1.0, -1.0])


def test_fairness_gives_min_median_max_and_jain():
    f = fairness([10.0, 30.0, 20.0, 40.0])
    assert (f["per_pull_min"], f["per_pull_median"], f["per_pull_max"]) == (10.0, 25.0, 40.0)
    assert f["jain"] == pytest.approx(100 ** 2 / (4 * 3000))
    assert all(math.isnan(v) for v in fairness([]).values())


# --- failure kinds ---------------------------------------------------------------------------
@pytest.mark.parametrize("exc,kind", [
    (HttpStatusError(502, "HTTP 502"), "http"),
    (http.client.IncompleteRead(b"abc", 10), "short body"),
    (socket.timeout("timed out"), "timeout"),
    (TimeoutError("pull still running after the 300s deadline"), "timeout"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connect"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "connect"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "connect"),
    (socket.gaierror(-2, "Name or service not known"), "connect"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "reset"),
    (http.client.RemoteDisconnected("Remote end closed connection without response"), "reset"),
    (BrokenPipeError(errno.EPIPE, "broken pipe"), "reset"),
    (OSError(errno.ECONNRESET, "reset"), "reset"),
    (json.JSONDecodeError("Expecting value", "<html>", 0), "other"),
    (KeyError("image"), "other"),
])
def test_exceptions_are_classified_by_type(exc, kind):
    assert classify(exc) == kind and kind in KINDS


def test_a_finished_body_is_short_or_corrupt_or_good():
    assert outcome(10, 10, True) == "" and outcome(10, 10, None) == ""
    assert outcome(9, 10, True) == "short body" and outcome(0, -1, None) == "short body"
    assert outcome(10, 10, False) == "checksum" and outcome(5, -1, None) == ""


class _Registry(http.server.BaseHTTPRequestHandler):
    """A misbehaving registry: the manifest names /img/<case>; each case fails one way."""
    body = b"x" * 300_000

    def log_message(self, *a):
        pass

    def do_GET(self):
        host, port = self.server.server_address
        if self.path.startswith("/api/container/"):
            case = self.path.rsplit(":", 1)[1]
            if case == "404":
                return self._send(404, b"no such container")
            import hashlib
            man = {"image": f"http://{host}:{port}/img/{case}", "version": hashlib.sha256(self.body).hexdigest()}
            return self._send(200, json.dumps(man).encode())
        case = self.path.rsplit("/", 1)[1]
        if case == "500":
            return self._send(500, b"boom")
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if case == "ok":
            self.wfile.write(self.body)
        elif case == "corrupt":
            self.wfile.write(b"y" + self.body[1:])
        elif case == "short":
            self.wfile.write(self.body[:1000])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        elif case == "reset":
            self.wfile.write(self.body[:1000])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        elif case == "stall":
            self.wfile.write(self.body[:1000])
            self.wfile.flush()
            time.sleep(1.5)
        self.close_connection = True

    def _send(self, status, data):
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def registry():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Registry)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("case,kind", [("ok", ""), ("corrupt", "checksum"), ("short", "short body"),
                                       ("reset", "reset"), ("500", "http"), ("404", "http"), ("stall", "timeout")])
def test_a_real_pull_reports_each_failure_by_its_kind(registry, case, kind):
    host, port = registry
    r = pull(None, host, port, f"c/n:{case}", timeout=0.5, deadline=10)
    assert (r.ok, r.kind) == (kind == "", kind), r


def test_nothing_listening_is_a_connect_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # bound, not listening: refused
        r = pull(None, "127.0.0.1", port, "c/n:t", timeout=1)
    assert not r.ok and r.kind == "connect"


# --- the pull budget ---------------------------------------------------------------------------
def test_the_budget_grants_exactly_its_pulls_and_then_refuses():
    b = Budget(pulls=5, users=2, start_together=False)
    grants = [b.claim(f"u{i % 2}")[0] for i in range(8)]
    assert [t for _, t in grants] == [1, 2, 3, 4, 5, None, None, None]
    assert [b.finish() for _ in range(5)] == [False] * 4 + [True]


def test_the_start_line_holds_the_first_round_until_every_user_asked():
    b = Budget(pulls=3, users=4)
    assert b.claim("a") == [] and b.claim("b") == [] and b.claim("c") == []
    assert b.claim("d") == [("a", 1), ("b", 2), ("c", 3), ("d", None)]
    assert b.claim("a") == [("a", None)]
    late = Budget(pulls=0, users=4)                     # a user that never comes: the timer flushes
    late.claim("a")
    assert late.flush() == [("a", 1)] and late.claim("b") == [("b", 2)] and not late.finish()
    with pytest.raises(ValueError):
        Budget(pulls=-1, users=1)


# --- the tables --------------------------------------------------------------------------------
def _rec(node, ticket, mbps, start, ok=True, kind="", sha=True):
    secs = 100e6 / 1e6 / mbps if mbps else 1.0
    return {"node": node, "worker": 0, "user": f"{node}/0", "ticket": ticket, "ok": ok, "kind": kind,
            "MBps": mbps, "ttfb_ms": 10.0 * ticket, "bytes": 100_000_000 if ok else 1000, "seconds": secs,
            "sha256_ok": sha, "start": start, "end": start + secs, "error": "" if ok else f"{kind}: x", "extra": 1}


def test_the_storm_table_has_every_column_and_counts_failures_by_kind():
    recs = [_rec("compute1", 1, 100.0, 0.0), _rec("compute2", 2, 50.0, 0.0), _rec("compute1", 3, 100.0, 1.0),
            _rec("compute2", 4, 0.0, 0.5, ok=False, kind="reset", sha=False),
            _rec("compute2", 5, 0.0, 0.5, ok=False, kind="other", sha=False)]
    df = pulls_table(recs)
    assert list(df.columns) == PULL_COLUMNS and list(df.ticket) == [1, 2, 4, 5, 3]
    row = storm_row(df, "full path", "locust", users=4, missing=1)
    assert list(row) == STORM_COLUMNS
    assert (row["pulls"], row["ok"], row["failures"], row["nodes"]) == (6, 3, 3, 2)
    assert row["fail_reset"] == 1 and row["fail_other"] == 1 and row["harness_failures"] == 2   # other + missing
    assert row["MBps"] == pytest.approx((300e6 + 2000) / 2.0 / 1e6, abs=0.1)                  # span 0 .. 2 s
    assert (row["per_pull_min"], row["per_pull_median"], row["per_pull_max"]) == (50.0, 100.0, 100.0)
    assert row["jain"] == pytest.approx(round(250 ** 2 / (3 * 22500), 3))
    assert row["ttfb_ms"] == 20.0 and row["sha256_ok"] is False
    nodes = nodes_table(df)
    assert list(nodes.columns) == NODE_COLUMNS and list(nodes.pulls) == [2, 3] and list(nodes.failures) == [0, 2]
    fails = failures_table(df)
    assert set(fails.kind) == {"reset", "other"} and fails.set_index("kind").harness.to_dict() == {
        "reset": False, "other": True}
    assert set(FAIL_COLUMNS) <= set(row)


def test_unknown_kinds_are_refused_and_native_results_fit_the_same_table():
    with pytest.raises(ValueError, match="unknown failure kinds"):
        pulls_table([_rec("c", 1, 1.0, 0.0, ok=False, kind="gremlins")])
    rs = [PullResult(True, 50_000_000, 1.0, 5.0, True, start=10.0, end=11.0),
          PullResult(False, 10, 0.5, 0.0, False, error="HttpStatusError: HTTP 502", start=10.0, end=10.5, kind="http")]
    df = pulls_table(records_of(rs, "compute1", clock_offset=100.0))
    assert list(df.start) == [110.0, 110.0] and list(df.kind) == ["", "http"]
    row = storm_row(df, "full path", "threads", users=2)
    assert row["MBps"] == pytest.approx(50.00001, abs=0.01) and row["fail_http"] == 1 and row["harness_failures"] == 0


def test_an_empty_storm_still_gives_a_row():
    row = storm_row(pulls_table([]), "full path", "locust", users=1, missing=3)
    assert row["pulls"] == 3 and row["harness_failures"] == 3 and math.isnan(row["jain"])
    assert nodes_table(pulls_table([])).empty and failures_table(pulls_table([])).empty


# --- the spec and the command line ------------------------------------------------------------------
def test_a_storm_is_bounded_and_its_arguments_say_so():
    spec = StormSpec(users=40, pulls=200).check()
    args = spec.locust_args("http://192.0.2.20:80", "library/x:1")
    assert args[args.index("-u") + 1] == "40" and args[args.index("-r") + 1] == "40"
    assert args[args.index("--pulls") + 1] == "200" and args[args.index("-t") + 1] == "1800s"
    assert spec.bound_s() == 5 * 300 + 300 + 60
    timed = StormSpec(users=8, run_s=30, spawn_rate=2, start_together=False).check()
    targs = timed.locust_args("http://h:1", "c/n:t")
    assert targs[targs.index("-t") + 1] == "30s" and "--no-start-line" in targs and timed.bound_s() == 30 + 300 + 60
    assert "--follow-hosts" not in args and "--insecure" not in args
    wide = StormSpec(pulls=4, follow_hosts=True, insecure=True).check().locust_args("https://h:443", "c/n:t", "/ca.pem")
    assert wide[-2:] == ["--follow-hosts", "--insecure"] and wide[wide.index("--cacert") + 1] == "/ca.pem"
    for bad, msg in [(dict(users=0, pulls=1), "users 0"), (dict(pulls=0), "a pull count or a run time"),
                     (dict(pulls=1, spawn_rate=0), "spawn rate"), (dict(pulls=1, verify="md5"), "verify"),
                     (dict(run_s=0.5), "run time")]:
        with pytest.raises(SettingsError, match=msg):
            StormSpec(**bad).check()


def test_run_times_are_read_as_locust_writes_them():
    assert [seconds(t) for t in ["90", "90s", "5m", "1h30m", "2.5s"]] == [90, 90, 300, 5400, 2.5]
    for bad in ["", "soon", "5x", "m"]:
        with pytest.raises(SettingsError, match="--run-time"):
            seconds(bad)


@pytest.mark.parametrize("argv,message", [
    (["storm", "--worker"], "needs --master-host"),
    (["storm", "--master", "--pulls", "10"], "needs --url"),
    (["storm", "--master", "--worker"], "not both"),
    (["storm", "--name", "st-none"], "a pull count or a run time"),
    (["storm", "--name", "st-none", "--pulls", "10", "--users", "0"], "'--users': 0 is not in the range 1<=x<=1024"),
    (["storm", "--name", "st-none", "--run-time", "later"], "--run-time"),
    (["survey", "--name", "st-none", "--compute-nodes", "0"], "'--compute-nodes': 0 is not in the range 1<=x<=64"),
    (["storm", "--name", "st-none", "--pulls", "4", "--set", "client.kind=curl"], "client.kind 'curl'"),
    (["storm", "--name", "st-none", "--pulls", "4", "--set", "client.dest=local-disk"], "client.dest 'local-disk'"),
    (["storm", "--name", "st-none", "--pulls", "4", "--preset", "distribution-2.8", "--api", "sregistry"],
     "--api sregistry: the lab's registry.kind 'distribution' serves the oci API"),
    (["storm", "--name", "st-none", "--pulls", "4", "--api", "oci"],
     "--api oci: the lab's registry.kind 'sregistry' serves the sregistry API (leave --api out, or bring up a lab "
     "with registry.kind=distribution)"),
])
def test_bad_storm_arguments_are_refused_before_anything_starts(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_lab_storm_speaks_the_api_its_registry_serves_and_checks_the_digest_it_pushed():
    """sregistry: the catalog image by its sha256; distribution: the pushed image, its manifest digest required."""
    from types import SimpleNamespace
    from labkit.config.presets import PRESETS
    from labkit.lab.oci_image import OciImage
    from labkit.measure.locust_storm import lab_target, refusals
    img = OciImage(None, "latest", "sha256:" + "ab" * 32, "sha256:" + "cd" * 32, ("sha256:" + "ef" * 32,), (1000, ))
    oci_lab = SimpleNamespace(name="x", settings=PRESETS["distribution-2.8"],
                              services={"nginx": SimpleNamespace(), "registry": SimpleNamespace(image=img)})
    spec, image, size = lab_target(oci_lab, StormSpec(pulls=4))
    assert (spec.api, spec.sha256, image, size) == ("oci", "ab" * 32, "servelab/image:latest", 1000)
    args = spec.locust_args("https://192.0.2.20:443", image, "/ca.pem")
    assert args[args.index("--api") + 1] == "oci" and args[args.index("--sha256") + 1] == "ab" * 32
    assert lab_target(oci_lab, StormSpec(pulls=4, sha256="0" * 64))[0].sha256 == "0" * 64   # the user's, kept
    assert "--no-keep-alive" not in args and "--no-keep-alive" in lab_target(
        oci_lab, StormSpec(pulls=4, keep_alive=False))[0].locust_args("https://h:443", image)
    sreg = SimpleNamespace(name="y", settings=PRESETS["sregistry-2018-10"], image=SimpleNamespace(uri="c/n:t", size=7))
    spec, image, size = lab_target(sreg, StormSpec(pulls=4))
    assert (spec.api, spec.sha256, image, size) == ("sregistry", "", "c/n:t", 7)
    assert "--api" not in spec.locust_args("http://h:80", image)
    assert refusals(PRESETS["distribution-2.8"], "oci") == refusals(PRESETS["distribution-2.8"]) == []
    with pytest.raises(Exception, match="no image pushed"):
        lab_target(SimpleNamespace(name="z", settings=PRESETS["distribution-2.8"], services={}), StormSpec(pulls=1))
