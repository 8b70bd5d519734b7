import os

import pytest

from labkit.cli import main


@pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t of the bundle runs in a mount namespace (root)")
def test_export_writes_a_checked_bundle_and_writes_it_again_from_itself(tmp_path, capsys):
    assert main(["export", "--preset", "seed-poster", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "seed-poster" / "uwsgi.ini").read_text().count("processes = 128") == 1
    assert main(["export", "--from", str(tmp_path / "seed-poster.tar.gz"), "--label", "again",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "again" / "uwsgi.ini").read_text() == (tmp_path / "seed-poster" / "uwsgi.ini").read_text()
