"""`labkit`: bring the lab up or down, look at it, run the per-hop survey."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import pandas as pd

from .lab import ownership as state
from .lab.lab import DATA, MiB, Lab
from .config.overrides import apply_overrides, load_settings
from .config.presets import ALIASES, PRESETS, preset
from .errors import LabError, LabkitError, SettingsError
from .measure.survey import run_survey
from .analyze.verdict import verdict


def _lab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="main", help="lab name (namespaces are sl-<name>-<node>)")
    p.add_argument("--preset", default="sregistry-2018-10", choices=sorted([*PRESETS, *ALIASES]),
                   help="settings to start from (sregistry-shipped is an alias of sregistry-2018-10)")
    _settings_args(p)
    p.add_argument("--image-mib", type=int, default=64, help="test image size in MiB (1536 for the seed case)")
    p.add_argument("--loopback", action="store_true", help="no namespaces: services on 127.0.0.1 ports")
    p.add_argument("--compute-nodes", type=int, default=1, metavar="N",
                   help="compute nodes behind one switch and one uplink to the VM (links.wan shapes it)")


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settings", metavar="FILE", help="settings JSON (from `labkit import` or a bundle) instead of --preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.FIELD=VALUE",
                   help="change one setting, e.g. --set links.nginx=800mbit (repeatable)")


def _settings(a):
    """The preset or settings file, with every --set applied; all checked before anything starts."""
    base = load_settings(a.settings) if a.settings else preset(a.preset)
    return apply_overrides(base, a.overrides)


def _label(a) -> str:
    return Path(a.settings).stem if a.settings else a.preset


def _make_lab(a, keep: bool) -> Lab:
    if not 1 <= a.image_mib <= 16384:
        raise SettingsError(f"--image-mib {a.image_mib} is outside 1..16384")
    return Lab(a.name, _settings(a), image_size=a.image_mib * MiB,
               namespaced=False if a.loopback else None, keep=keep, compute_nodes=a.compute_nodes)


def cmd_survey(a) -> int:
    if not 1 <= a.parallel <= 256:
        raise SettingsError(f"--parallel {a.parallel} is outside 1..256")
    if not 1 <= a.repeats <= 20:
        raise SettingsError(f"--repeats {a.repeats} is outside 1..20")
    lab = _make_lab(a, keep=a.keep)
    lab.up()
    try:
        bad = {k: v for k, v in lab.health().items() if v != "ok"}
        if bad:
            raise LabError("health check failed: " + "; ".join(f"{k}: {v}" for k, v in bad.items()))
        s = run_survey(lab, parallel=a.parallel, iperf_seconds=a.iperf_seconds, verify=a.verify,
                       repeats=a.repeats, progress=not a.json)
    finally:
        if not a.keep:
            lab.down()
    path = s.save(DATA / "results", f"survey-{_label(a)}")
    if a.json:
        print(json.dumps(survey_json(s, path), indent=1))
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(s.table.drop(columns=["through"]).astype(object).fillna("").to_string(index=False))
    for n in s.notes:
        print(f"note: {n}")
    print()
    print(verdict(s))
    print(f"\nsaved {path} (+ .json with the settings); survey took {s.meta['wall_s']} s")
    if a.keep:
        print(f"lab '{a.name}' left up: `labkit down --name {a.name}` ends it")
    return 0


def survey_json(s, saved: Path | None = None) -> dict:
    """The survey's table and its verdict (hop, cause, evidence, next) as plain JSON values."""
    return {"verdict": verdict(s).to_dict(), "table": json.loads(s.table.to_json(orient="records")),
            "settings": s.settings, "notes": s.notes, "meta": s.meta, "saved": str(saved) if saved else None}


def cmd_up(a) -> int:
    lab = _make_lab(a, keep=True).up()
    print(pd.DataFrame(lab.describe()).to_string(index=False))
    for k, v in lab.health().items():
        print(f"{k:28} {v}")
    print(f"lab '{a.name}' is up; `labkit down --name {a.name}` ends it")
    return 0


def _knobs(specs: list[str]) -> dict[str, list]:
    """--knob group.field=v1,v2,... into the sweep's {path: [values]}, each value typed as --set types it."""
    from .config.overrides import parse_override
    knobs = {}
    for spec in specs:
        group, field, values = parse_override(spec)
        knobs[f"{group}.{field}"] = [v.strip() for v in values.split(",") if v.strip()]
    return knobs


def cmd_sweep(a) -> int:
    """One knob at a time from a preset: each knob's values tried with the others at their best so far."""
    from .config.overrides import apply_overrides
    from .measure.sweep import WINNER_RULE, one_at_a_time, settings_of, winner
    base = _settings(a)
    knobs = _knobs(a.knob)
    for path, values in knobs.items():       # every value valid before the lab starts
        for v in values:
            apply_overrides(base, [f"{path}={v}"])
    typed = {path: [knob_value(base, path, v) for v in values] for path, values in knobs.items()}
    with _make_lab(a, keep=False) as lab:
        table = one_at_a_time(lab, base, typed, parallel=a.parallel, verify="length")
    cols = [c for c in table.columns if c != "settings"]
    print(table[cols].to_string(index=False))
    best = winner(table)
    print(f"\nwinner rule: {WINNER_RULE}")
    if best is None:
        print("no trial pulled without failure: no winner")
        return 1
    print(f"winner: {best['label']}")
    from .bundle.export import changes
    for c in changes(settings_of(best), base):
        print(f"  {c['path']}: {c['old']} -> {c['new']}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        table.drop(columns=["settings"]).to_csv(a.out, index=False)
        print(f"saved {a.out}")
    return 0


def knob_value(base, path: str, raw: str):
    """A knob's value as the settings hold it (typed the way --set types it)."""
    from .config.overrides import apply_overrides
    from .measure.sweep import knob
    return knob(apply_overrides(base, [f"{path}={raw}"]), path)


def cmd_heal(a) -> int:
    """Restart what died in a lab that is up (its own services, by their recorded ids)."""
    lab = Lab.attach(a.name)
    done = lab.heal()
    print("\n".join(done) if done else f"lab '{a.name}': every service is running; nothing to heal")
    for k, v in lab.status().items():
        print(f"{k:28} {v}")
    return 0


def cmd_down(a) -> int:
    names = sorted({*state.known(), *state.orphan_labs()}) if a.all else [a.name]
    for name in names:
        done = state.end(name)
        print(f"lab '{name}': " + ("; ".join(done) if done else "nothing was running"))
    return 0


def cmd_status(a) -> int:
    names = sorted({*state.known(), *state.orphan_labs()})
    stale = set(state.stale())
    if not names:
        print("no labs")
    for name in names:
        st = state.read(name) or {}
        print(f"{name}: {'stale' if name in stale else 'up'}; namespaces {state.lab_namespaces(name)}; "
              f"services {sorted(st.get('pids', {}))}")
    return 0


def cmd_export(a) -> int:
    from .bundle.export import export_bundle, import_bundle
    s = apply_overrides(import_bundle(a.settings_from), a.overrides) if a.settings_from else _settings(a)
    bundle, tar = export_bundle(s, a.out, a.label or (Path(a.settings).stem if a.settings else a.preset))
    print(f"bundle: {bundle}\narchive: {tar}\n(checked with nginx -t and uwsgi; see its README.md)")
    return 0


def cmd_import(a) -> int:
    """An operator's sregistry files -> a settings file; every directive modelled or ignored, with why."""
    from .config.importer import SregistryFiles, import_files
    root = Path(a.dir)
    if not root.is_dir():
        raise SettingsError(f"{root}: not a directory (give the sregistry checkout holding the files)")
    given = {k: Path(v) for k in ("nginx_main", "nginx_server", "uwsgi_ini", "compose", "daemon_json")
             if (v := getattr(a, k))}
    files = SregistryFiles.in_dir(root, **given)
    if not files.given():
        raise SettingsError(f"{root}: none of nginx/nginx.conf, nginx.conf, uwsgi.ini, docker-compose.yml, "
                            "daemon.json is there")
    result = import_files(files)
    out = Path(a.out) if a.out else DATA / "settings" / f"{root.resolve().name or 'imported'}.json"
    print(result.text())
    result.write(out)
    print(f"\nread {', '.join(result.files.values())}\nwrote {out}: "
          f"`labkit survey --settings {out}` (add --set group.field=value to change one)")
    return 0


def cmd_probe(a) -> int:
    """The survey's measurements against a real registry, from here: table, verdict, saved results."""
    from .measure.probe import run_probe
    from .present.report import probe_section, write_report
    p = run_probe(a.url, a.image, parallel=a.parallel, iperf3=a.iperf3, capture=a.capture, ns=a.ns,
                  deadline=a.deadline, iperf_seconds=a.iperf_seconds, capture_dir=DATA / "captures",
                  cacert=a.cacert)
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        print(p.table.dropna(axis=1, how="all").astype(object).fillna("").to_string(index=False))
    for n in p.notes:
        print(f"note: {n}")
    if p.capture:
        print(f"capture: {p.capture.get('pcap')}: {p.capture.get('windows_verdict', 'no flow from the server')}")
    print()
    print(p.verdict)
    path = p.save(DATA / "results", "probe")
    print(f"\nsaved {path} (+ .json with every pull's tcp_info); probe took {p.meta['wall_s']} s")
    if a.report:
        print(f"report: {write_report(Path(a.report), [probe_section(p)], title=f'servelab probe: {p.target}')}")
    return 0


def cmd_report(a) -> int:
    from .workflows import full_report
    if not 1 <= a.image_mib <= 16384:
        raise SettingsError(f"--image-mib {a.image_mib} is outside 1..16384")
    path = full_report(a.image_mib, tuple(a.parallel), a.name, settings=_settings(a), label=_label(a))
    print(f"report: {path}")
    return 0


def seconds(text: str) -> float:
    """A run time as Locust writes it: 90, 90s, 5m, 1h30m."""
    import re
    m = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text or "")
    if not text or not m or not any(m.groups()):
        raise SettingsError(f"--run-time {text!r}: write seconds or e.g. 90s, 5m, 1h30m")
    h, mi, sec = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(sec or 0)


def _storm_spec(a):
    from .measure.storm import StormSpec
    return StormSpec(users=a.users, pulls=a.pulls, run_s=seconds(a.run_time) if a.run_time else None,
                     spawn_rate=a.spawn_rate, verify=a.verify, sha256=a.sha256,
                     start_together=not a.no_start_line).check()


def _print_storm(storm, label: str, out: Path = DATA / "results") -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(storm.table().T.rename(columns={0: "storm"}).to_string())
        print()
        print(storm.nodes().to_string(index=False))
        fails = storm.failures()
        print("\nno failed pull" if fails.empty else "\n" + fails.to_string(index=False))
    if storm.missing or storm.meta.get("workers_lost"):
        print(f"\nharness: {storm.missing} pull(s) never reported; workers lost: "
              f"{', '.join(storm.meta.get('workers_lost', [])) or 'none seen here'}")
    print(f"\npulls: {storm.save(out, label)}")


def cmd_cpu_model(a) -> int:
    """A CPU model's published speed per OpenSSL code path beside this machine's, masked as the lab masks it."""
    from .config.cpu_models import model
    from .lab.cpumodel import compare, host_name, openssl_version
    rows, mask = compare(a.model, DATA / "run" / "cpu-speed.json", a.remeasure)
    m = model(a.model)
    print(f"{a.model}: {m.clock_ghz} GHz ({m.clock_source}); features: {m.features_source}")
    print(f"this machine: {host_name()}, {openssl_version()}; OPENSSL_ia32cap={mask.env}")
    print(f"  hidden from OpenSSL: {', '.join(mask.masked) or 'nothing'}")
    print(f"  the model has, this machine lacks: {', '.join(mask.lacking) or 'nothing'}")
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_colwidth", 400):
        print(table.drop(columns=["source"]).to_string(index=False))
    for r in rows:
        print(f"  {r['code path']}: {r['source']}")
    print("openssl speed -evp <path> -bytes 16384, best of 3 two-second runs (cached; --remeasure to redo). "
          "The lab slows each process by the ratio of the code path its TLS settings negotiate.")
    return 0


def cmd_storm(a) -> int:
    """A Locust pull storm: in a lab (default), or as the master or a worker on a real cluster."""
    from .measure.storm import run_master, run_storm, run_worker
    if a.worker and a.master:
        raise SettingsError("storm: --master or --worker, not both")
    if a.worker:
        if not a.master_host:
            raise SettingsError("storm --worker needs --master-host (the host running `labkit storm --master`)")
        return run_worker(a.master_host, a.master_port, a.node)
    spec = _storm_spec(a)
    if a.master:
        if not (a.url and a.image and a.workers):
            raise SettingsError("storm --master needs --url http://registry:port, --image collection/name:tag "
                                "and --workers N")
        storm = run_master(a.url, a.image, spec, a.workers, Path(a.out), a.bind_host, a.master_port, a.cacert)
    else:
        from .measure.storm import refusals
        lab = Lab.attach(a.on) if a.on else None
        if problems := refusals(lab.settings if lab else _settings(a)):
            raise SettingsError("storm: " + "; ".join(problems))
        lab = lab or _make_lab(a, keep=a.keep).up()
        try:
            storm = run_storm(lab, spec)
        finally:
            if not (a.on or a.keep):
                lab.down()
        if a.report:
            from .present.report import storm_section, write_report
            print(f"report: {write_report(Path(a.report), [storm_section(storm)], 'servelab: a pull storm')}")
    _print_storm(storm, "storm", Path(a.out))
    return 0 if storm.row()["harness_failures"] == 0 else 1


def _storm_args(p: argparse.ArgumentParser) -> None:
    _lab_args(p)
    p.set_defaults(name="storm", compute_nodes=4)
    g = p.add_argument_group("the storm (Locust: headless, bounded by --pulls or --run-time)")
    g.add_argument("--users", type=int, default=40, help="simulated Singularity clients in all")
    g.add_argument("--spawn-rate", type=float, help="users started per second (default: all at once)")
    g.add_argument("--pulls", type=int, default=0, help="stop after this many pulls in all")
    g.add_argument("--run-time", help="stop after this long (90s, 5m); with --pulls, whichever comes first")
    g.add_argument("--verify", choices=["sha256", "length"], default="sha256")
    g.add_argument("--sha256", default="", help="the image's sha256 (default: the manifest's version)")
    g.add_argument("--no-start-line", action="store_true", help="first pulls start as users spawn, not together")
    g.add_argument("--on", metavar="NAME", help="storm a lab that is already up (`labkit up --compute-nodes N`)")
    g.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    g.add_argument("--report", metavar="FILE.html", help="also write the storm as an HTML report")
    c = p.add_argument_group("on a real cluster (the same locustfile)")
    c.add_argument("--master", action="store_true", help="run the Locust master here, against --url")
    c.add_argument("--worker", action="store_true", help="run a Locust worker here (on a compute node)")
    c.add_argument("--url", help="master: the registry, http://host:port")
    c.add_argument("--cacert", metavar="FILE", help="master: an https registry's CA file (the same path on every worker)")
    c.add_argument("--image", help="master: collection/name:tag to pull")
    c.add_argument("--workers", type=int, help="master: how many workers to wait for")
    c.add_argument("--bind-host", default="*", help="master: address to listen on for workers")
    c.add_argument("--master-host", help="worker: the master's host")
    c.add_argument("--master-port", type=int, default=5557)
    c.add_argument("--node", help="worker: this compute node's name in the tables (default: hostname)")
    c.add_argument("--out", default=str(DATA / "results"), help="master: where the pull records go")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="labkit", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("survey", help="bring the lab up, measure every hop, print the table and the verdict")
    _lab_args(s)
    s.add_argument("--parallel", type=int, default=5, help="parallel pulls per vantage point")
    s.add_argument("--iperf-seconds", type=int, default=2, help="per hop, whole seconds")
    s.add_argument("--verify", choices=["sha256", "length"], default="sha256",
                   help="how pulls are checked; sha256 costs client CPU on paths above ~1 GB/s")
    s.add_argument("--repeats", type=int, default=3, help="pulls per vantage point (median and spread; 3 or more)")
    s.add_argument("--json", action="store_true", help="print the table and the verdict as JSON (nothing else on stdout)")
    s.add_argument("--keep", action="store_true", help="leave the lab up afterwards (for the notebooks)")
    s.set_defaults(fn=cmd_survey)
    u = sub.add_parser("up", help="bring the lab up and leave it up")
    _lab_args(u)
    u.set_defaults(fn=cmd_up)
    d = sub.add_parser("down", help="end a lab: its processes and namespaces")
    d.add_argument("--name", default="main")
    d.add_argument("--all", action="store_true", help="every servelab lab on this machine")
    d.set_defaults(fn=cmd_down)
    e = sub.add_parser("export", help="write a preset (or a re-imported bundle) as a deployable sregistry bundle")
    e.add_argument("--preset", default="recommended", choices=sorted([*PRESETS, *ALIASES]))
    _settings_args(e)
    e.add_argument("--from", dest="settings_from", help="an exported bundle (dir or .tar.gz) to write again")
    e.add_argument("--label", help="bundle name (default: the preset)")
    e.add_argument("--out", default=str(DATA / "bundles"))
    e.set_defaults(fn=cmd_export)
    i = sub.add_parser("import", help="an operator's sregistry files (nginx, uwsgi, compose, daemon.json) into a settings file")
    i.add_argument("dir", help="the directory holding them, laid out as sregistry's checkout")
    i.add_argument("--nginx-main", help="the main nginx config (default: DIR/nginx/nginx.conf)")
    i.add_argument("--nginx-server", help="the server block (default: DIR/nginx.conf, mounted at conf.d/default.conf)")
    i.add_argument("--uwsgi-ini", help="default: DIR/uwsgi.ini")
    i.add_argument("--compose", help="default: DIR/docker-compose.yml")
    i.add_argument("--daemon-json", help="Docker's daemon.json (default: DIR/daemon.json if there)")
    i.add_argument("--out", help="the settings file to write (default: data/settings/<DIR's name>.json)")
    i.set_defaults(fn=cmd_import)
    r = sub.add_parser("report", help="survey, TCP windows, presets compared and the bundle, as one HTML file")
    r.add_argument("--name", default="report")
    r.add_argument("--image-mib", type=int, default=64)
    r.add_argument("--parallel", type=int, nargs="+", default=[1, 5], help="parallel pull counts to compare")
    r.add_argument("--preset", default="sregistry-2018-10", choices=sorted([*PRESETS, *ALIASES]),
                   help="settings the survey runs under")
    _settings_args(r)
    r.set_defaults(fn=cmd_report)
    pr = sub.add_parser("probe", help="measure a real registry from here: manifest, pulls 1 and N, tcp_info, verdict")
    pr.add_argument("url", help="the registry's base URL, e.g. http://registry.example.org")
    pr.add_argument("image", help="collection/name:tag")
    pr.add_argument("--parallel", type=int, default=5, help="pulls at once after the single one (1..64)")
    pr.add_argument("--iperf3", metavar="HOST[:PORT]", help="an iperf3 server on the registry's host (iperf3 -s there)")
    pr.add_argument("--iperf-seconds", type=int, default=3)
    pr.add_argument("--capture", action="store_true", help="headers-only capture of the single pull (root)")
    pr.add_argument("--ns", help="run inside this network namespace (e.g. a lab's compute node)")
    pr.add_argument("--cacert", metavar="FILE", help="an https registry's CA certificate (default: the system's CAs)")
    pr.add_argument("--deadline", type=float, default=300, help="seconds each pull may take")
    pr.add_argument("--report", metavar="FILE", help="also write an HTML report section")
    pr.set_defaults(fn=cmd_probe)
    sw = sub.add_parser("sweep", help="one knob at a time from a preset; prints the trials and the winner")
    _lab_args(sw)
    sw.add_argument("--knob", action="append", required=True, metavar="GROUP.FIELD=V1,V2",
                    help="a setting and the values to try, e.g. --knob app.serve_mode=fileresponse,accel (repeatable)")
    sw.add_argument("--parallel", type=int, default=5, help="parallel pulls per trial")
    sw.add_argument("--out", help="CSV file for the trials")
    sw.set_defaults(fn=cmd_sweep)
    h = sub.add_parser("heal", help="restart the services of a running lab that died (orphaned workers ended)")
    h.add_argument("--name", default="main")
    h.set_defaults(fn=cmd_heal)
    sm = sub.add_parser("storm", help="a Locust pull storm from many compute nodes (in a lab, or --master/--worker)")
    _storm_args(sm)
    sm.set_defaults(fn=cmd_storm)
    cm = sub.add_parser("cpu-model", help="a CPU model's published speed per OpenSSL code path beside this machine's (masked)")
    cm.add_argument("--model", default="opteron-6174", help="the model (labkit.config.cpu_models)")
    cm.add_argument("--remeasure", action="store_true", help="measure this machine again (not the cached figures)")
    cm.set_defaults(fn=cmd_cpu_model)
    st = sub.add_parser("status", help="the labs on this machine")
    st.set_defaults(fn=cmd_status)
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # unwinds like Ctrl-C: the lab is ended
    try:
        return a.fn(a)
    except (SettingsError, ValueError) as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 2
    except (LabkitError, RuntimeError) as exc:   # a service that would not start, a missing tool, ...
        print(f"labkit: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("labkit: interrupted; the lab was ended", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
