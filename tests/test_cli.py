import os

import pytest

from labkit.lab.lab import netns
from labkit.cli import main


@pytest.mark.parametrize("argv,message", [
    (["survey", "--parallel", "0"], "--parallel 0 is outside 1..256"),
    (["survey", "--image-mib", "0"], "--image-mib 0 is outside 1..16384"),
    (["report", "--image-mib", "99999"], "--image-mib 99999 is outside 1..16384"),
])
def test_bad_arguments_are_refused_before_any_lab_starts(argv, message, capsys):
    before = netns.list_ns("sl-") if netns.can_use_namespaces() else []
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert (netns.list_ns("sl-") if netns.can_use_namespaces() else []) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t of the bundle runs in a mount namespace (root)")
def test_export_writes_a_checked_bundle_and_writes_it_again_from_itself(tmp_path, capsys):
    assert main(["export", "--preset", "seed-poster", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "seed-poster" / "uwsgi.ini").read_text().count("processes = 128") == 1
    assert main(["export", "--from", str(tmp_path / "seed-poster.tar.gz"), "--label", "again",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "again" / "uwsgi.ini").read_text() == (tmp_path / "seed-poster" / "uwsgi.ini").read_text()
