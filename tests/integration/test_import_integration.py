"""`labkit import` then `survey` and `export` on the imported settings, with the real lab (root)."""
from labkit.cli import main

from ..sregistry_files import FILES_2018_10, seed_poster, write


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
