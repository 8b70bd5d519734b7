"""The CLI's parsing, on click: every command and option the README documents parses, bad values are
refused naming the option and its range. No lab, no program: each click command's callback is replaced by a
recorder of what click handed it; the declarations the commands build are checked with the runner replaced."""
import json

import pytest
from click.testing import CliRunner

from labkit import cli
from labkit.errors import LabError, SettingsError
from labkit.path import MAX_COMPUTE_NODES
from labkit.units import GiB, MiB

COMMANDS = ["survey", "up", "down", "status", "heal", "export", "import", "report", "probe", "sweep", "storm", "hypotheses",
            "cpu-model", "run", "contest"]


@pytest.fixture
def calls(monkeypatch):
    """Each command's callback replaced by a recorder of the options click parsed for it."""
    seen = []

    def recorder(command: str):
        return lambda **o: seen.append((command, o)) or 0
    for command_name, command in cli.cli.commands.items():
        monkeypatch.setattr(command, "callback", recorder(command_name))
    return seen


def run(argv):
    return CliRunner().invoke(cli.cli, argv, prog_name="labkit")


def test_every_command_is_there():
    assert sorted(cli.cli.commands) == sorted(COMMANDS)


# what the README shows, command by command
README = [
    (["survey"], "survey", {"name": "main", "preset": "sregistry-2018-10", "parallel": 5, "repeats": 3,
                                "image_size": 64 * MiB, "compute_nodes": 1, "verify": "sha256", "keep": False}),
    (["survey", "--keep", "--set", "links.nginx=800mbit", "--set", "uwsgi.processes=8", "--preset", "seed-poster",
      "--image-mib", "1536", "--parallel", "40", "--json"],
     "survey", {"overrides": ("links.nginx=800mbit", "uwsgi.processes=8"), "preset": "seed-poster",
                    "image_size": 1536 * MiB, "parallel": 40, "keep": True, "as_json": True}),
    (["up", "--name", "rel2", "--compute-nodes", "8"], "up", {"name": "rel2", "compute_nodes": 8}),
    (["status"], "status", {}),
    (["heal", "--name", "rel2"], "heal", {"name": "rel2"}),
    (["down"], "down", {"name": "main", "every": False}),
    (["down", "--all"], "down", {"every": True}),
    (["report"], "report", {"name": "report", "parallel": (1, 5), "image_size": 64 * MiB}),
    (["report", "--image-mib", "128", "--parallel", "1", "--parallel", "40"], "report",
     {"image_size": 128 * MiB, "parallel": (1, 40)}),
    (["export"], "export", {"preset": "recommended", "settings_from": None, "label": None}),
    (["export", "--set", "app.serve_mode=accel", "--label", "mine-accel"], "export",
     {"overrides": ("app.serve_mode=accel",), "label": "mine-accel"}),
    (["probe", "http://registry.example.org", "library/ubuntu:18.04", "--parallel", "5", "--iperf3",
      "registry.example.org", "--capture", "--ns", "sl-x-compute", "--deadline", "60", "--timeout", "5", "--report", "p.html"],
     "probe", {"url": "http://registry.example.org", "image": "library/ubuntu:18.04", "parallel": 5,
                   "iperf3": "registry.example.org", "capture": True, "ns": "sl-x-compute", "deadline": 60.0,
                   "timeout": 5.0, "report": "p.html", "iperf_seconds": 3}),
    (["sweep", "--knob", "app.serve_mode=fileresponse,accel", "--knob", "uwsgi.processes=4,8"], "sweep",
     {"knob": ("app.serve_mode=fileresponse,accel", "uwsgi.processes=4,8"), "parallel": 5, "out": None}),
    (["storm", "--compute-nodes", "8", "--set", "links.wan=6gbit", "--preset", "recommended", "--image-mib", "32",
      "--users", "40", "--pulls", "200", "--report", "storm.html"],
     "storm", {"name": "storm", "compute_nodes": 8, "users": 40, "pulls": 200, "run_time": None,
                   "master": False, "worker": False, "report": "storm.html", "overrides": ("links.wan=6gbit",)}),
    (["storm"], "storm", {"name": "storm", "compute_nodes": 4, "users": 40, "pulls": 0, "master_port": 5557}),
    (["storm", "--on", "rel2", "--run-time", "1h30m"], "storm", {"on": "rel2", "run_time": 5400.0}),
    (["storm", "--master", "--url", "http://registry.example.org:80", "--image", "library/ubuntu:18.04",
      "--workers", "8", "--users", "40", "--pulls", "200", "--bind-host", "10.0.0.5", "--out", "results/"],
     "storm", {"master": True, "url": "http://registry.example.org:80", "image": "library/ubuntu:18.04",
                   "workers": 8, "bind_host": "10.0.0.5", "out": "results/"}),
    (["contest"], "contest", {"name": "contest", "image_size": 128 * MiB, "only": (), "k": None, "estimate": False,
                              "checks": (), "max_minutes": None, "rates_from": None}),
    (["contest", "--only", "too few", "--check", "timeouts_at_5_original", "--max-minutes", "15"],
     "contest", {"only": ("too few",), "checks": ("timeouts_at_5_original",), "max_minutes": 15.0}),
    (["contest", "--only", "TLS", "--only", "docker-proxy", "--k", "6", "--image-size", "256MiB", "--estimate"],
     "contest", {"only": ("TLS", "docker-proxy"), "k": 6.0, "image_size": 256 * MiB, "estimate": True}),
    (["storm", "--worker", "--master-host", "10.0.0.5", "--node", "c7", "--master-port", "6000"],
     "storm", {"worker": True, "master_host": "10.0.0.5", "node": "c7", "master_port": 6000}),
]


@pytest.mark.parametrize("argv,command,expect", README, ids=[" ".join(r[0])[:40] for r in README])
def test_the_readmes_commands_parse_to_typed_options(calls, argv, command, expect):
    res = run(argv)
    assert res.exit_code == 0, res.output
    [(name, options)] = calls
    assert name == command
    assert {k: options[k] for k in expect} == expect


def test_import_and_settings_files_are_checked_when_given(calls, tmp_path):
    good = tmp_path / "mine.json"
    good.write_text(json.dumps({"uwsgi": {"processes": 8}}))
    assert run(["survey", "--settings", str(good)]).exit_code == 0
    assert run(["import", str(tmp_path), "--out", str(tmp_path / "o.json")]).exit_code == 0
    assert [c[1].get("settings") or c[1].get("dir") for c in calls] == [str(good), str(tmp_path)]
    bad = tmp_path / "bad.json"
    bad.write_text('{"uwsgi": {"processes": 0}}')
    res = run(["survey", "--settings", str(bad)])
    assert res.exit_code == 2 and "Invalid value for '--settings'" in res.output and "uwsgi.processes" in res.output
    res = run(["import", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "Invalid value for 'DIR'" in res.output and "does not exist" in res.output
    assert len(calls) == 2


# each range is refused by click before the command runs, naming the option and the range
BAD = [
    (["survey", "--parallel", "0"], "Invalid value for '--parallel': 0 is not in the range 1<=x<=256"),
    (["survey", "--image-mib", "0"], "Invalid value for '--image-size' / '--image-mib': '0' (0 B) is not in the range "
                                     "1 MiB to 16 GiB"),
    (["survey", "--image-size", "64 furlongs"], "Invalid value for '--image-size' / '--image-mib': unknown unit 'furlongs'"),
    (["survey", "--image-size", "17GiB"], "'17GiB' (17 GiB) is not in the range 1 MiB to 16 GiB"),
    (["survey", "--repeats", "21"], "Invalid value for '--repeats': 21 is not in the range 1<=x<=20"),
    (["survey", "--iperf-seconds", "61"], "Invalid value for '--iperf-seconds': 61 is not in the range 1<=x<=60"),
    (["survey", "--compute-nodes", "0"],
     f"Invalid value for '--compute-nodes': 0 is not in the range 1<=x<={MAX_COMPUTE_NODES}"),
    (["survey", "--parallel", "many"], "Invalid value for '--parallel': 'many' is not a valid integer range"),
    (["survey", "--verify", "md5"], "Invalid value for '--verify': 'md5' is not one of 'sha256', 'length'"),
    (["survey", "--preset", "nope"], "Invalid value for '--preset': 'nope' is not one of"),
    (["survey", "--set", "links.nginx"], "Invalid value for '--set': 'links.nginx': write group.field=value"),
    (["survey", "--set", "nginx.nope=1"], "Invalid value for '--set': 'nginx.nope=1': nginx has no setting 'nope'"),
    (["report", "--image-mib", "99999"], "'99999' (97.7 GiB) is not in the range 1 MiB to 16 GiB"),
    (["run", "nope"], "Invalid value for '{survey|"),
    (["report", "--parallel", "0"], "Invalid value for '--parallel': 0 is not in the range 1<=x<=256"),
    (["probe", "http://r", "c/n:t", "--parallel", "65"], "Invalid value for '--parallel': 65 is not in the range 1<=x<=64"),
    (["probe", "http://r", "c/n:t", "--deadline", "0.5"],
     "Invalid value for '--deadline': 0.5 is not in the range 1<=x<=3600"),
    (["probe", "http://r", "c/n:t", "--timeout", "0"],
     "Invalid value for '--timeout': 0.0 is not in the range 0.5<=x<=600"),
    (["hypotheses", "--deadline", "5"], "Invalid value for '--deadline': 5.0 is not in the range 10<=x<=3600"),
    (["contest", "--k", "0.5"], "Invalid value for '--k': 0.5 is not in the range 1<=x<=64"),
    (["contest", "--check", "timeouts"], "Invalid value for '--check': 'timeouts' is not one of"),
    (["contest", "--max-minutes", "0"], "Invalid value for '--max-minutes': 0.0 is not in the range x>0"),
    (["probe"], "Missing argument 'URL'"),
    (["probe", "http://r/lib/img:1", "--layers-at-once", "0"], "Invalid value for '--layers-at-once': 0 is not in the range 1<=x<=32"),
    (["probe", "http://r/lib/img:1", "--api", "docker"], "Invalid value for '--api': 'docker' is not one of 'oci', 'sregistry'"),
    (["sweep"], "Missing option '--knob'"),
    (["sweep", "--knob", "uwsgi.threads"], "Invalid value for '--knob': 'uwsgi.threads': write group.field=value"),
    (["storm", "--users", "0"], "Invalid value for '--users': 0 is not in the range 1<=x<=1024"),
    (["storm", "--pulls", "-1"], "Invalid value for '--pulls': -1 is not in the range 0<=x<=100000"),
    (["storm", "--spawn-rate", "0"], "Invalid value for '--spawn-rate': 0.0 is not in the range 0<x<=10000"),
    (["storm", "--run-time", "later"], "Invalid value for '--run-time': 'later': write seconds or e.g. 90s, 5m, 1h30m"),
    (["storm", "--master-port", "70000"], "Invalid value for '--master-port': 70000 is not in the range 1<=x<=65535"),
    (["storm", "--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1"),
    (["heal", "--all"], "No such option '--all'"),
    (["survey", "--nope"], "No such option '--nope'"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(b[0])[:40] for b in BAD])
def test_bad_values_are_refused_naming_the_option_and_its_range(calls, argv, message):
    res = run(argv)
    assert res.exit_code == 2 and message in res.output, res.output
    assert calls == []


def test_main_returns_the_exit_status_and_says_what_was_refused(calls, capsys):
    assert cli.main(["survey", "--parallel", "0"]) == 2
    err = capsys.readouterr().err
    assert "Usage: labkit survey [OPTIONS]" in err and "'--parallel': 0 is not in the range 1<=x<=256" in err
    assert cli.main(["status"]) == 0 and calls == [("status", {})]
    assert cli.main(["--help"]) == 0 and "storm" in capsys.readouterr().out


@pytest.mark.parametrize("exc,rc", [(SettingsError("uwsgi.processes: 0 is below 1"), 2),
                                    (LabError("nginx did not start"), 1), (KeyboardInterrupt(), 130)])
def test_main_maps_what_a_command_raises_to_an_exit_status(monkeypatch, capsys, exc, rc):
    def boom():
        raise exc
    monkeypatch.setattr(cli.cli.commands["status"], "callback", boom)
    assert cli.main(["status"]) == rc
    err = capsys.readouterr().err
    assert err.lstrip().startswith("labkit: ") and (str(exc) in err if str(exc) else "interrupted" in err)


def test_sizes_on_the_cli_as_a_person_gives_them(calls):
    """--image-size takes 1.5GiB, 64MiB or a number of MiB; --image-mib N is its alias (the Makefile's IMAGE_MIB)."""
    for argv, size in ((["--image-size", "1.5GiB"], 3 * GiB // 2), (["--image-mib", "16"], 16 * MiB),
                       (["--image-size", "512"], 512 * MiB), ([], 64 * MiB)):
        assert run(["survey", *argv]).exit_code == 0
        assert calls.pop()[1]["image_size"] == size
    assert run(["hypotheses"]).exit_code == 0 and calls.pop()[1]["image_size"] == 1536 * MiB


@pytest.fixture
def handed(monkeypatch):
    """The runner replaced: the declarations the commands hand it, none run."""
    seen = []

    def fake(exp, **kw):
        seen.append((exp, kw))
        raise SystemExit(0)
    monkeypatch.setattr(cli, "run", fake)
    return seen


def test_commands_hand_the_runner_their_declaration(handed, tmp_path):
    run(["survey", "--image-size", "1.5GiB", "--parallel", "40", "--set", "uwsgi.processes=8", "--fix", "--keep",
         "--name", "top-x", "--loopback", "--repeats", "5"])
    exp, kw = handed.pop()
    assert (exp.name, exp.image_size, exp.parallels, exp.overrides, exp.lab_name, exp.repeats) == \
        ("survey", 3 * GiB // 2, (1, 40), ("uwsgi.processes=8",), "top-x", 5)
    assert exp.namespaced is False and exp.options["fix"] and kw == {"keep": True, "progress": True}
    assert exp.lab_settings().uwsgi.processes == 8
    run(["sweep", "--knob", "uwsgi.processes=4,8", "--out", str(tmp_path / "s.csv")])
    exp, _ = handed.pop()
    assert exp.options["knobs"] == {"uwsgi.processes": [4, 8]} and exp.options["out"] == str(tmp_path / "s.csv")
    run(["hypotheses", "--image-mib", "32", "--parallel", "1", "--parallel", "3"])
    exp, _ = handed.pop()
    assert (exp.name, exp.image_size, exp.parallels, exp.lab_name) == ("hypotheses", 32 * MiB, (1, 3), "hyp")
    run(["run", "matrix", "--image-size", "16MiB", "--repeats", "1"])
    exp, _ = handed.pop()
    assert (exp.name, exp.image_size, exp.repeats, exp.lab_name) == ("matrix", 16 * MiB, 1, "main")


def test_a_bad_knob_value_is_refused_before_the_runner(handed):
    assert cli.main(["sweep", "--knob", "uwsgi.processes=4,zero"]) == 2 and handed == []
