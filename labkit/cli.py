"""`labkit`: bring the lab up or down, look at it, run the per-hop survey."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import click
import pandas as pd

from .lab import ownership as state
from .lab.lab import DATA, MiB, Lab
from .config.overrides import apply_overrides, load_settings, parse_override
from .config.presets import ALIASES, PRESETS, preset
from .config.cpu_models import MODELS as CPU_MODELS
from .errors import LabError, LabkitError, ServiceError, SettingsError
from .measure import iperf
from .measure.survey import run_survey
from .analyze.verdict import verdict
from .analyze.hypotheses import DEADLINE_S as HYPOTHESIS_DEADLINE
from .measure.probe import INSECURE, MAX_DEADLINE_S as MAX_PROBE_DEADLINE, MAX_PARALLEL as MAX_PROBE_PARALLEL
from .measure.locust_storm import MAX_PULLS, MAX_SPAWN_RATE, MAX_USERS
from .path import MAX_COMPUTE_NODES

# --- option types: a value out of range is refused by click, naming the option and its range --------
IMAGE_MIB = click.IntRange(1, 16384)
PARALLEL = click.IntRange(1, 256)
IPERF_SECONDS = click.IntRange(1, iperf.MAX_SECONDS)
PRESET_NAMES = click.Choice(sorted([*PRESETS, *ALIASES]))
VERIFY = click.Choice(["sha256", "length"])


class Override(click.ParamType):
    """`group.field=value`, its setting's name checked (its value is typed and checked against the
    settings it changes, before anything starts)."""
    name = "GROUP.FIELD=VALUE"

    def convert(self, value, param, ctx):
        try:
            parse_override(value)
        except SettingsError as exc:
            self.fail(f"{value!r}: " + str(exc).removeprefix(f"--set {value!r}: "), param, ctx)
        return value


class SettingsFile(click.ParamType):
    """A settings JSON file (from `labkit import` or a bundle), read and checked when it is given."""
    name = "FILE"

    def convert(self, value, param, ctx):
        try:
            load_settings(Path(value))
        except SettingsError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


class Duration(click.ParamType):
    """A run time as Locust writes it (90, 90s, 5m, 1h30m), in seconds."""
    name = "DURATION"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return seconds(value)
        except SettingsError as exc:
            self.fail(str(exc).removeprefix("--run-time "), param, ctx)


def settings_options(fn):
    """--settings FILE and --set GROUP.FIELD=VALUE (repeatable)."""
    fn = click.option("--set", "overrides", type=Override(), multiple=True,
                      help="change one setting, e.g. --set links.nginx=800mbit (repeatable)")(fn)
    return click.option("--settings", type=SettingsFile(),
                        help="settings JSON (from `labkit import` or a bundle) instead of --preset")(fn)


def lab_options(name: str = "main", compute_nodes: int = 1):
    """The options every command that builds a lab takes."""
    def deco(fn):
        for opt in reversed([
            click.option("--name", default=name, show_default=True, help="lab name (namespaces are sl-<name>-<node>)"),
            click.option("--preset", type=PRESET_NAMES, default="sregistry-2018-10", show_default=True,
                         help="settings to start from (sregistry-shipped is an alias of sregistry-2018-10)"),
            settings_options,
            click.option("--image-mib", type=IMAGE_MIB, default=64, show_default=True,
                         help="test image size in MiB (1536 for the seed case)"),
            click.option("--loopback", is_flag=True, help="no namespaces: services on 127.0.0.1 ports"),
            click.option("--compute-nodes", type=click.IntRange(1, MAX_COMPUTE_NODES), default=compute_nodes,
                         show_default=True, metavar="N",
                         help="compute nodes behind one switch and one uplink to the VM (links.wan shapes it)"),
        ]):
            fn = opt(fn)
        return fn
    return deco


def _settings(a):
    """The preset or settings file, with every --set applied; all checked before anything starts."""
    base = load_settings(a.settings) if a.settings else preset(a.preset)
    return apply_overrides(base, a.overrides)


def _label(a) -> str:
    return Path(a.settings).stem if a.settings else a.preset


def _make_lab(a, keep: bool) -> Lab:
    return Lab(a.name, _settings(a), image_size=a.image_mib * MiB,
               namespaced=False if a.loopback else None, keep=keep, compute_nodes=a.compute_nodes)


def cmd_survey(a) -> int:
    lab = _make_lab(a, keep=a.keep)
    lab.up()
    try:
        bad = {k: v for k, v in lab.health().items() if v != "ok"}
        if bad:
            raise LabError("health check failed: " + "; ".join(f"{k}: {v}" for k, v in bad.items()))
        s = run_survey(lab, parallel=a.parallel, iperf_seconds=a.iperf_seconds, verify=a.verify,
                       repeats=a.repeats, progress=not a.json)
        found = None
        if a.fix:                       # the remedies for what binds, tried on this lab before it ends
            from .workflows import fix
            found = fix(lab, verdict(s), parallel=a.parallel, repeats=a.repeats, verify=a.verify,
                        label=f"fix-{_label(a)}", progress=not a.json)
    finally:
        if not a.keep:
            lab.down()
    path = s.save(DATA / "results", f"survey-{_label(a)}")
    if a.json:
        print(json.dumps(survey_json(s, path, found), indent=1))
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(s.table.drop(columns=["through"]).astype(object).fillna("").to_string(index=False))
    for n in s.notes:
        print(f"note: {n}")
    print()
    from .analyze.words import verdict_text
    print(verdict_text(verdict(s), found))
    print(f"\nsaved {path} (+ .json with the settings); survey took {s.meta['wall_s']} s")
    if a.keep:
        print(f"lab '{a.name}' left up: `labkit down --name {a.name}` ends it")
    return 0


def survey_json(s, saved: Path | None = None, found=None) -> dict:
    """The survey's table and its verdict (headline, hop, cause, evidence, next, and `fix` when remedies
    were tried: the settings changed, before_MBps, after_MBps, the bundle) as plain JSON values."""
    from .analyze.words import headline
    v = verdict(s)
    out = v.to_dict()
    if found is not None:
        out["headline"] = headline(v, found)
        out["fix"] = found.to_dict()
    return {"verdict": out, "table": json.loads(s.table.to_json(orient="records")),
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
        table = one_at_a_time(lab, base, typed, parallel=a.parallel, verify="length", repeats=a.repeats)
    cols = [c for c in table.columns if c != "settings"]
    print(table[cols].to_string(index=False))
    last = table[table.step == table.step.iloc[-1]]
    best = last[last.kept].iloc[0] if "kept" in last and last.kept.any() else winner(table)
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


def cmd_hypotheses(a) -> int:
    """The hypotheses table at the seed's sizes, recorded with its wall time (one command for the full run)."""
    import json
    from .workflows import record_hypotheses
    csv = record_hypotheses(a.image_mib, tuple(a.parallel), Path(a.out), a.name, deadline=a.deadline)
    meta = json.loads(csv.with_suffix(".json").read_text())
    import pandas as pd
    t = pd.read_csv(csv)
    cols = [c for c in t.columns if c not in ("explains", "fix")]
    print(t[cols].to_string(index=False))
    print(f"\nlink capacity {meta['link_capacity_MBps']} MB/s; wall {meta['wall_s']} s; fits every observation: "
          f"{', '.join(meta['fits_all']) or 'none'}\nsaved {csv} and {csv.with_suffix('.json')}")
    return 0


def knob_value(base, path: str, raw: str):
    """A knob's value as the settings hold it (typed the way --set types it)."""
    from .config.overrides import apply_overrides
    from .measure.sweep import knob
    return knob(apply_overrides(base, [f"{path}={raw}"]), path)


def cmd_heal(a) -> int:
    """Restart what died in a lab that is up (its own services, by their recorded ids; their orphaned
    workers ended by process group) and say "healed" only once it serves again; else what failed."""
    lab = Lab.attach(a.name)
    rc = 0
    try:
        done = lab.heal()
        print("\n".join(done) if done else f"lab '{a.name}': every service is running; nothing to heal")
    except ServiceError as exc:
        print(exc)
        rc = 1
    for k, v in lab.status().items():
        print(f"  {k:26} {v}")
    return rc


def cmd_down(a) -> int:
    names = sorted({*state.known(), *state.orphan_labs()}) if a.all else [a.name]
    for name in names:
        done = state.end(name)
        print(f"lab '{name}': " + ("; ".join(done) if done else "nothing was running"))
    return 0


def cmd_status(a) -> int:
    """Each lab on this machine, up or stale, and each of its services with one line of health."""
    names = sorted({*state.known(), *state.orphan_labs()})
    stale = set(state.stale())
    if not names:
        print("no labs")
    for name in names:
        st = state.read(name) or {}
        owner = f"owner pid {st['owner']}" if state.owner_alive(st) else "left up by its owner" if st else ""
        print(f"{name}: {'stale: the next lab to start ends it' if name in stale else 'up'}"
              f"{f' ({owner})' if owner else ''}; namespaces {state.lab_namespaces(name)}")
        if "settings" not in st:
            print("  (no state file: nothing known of its services)")
            continue
        for svc, health in Lab.attach(name).status().items():
            print(f"  {svc:26} {health}")
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
    given = {k: Path(v) for k in ("nginx_main", "nginx_server", "uwsgi_ini", "compose", "daemon_json",
                                  "distribution", "harbor_yml", "harbor_nginx") if (v := getattr(a, k))}
    files = SregistryFiles.in_dir(root, **given)
    if not files.given():
        raise SettingsError(f"{root}: none of nginx/nginx.conf, nginx.conf, uwsgi.ini, docker-compose.yml, "
                            "daemon.json, config.yml, harbor.yml, common/config/nginx/nginx.conf is there")
    result = import_files(files)
    out = Path(a.out) if a.out else DATA / "settings" / f"{root.resolve().name or 'imported'}.json"
    print(result.text())
    result.write(out)
    print(f"\nread {', '.join(result.files.values())}\nwrote {out}: "
          f"`labkit survey --settings {out}` (add --set group.field=value to change one)")
    return 0


def cmd_probe(a) -> int:
    """The survey's measurements against a real registry, from here: table, verdict, saved results."""
    from .workflows import run_probe
    from .present.report import probe_section, write_report
    from .workflows import run_oci_probe
    common = dict(parallel=a.parallel, iperf3=a.iperf3, capture=a.capture, ns=a.ns, deadline=a.deadline,
                  timeout=a.timeout, iperf_seconds=a.iperf_seconds, capture_dir=DATA / "captures", cacert=a.cacert,
                  insecure=a.insecure)
    if (a.api or ("sregistry" if a.image else "oci")) == "oci":
        image = a.url if not a.image else a.url.rstrip("/") + "/" + a.image
        p = run_oci_probe(image, user=a.user, platform=a.platform, layers_at_once=a.layers_at_once, **common)
    elif not a.image:
        raise SettingsError("--api sregistry: give URL collection/name:tag (two arguments)")
    else:
        p = run_probe(a.url, a.image, follow_hosts=a.follow_hosts, **common)
    if a.insecure:
        _say_insecure()
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
    from .measure.locust_storm import StormSpec
    return StormSpec(users=a.users, pulls=a.pulls, run_s=a.run_time,
                     spawn_rate=a.spawn_rate, verify=a.verify, sha256=a.sha256,
                     start_together=not a.no_start_line, follow_hosts=a.follow_hosts, insecure=a.insecure,
                     api=a.api, platform=a.platform, layers_at_once=a.layers_at_once).check()


def _say_insecure() -> None:
    """--insecure, said loudly before any result."""
    print(f"{'!' * 100}\n{INSECURE}\n{'!' * 100}")


def _print_storm(storm, label: str, out: Path = DATA / "results") -> None:
    if storm.meta.get("insecure"):
        _say_insecure()
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
    from .measure.locust_storm import run_worker
    from .workflows import run_master, run_storm
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
        from .measure.locust_storm import refusals
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


# --- the commands: options parsed and checked by click, then handed to the cmd_* above ----------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """labkit: bring the lab up or down, look at it, run the per-hop survey."""


def _call(fn_name: str, **options) -> int:
    """Run cmd_<name> (looked up when called) with the parsed options as attributes."""
    return globals()[fn_name](SimpleNamespace(**options))


@cli.command(help="bring the lab up, measure every hop, print the table and the verdict")
@lab_options()
@click.option("--parallel", type=PARALLEL, default=5, show_default=True, help="parallel pulls per vantage point")
@click.option("--iperf-seconds", type=IPERF_SECONDS, default=2, show_default=True, help="per hop, whole seconds")
@click.option("--verify", type=VERIFY, default="sha256", show_default=True,
              help="how pulls are checked; sha256 costs client CPU on paths above ~1 GB/s")
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True,
              help="pulls per vantage point (median and spread; 3 or more)")
@click.option("--json", is_flag=True, help="print the table and the verdict as JSON (nothing else on stdout)")
@click.option("--keep", is_flag=True, help="leave the lab up afterwards (for the notebooks)")
@click.option("--fix", is_flag=True, help="then try the remedies for what binds, each against the settings as "
              "they were (one pull and --parallel, --repeats rounds), and write the winner as a bundle")
def survey(**o) -> int:
    return _call("cmd_survey", **o)


@cli.command(help="bring the lab up and leave it up")
@lab_options()
def up(**o) -> int:
    return _call("cmd_up", **o)


@cli.command(help="end a lab: its processes and namespaces")
@click.option("--name", default="main", show_default=True)
@click.option("--all", "all", is_flag=True, help="every servelab lab on this machine")
def down(**o) -> int:
    return _call("cmd_down", **o)


@cli.command(help="the labs on this machine")
def status(**o) -> int:
    return _call("cmd_status", **o)


@cli.command(help="restart the services of a running lab that died (orphaned workers ended)")
@click.option("--name", default="main", show_default=True)
def heal(**o) -> int:
    return _call("cmd_heal", **o)


@cli.command(help="write a preset (or a re-imported bundle) as a deployable sregistry bundle")
@click.option("--preset", type=PRESET_NAMES, default="recommended", show_default=True)
@settings_options
@click.option("--from", "settings_from", type=click.Path(exists=True),
              help="an exported bundle (dir or .tar.gz) to write again")
@click.option("--label", help="bundle name (default: the preset)")
@click.option("--out", default=str(DATA / "bundles"), show_default=True)
def export(**o) -> int:
    return _call("cmd_export", **o)


@cli.command("import", help="an operator's sregistry files (nginx, uwsgi, compose, daemon.json) into a settings file")
@click.argument("dir", type=click.Path(exists=True, file_okay=False))
@click.option("--nginx-main", type=click.Path(exists=True, dir_okay=False),
              help="the main nginx config (default: DIR/nginx/nginx.conf)")
@click.option("--nginx-server", type=click.Path(exists=True, dir_okay=False),
              help="the server block (default: DIR/nginx.conf, mounted at conf.d/default.conf)")
@click.option("--uwsgi-ini", type=click.Path(exists=True, dir_okay=False), help="default: DIR/uwsgi.ini")
@click.option("--compose", type=click.Path(exists=True, dir_okay=False), help="default: DIR/docker-compose.yml")
@click.option("--daemon-json", type=click.Path(exists=True, dir_okay=False),
              help="Docker's daemon.json (default: DIR/daemon.json if there)")
@click.option("--distribution", type=click.Path(exists=True, dir_okay=False),
              help="distribution's config.yml (default: DIR/config.yml if there)")
@click.option("--harbor-yml", type=click.Path(exists=True, dir_okay=False), help="default: DIR/harbor.yml if there")
@click.option("--harbor-nginx", type=click.Path(exists=True, dir_okay=False),
              help="the nginx.conf Harbor generates (default: DIR/common/config/nginx/nginx.conf if there)")
@click.option("--out", help="the settings file to write (default: data/settings/<DIR's name>.json)")
def import_(**o) -> int:
    return _call("cmd_import", **o)


@cli.command(help="survey, TCP windows, presets compared and the bundle, as one HTML file")
@click.option("--name", default="report", show_default=True)
@click.option("--image-mib", type=IMAGE_MIB, default=64, show_default=True)
@click.option("--parallel", type=PARALLEL, multiple=True, default=(1, 5), show_default=True,
              help="a parallel pull count to compare (repeatable: --parallel 1 --parallel 5)")
@click.option("--preset", type=PRESET_NAMES, default="sregistry-2018-10", show_default=True,
              help="settings the survey runs under")
@settings_options
def report(**o) -> int:
    return _call("cmd_report", **o)


@cli.command(help="measure a real registry from here: manifest, pulls 1 and N, tcp_info, verdict. An OCI registry: "
                  "one argument, http[s]://host[:port]/repo/name:tag; sregistry: URL collection/name:tag")
@click.argument("url")
@click.argument("image", required=False)
@click.option("--api", type=click.Choice(["oci", "sregistry"]),
              help="the registry's API (default: OCI for one argument, sregistry for two)")
@click.option("--user", metavar="USER:PASSWORD", help="OCI: Basic credentials, also sent to a token service "
              "(default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json, else anonymous)")
@click.option("--platform", default="linux/amd64", show_default=True, help="OCI: the image chosen from an index")
@click.option("--layers-at-once", type=click.IntRange(1, 32), default=6, show_default=True,
              help="OCI: layers fetched at once per pull (containers/image's default is 6)")
@click.option("--parallel", type=click.IntRange(1, MAX_PROBE_PARALLEL), default=5, show_default=True,
              help="pulls at once after the single one")
@click.option("--iperf3", metavar="HOST[:PORT]", help="an iperf3 server on the registry's host (iperf3 -s there)")
@click.option("--iperf-seconds", type=IPERF_SECONDS, default=3, show_default=True)
@click.option("--capture", is_flag=True, help="headers-only capture of the single pull (root)")
@click.option("--ns", help="run inside this network namespace (e.g. a lab's compute node)")
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False),
              help="an https registry's CA certificate (default: REQUESTS_CA_BUNDLE, SSL_CERT_FILE, the system's CAs)")
@click.option("--insecure", is_flag=True, help="https: do NOT check the certificate (said loudly in every output)")
@click.option("--follow-hosts", is_flag=True,
              help="fetch an image URL or follow a redirect that names another host (default: the given host only)")
@click.option("--deadline", type=click.FloatRange(1, MAX_PROBE_DEADLINE), default=300, show_default=True,
              help="seconds each pull may take")
@click.option("--timeout", type=click.FloatRange(0.5, 600), default=30, show_default=True,
              help="seconds to wait for a connection, or for the next bytes of a response, before giving up")
@click.option("--report", metavar="FILE", help="also write an HTML report section")
def probe(**o) -> int:
    return _call("cmd_probe", **o)


@cli.command(help="one knob at a time from a preset; prints the trials and the winner")
@lab_options()
@click.option("--knob", type=Override(), multiple=True, required=True, metavar="GROUP.FIELD=V1,V2",
              help="a setting and the values to try, e.g. --knob app.serve_mode=fileresponse,accel (repeatable)")
@click.option("--parallel", type=PARALLEL, default=5, show_default=True, help="parallel pulls per trial")
@click.option("--repeats", type=click.IntRange(1, 20), default=1, show_default=True,
              help="repeats per trial (3 or more: a knob keeps its first value unless another beats it beyond the spread)")
@click.option("--out", help="CSV file for the trials")
def sweep(**o) -> int:
    return _call("cmd_sweep", **o)


@cli.command(help="each explanation of the seed made real, at 1 and N pulls, judged, and recorded with its wall time "
                  "in data/recorded (the seed's sizes by default)")
@click.option("--name", default="hyp", show_default=True, help="lab name")
@click.option("--image-mib", type=IMAGE_MIB, default=1536, show_default=True,
              help="image size; a hypothesis that needs more gets its own minimum")
@click.option("--parallel", type=PARALLEL, multiple=True, default=(1, 5, 40), show_default=True,
              help="pull counts (repeatable; the seed's 1, 5, 40)")
@click.option("--out", default=str(DATA / "recorded"), show_default=True,
              help="directory for hypotheses-<size>MiB.csv and .json")
@click.option("--deadline", type=click.FloatRange(10, 3600), default=HYPOTHESIS_DEADLINE, show_default=True,
              help="seconds each pull may run; a pull still running then is a timeout, its bytes counted")
def hypotheses(**o) -> int:
    return _call("cmd_hypotheses", **o)


@cli.command(help="a Locust pull storm from many compute nodes (in a lab, or --master/--worker)")
@lab_options(name="storm", compute_nodes=4)
@click.option("--users", type=click.IntRange(1, MAX_USERS), default=40, show_default=True,
              help="simulated Singularity clients in all")
@click.option("--spawn-rate", type=click.FloatRange(0, MAX_SPAWN_RATE, min_open=True),
              help="users started per second (default: all at once)")
@click.option("--pulls", type=click.IntRange(0, MAX_PULLS), default=0, show_default=True,
              help="stop after this many pulls in all")
@click.option("--run-time", type=Duration(), help="stop after this long (90s, 5m); with --pulls, whichever comes first")
@click.option("--verify", type=VERIFY, default="sha256", show_default=True)
@click.option("--sha256", default="", help="the image's sha256 (default: the manifest's version)")
@click.option("--no-start-line", is_flag=True, help="first pulls start as users spawn, not together")
@click.option("--on", metavar="NAME", help="storm a lab that is already up (`labkit up --compute-nodes N`)")
@click.option("--keep", is_flag=True, help="leave the lab up afterwards")
@click.option("--report", metavar="FILE.html", help="also write the storm as an HTML report")
@click.option("--master", is_flag=True, help="on a real cluster: run the Locust master here, against --url")
@click.option("--worker", is_flag=True, help="on a real cluster: run a Locust worker here (on a compute node)")
@click.option("--url", help="master: the registry, http://host:port")
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False),
              help="master: an https registry's CA file (the same path on every worker; default: "
                   "REQUESTS_CA_BUNDLE, SSL_CERT_FILE, the system's CAs)")
@click.option("--insecure", is_flag=True, help="master: https without checking the certificate (said loudly)")
@click.option("--follow-hosts", is_flag=True,
              help="master: pulls may go where an image URL or a redirect on another host points")
@click.option("--image", help="master: collection/name:tag to pull (--api oci: repo/name:tag)")
@click.option("--api", type=click.Choice(["sregistry", "oci"]), default="sregistry", show_default=True,
              help="master: the registry's API; oci pulls as an OCI client (credentials from $REGISTRY_AUTH_FILE "
                   "or ~/.docker/config.json on each worker)")
@click.option("--platform", default="linux/amd64", show_default=True, help="master, oci: the image chosen from an index")
@click.option("--layers-at-once", type=click.IntRange(1, 32), default=6, show_default=True,
              help="master, oci: layers fetched at once per pull (containers/image's default is 6)")
@click.option("--workers", type=click.IntRange(min=1), help="master: how many workers to wait for")
@click.option("--bind-host", default="*", show_default=True, help="master: address to listen on for workers")
@click.option("--master-host", help="worker: the master's host")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
@click.option("--node", help="worker: this compute node's name in the tables (default: hostname)")
@click.option("--out", default=str(DATA / "results"), show_default=True, help="master: where the pull records go")
def storm(**o) -> int:
    return _call("cmd_storm", **o)


@cli.command("cpu-model", help="a CPU model's published speed per OpenSSL code path beside this machine's (masked)")
@click.option("--model", type=click.Choice(sorted(CPU_MODELS)), default="opteron-6174", show_default=True,
              help="the model (labkit.config.cpu_models)")
@click.option("--remeasure", is_flag=True, help="measure this machine again (not the cached figures)")
def cpu_model(**o) -> int:
    return _call("cmd_cpu_model", **o)


def main(argv: list[str] | None = None) -> int:
    """The `labkit` command: its exit status (2: refused arguments or settings, 1: a failure, 130: Ctrl-C)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # unwinds like Ctrl-C: the lab is ended
    try:
        rc = cli.main(args=argv, prog_name="labkit", standalone_mode=False)
    except click.ClickException as exc:         # a bad option or value: named, with its range
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.Abort):     # (click turns Ctrl-C into Abort, a RuntimeError)
        print("labkit: interrupted; the lab was ended", file=sys.stderr)
        return 130
    except (SettingsError, ValueError) as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 2
    except (LabkitError, RuntimeError) as exc:   # a service that would not start, a missing tool, ...
        print(f"labkit: {exc}", file=sys.stderr)
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
