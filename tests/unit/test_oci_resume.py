"""labkit.clients.oci.resume: a layer's body cut mid-way resumed with `Range: bytes=N-` where the server
accepts Range, read by the lab's loop (labkit.clients.puller.pull_image) and verified by its digest as it streams."""
import pytest

from labkit.clients.oci import Descriptor, LayerPull, Reference, ResumingBlob, Session, pull_layers, resumes_text
from labkit.clients.oci import resume
from labkit.clients.oci.resume import parse_content_range
from labkit.clients.puller import pull_image
from labkit.measure.oci_probe import _layer_row
from labkit.units import MiB

from .oci_fakes import Opened, Registry, Resp, sha

REF = Reference.parse("http://reg:5000/lib/img:1")
BLOB = bytes(range(251)) * (6 * MiB // 251 + 1)          # not a multiple of the 1 MiB reads
D = Descriptor("application/vnd.oci.image.layer.v1.tar", sha(BLOB), len(BLOB))
URL = f"http://reg:5000/v2/lib/img/blobs/{D.digest}"
CUT = 3 * MiB // 2


@pytest.fixture
def no_pause(monkeypatch):
    """containers/image's 1 s pause before reconnecting, left out of the pulls here (its own test checks it)."""
    monkeypatch.setattr(resume, "PAUSE_S", 0.0)
    monkeypatch.setattr(resume, "JITTER_S", 0.0)


def blob_server(cut_after=CUT, cuts=1, cut="eof", on_range="match", accept="bytes"):
    """The blob's route: the first `cuts` connections end after `cut_after` bytes of their own body (a short
    read, or a reset); a Range answered with a matching 206 (`on_range` "match"), or "200" (the whole blob again),
    "shifted" (a Content-Range one byte on), "no header" (a 206 without Content-Range), or a status."""
    made = []

    def route(url, headers):
        made.append(headers.get("Range"))
        h = {"Accept-Ranges": accept} if accept else {}
        chop = dict(cut_after=cut_after, cut=cut) if len(made) <= cuts else {}
        rng = headers.get("Range")
        if rng is None or on_range == "200":
            return Resp(200, BLOB, {**h, "Content-Length": str(len(BLOB))}, **chop)
        if on_range.isdigit():
            return Resp(int(on_range), b"no", h)
        first = int(rng.removeprefix("bytes=").removesuffix("-")) + (on_range == "shifted")
        if on_range != "no header":
            h["Content-Range"] = f"bytes {first}-{len(BLOB) - 1}/{len(BLOB)}"
        return Resp(206, BLOB[first:], h, **chop)
    route.made = made
    return route


def pull(route) -> LayerPull:
    """The layer through pull_layers and the lab's loop, as the probe pulls it."""
    s = Session(REF, Registry({URL: route}).get)
    [lp] = pull_layers(s, [D], lambda opener, d: pull_image(None, URL, d.digest[7:], 5, 30, opener=opener))
    return lp


@pytest.mark.parametrize("cut, words", [("eof", "short"), ("reset", "reset")])
def test_a_cut_body_resumes_with_range_and_is_verified_as_it_streams(no_pause, cut, words):
    route = blob_server(cut=cut)
    lp = pull(route)
    r = lp.result
    assert r.ok and r.sha256_ok is True and r.check == "sha256" and r.bytes == len(BLOB), r.error
    assert route.made == [None, f"bytes={CUT}-"]
    [one] = lp.resumes
    assert {k: one[k] for k in ("offset", "cut", "status", "host", "dropped")} == \
        {"offset": CUT, "cut": words, "status": 206, "host": "reg:5000", "dropped": 0}


def test_a_200_to_the_range_starts_over_counted(no_pause):
    lp = pull(blob_server(on_range="200"))
    assert lp.result.ok and lp.result.sha256_ok is True and lp.result.bytes == len(BLOB), lp.result.error
    assert [(x["offset"], x["status"], x["dropped"]) for x in lp.resumes] == [(CUT, 200, CUT)]
    assert "started over, 1572864 bytes read again and dropped" in resumes_text(lp.resumes)


def test_a_200_that_breaks_while_the_bytes_had_are_dropped_resumes_again(no_pause):
    route = blob_server(on_range="200", cuts=2, cut_after=CUT)    # the start-over is cut before it catches up
    lp = pull(route)
    assert not lp.result.ok and "only 0 bytes" in lp.result.error        # no progress: containers/image's rule
    assert [x["offset"] for x in lp.resumes] == [CUT]


@pytest.mark.parametrize("on_range, words", [
    ("shifted", f"the answer's Content-Range 'bytes {CUT + 1}-{len(BLOB) - 1}/{len(BLOB)}' does not continue the "
                f"blob (asked bytes={CUT}- of {len(BLOB)})"),
    ("no header", "Content-Range None is not 'bytes first-last/size'"),
    ("416", "HTTP 416"),
])
def test_a_range_answer_that_does_not_continue_the_blob_fails_named(no_pause, on_range, words):
    lp = pull(blob_server(on_range=on_range))
    r = lp.result
    assert not r.ok and r.kind == "short body" and lp.resumes == []
    assert f"cut at byte {CUT} of {len(BLOB)} (the body ended early); resuming at byte {CUT} from reg:5000: " \
           f"{words}: not resumed" in r.error, r.error


def test_too_many_resumes_fail_the_layer_naming_them(no_pause):
    step = 5 * MiB // 4                                # each connection gets 1.25 MiB: progress enough to resume
    lp = pull(blob_server(cut_after=step, cuts=99))
    assert [x["offset"] for x in lp.resumes] == [step, 2 * step, 3 * step]
    assert not lp.result.ok and lp.result.kind == "short body"
    assert f"cut at byte {4 * step} of {len(BLOB)} (the body ended early); already resumed 3 times, the most " \
           "per layer here: not resumed again" in lp.result.error


@pytest.mark.parametrize("accept, said", [(None, "no Accept-Ranges: bytes"), ("none", "Accept-Ranges: none")])
@pytest.mark.parametrize("cut, kind", [("eof", "short body"), ("reset", "reset")])
def test_a_server_without_range_support_fails_on_the_cut_named(no_pause, accept, said, cut, kind):
    route = blob_server(accept=accept, cut=cut)
    lp = pull(route)
    assert route.made == [None] and lp.resumes == []                   # never asked for a Range
    assert not lp.result.ok and lp.result.kind == kind
    assert f"cut at byte {CUT} of {len(BLOB)}" in lp.result.error
    assert f"the server does not accept Range (its answer said {said}): not resumed" in lp.result.error


def test_resumes_follow_containers_image_pause_and_progress_rule():
    now, slept = [100.0], []
    step = MiB // 2
    blob = bytes(4 * MiB)
    answers = iter([Resp(206, blob[o:], {"Content-Range": f"bytes {o}-{len(blob) - 1}/{len(blob)}"}, cut_after=step)
                    for o in (step, 2 * step)])
    asked = []

    def reopen(headers):
        asked.append(headers["Range"])
        return Opened(next(answers), [{"host": "s3:9000", "status": 206, "ms": 1}], sock="second")
    body = ResumingBlob(Opened(Resp(200, blob, {"Accept-Ranges": "bytes"}, cut_after=step), sock="first"), reopen,
                        len(blob), sleep=slept.append, clock=lambda: now[0], jitter=lambda: 0.5)
    buf = bytearray(MiB)
    assert body.readinto(buf) == step and body.sock == "first"
    assert body.readinto(buf) == step                       # the first cut: always resumed, after 1 s + jitter
    assert asked == [f"bytes={step}-"] and slept == [pytest.approx(1.05)]
    assert body.sock == "second" and body.resumes[0]["host"] == "s3:9000"      # the loop samples the new one
    now[0] += 5.0                                           # the second cut: half a MiB in 5 s, not resumed
    with pytest.raises(resume.ShortBlob, match=f"only {step} bytes in 5.0 s since the last resume at byte {step} "
                                               r"\(containers/image resumes after 1048576 bytes or 60 s\)"):
        body.readinto(buf)
    now[0] += 60.0                                          # a minute since the last resume: resumed
    assert body.readinto(buf) == step
    assert asked[-1] == f"bytes={2 * step}-" and [x["offset"] for x in body.resumes] == [step, 2 * step]


def test_a_failed_reconnect_is_named():
    def refused(_headers):
        raise ConnectionRefusedError(111, "Connection refused")
    body = ResumingBlob(Opened(Resp(200, b"x" * 10, {"Accept-Ranges": "bytes"}, cut_after=4, cut="reset")), refused,
                        10, sleep=lambda s: None)
    buf = bytearray(8)
    assert body.readinto(buf) == 4
    with pytest.raises(ConnectionResetError, match=r"cut at byte 4 of 10 \(ConnectionResetError: \[Errno 104\] "
                       r"Connection reset by peer\); resuming at byte 4 failed: ConnectionRefusedError"):
        body.readinto(buf)


@pytest.mark.parametrize("value, want", [("bytes 5-9/10", (5, 9, 10)), ("bytes 0-0/*", (0, 0, -1)),
                                         (" bytes 1-2/3 ", (1, 2, 3))])
def test_content_range_parsed(value, want):
    assert parse_content_range(value) == want


@pytest.mark.parametrize("value", [None, "", "bytes 5-/10", "items 1-2/3", "bytes 1-2/3 extra", "bytes */10"])
def test_bad_content_range_named(value):
    with pytest.raises(ValueError, match="is not 'bytes first-last/size'"):
        parse_content_range(value)


def test_the_probe_shows_a_layer_s_resumes(no_pause):
    lp = pull(blob_server())
    row = _layer_row(lp, None)
    assert row["failures"] == 0 and row["verified"] and row["hops"].endswith(f"; resumed 1x at byte {CUT}")
    assert resumes_text(lp.resumes).startswith(f"resumed 1x: at byte {CUT} (206 from reg:5000, ")
