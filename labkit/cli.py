"""`labkit`: bring the lab up or down, look at it, run the experiments (the survey first).

Each command is click's own: click parses and checks its options (a value out of range is refused naming
the option and its range), the command builds its experiment's declaration and hands it to the one runner
(labkit.experiments.run), or calls a thin helper. `labkit run NAME` runs any declared experiment.

Five imports wait inside the commands that need them, so that `labkit --help` and the other commands start
without them: bokeh (the HTML report: `report`, `probe --report`, `storm --report`), scapy (the capture
reader: `report`, `probe`), crossplane and the directive tables (`import`).
"""
from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import click
import pandas as pd

from . import _default_logging, verbosity
from .config.cpu_models import MODELS as CPU_MODELS, model as cpu_model_of
from .config.overrides import apply_overrides, load_settings, parse_override
from .config.presets import ALIASES, PRESETS
from .bundle.export import import_bundle
from .errors import LabkitError, ServiceError, SettingsError
from .experiments import DECLARED, Experiment, declared, run
from .experiments.bundles import export_bundle
from .experiments.hypotheses import HYPOTHESES
from .experiments.storm import STORM, run_master, storm_text
from .experiments.runner import lab_for
from .experiments.survey import SURVEY, survey_json
from .experiments.sweep import SWEEP, best_of, knobs_of
from .lab.host import ownership as state
from .lab.conditions.cpu_emulation import compare, host_name, openssl_version
from .lab.lab import DATA, Lab
from .analyze.hypotheses import DEADLINE_S as HYPOTHESIS_DEADLINE, rulebook
from .measure import iperf
from .measure.locust_storm import MAX_PULLS, MAX_SPAWN_RATE, MAX_USERS, StormSpec, refusals, run_worker
from .measure.probe import MAX_DEADLINE_S as MAX_PROBE_DEADLINE, MAX_PARALLEL as MAX_PROBE_PARALLEL
from .path import MAX_COMPUTE_NODES
from .units import GiB, MiB, SizeError, format_size, parse_size

# --- option types: a value out of range is refused by click, naming the option and its range --------
PARALLEL = click.IntRange(1, 256)
IPERF_SECONDS = click.IntRange(1, iperf.MAX_SECONDS)
PRESET_NAMES = click.Choice(sorted([*PRESETS, *ALIASES]))
VERIFY = click.Choice(["sha256", "length"])
REPEATS = click.IntRange(1, 20)


class Size(click.ParamType):
    """A size as a person gives it (labkit.units.parse_size): 64MiB, 1.5GiB, or a number of MiB; bytes inside."""
    name = "SIZE"

    def __init__(self, low: int = MiB, high: int = 16 * GiB):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        try:
            n = parse_size(value)
        except SizeError as exc:
            self.fail(str(exc), param, ctx)
        if not self.low <= n <= self.high:
            self.fail(f"{value!r} ({format_size(n)}) is not in the range {format_size(self.low)} to "
                      f"{format_size(self.high)}", param, ctx)
        return n


IMAGE_SIZE = Size()


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


def seconds(text: str) -> float:
    """A run time as Locust writes it: 90, 90s, 5m, 1h30m."""
    m = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text or "")
    if not text or not m or not any(m.groups()):
        raise SettingsError(f"--run-time {text!r}: write seconds or e.g. 90s, 5m, 1h30m")
    h, mi, sec = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(sec or 0)


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


def image_size_option(default: str | None = "64MiB", help: str = "test image size: 64MiB, 1.5GiB, or a number of MiB"):
    """--image-size SIZE, with --image-mib N its alias (a bare number is MiB)."""
    return click.option("--image-size", "--image-mib", "image_size", type=IMAGE_SIZE, default=default,
                        show_default=default is not None, help=help)


def lab_options(name: str | None = "main", compute_nodes: int | None = 1, preset: str | None = "sregistry-2018-10",
                image_size: str | None = "64MiB"):
    """The options every command that builds a lab takes (a default of None: the declaration's own)."""
    def deco(fn):
        for opt in reversed([
            click.option("--name", default=name, show_default=name is not None,
                         help="lab name (namespaces are sl-<name>-<node>)"),
            click.option("--preset", type=PRESET_NAMES, default=preset, show_default=preset is not None,
                         help="settings to start from (sregistry-shipped is an alias of sregistry-2018-10)"),
            settings_options,
            image_size_option(image_size, "test image size: 64MiB, 1.5GiB, or a number of MiB (1536 for the seed case)"),
            click.option("--loopback", is_flag=True, help="no namespaces: services on 127.0.0.1 ports"),
            click.option("--compute-nodes", type=click.IntRange(1, MAX_COMPUTE_NODES), default=compute_nodes,
                         show_default=compute_nodes is not None, metavar="N",
                         help="compute nodes behind one switch and one uplink to the VM (links.wan shapes it)"),
        ]):
            fn = opt(fn)
        return fn
    return deco


def on_lab(name=None, preset=None, settings=None, overrides=(), image_size=None, loopback=False,
           compute_nodes=None) -> dict:
    """The lab options as a declaration's fields (those not given keep the declaration's)."""
    given = {"lab_name": name, "settings": Path(settings) if settings else preset, "image_size": image_size,
             "compute_nodes": compute_nodes, "overrides": tuple(overrides) or None,
             "namespaced": False if loopback else None}
    return {k: v for k, v in given.items() if v is not None}


BARE = Experiment("lab", "the lab and nothing measured", None)


# --- the commands -----------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", count=True, help="the lab's routine messages too (-vv: everything)")
def cli(verbose: int) -> None:
    """labkit: bring the lab up or down, look at it, run the per-hop survey."""
    _default_logging(verbosity(verbose))


@cli.command(help="bring the lab up, measure every hop, print the table and the verdict")
@lab_options()
@click.option("--parallel", type=PARALLEL, default=5, show_default=True, help="parallel pulls per vantage point")
@click.option("--iperf-seconds", type=IPERF_SECONDS, default=2, show_default=True, help="per hop, whole seconds")
@click.option("--verify", type=VERIFY, default="sha256", show_default=True,
              help="how pulls are checked; sha256 costs client CPU on paths above ~1 GB/s")
@click.option("--repeats", type=REPEATS, default=3, show_default=True,
              help="pulls per vantage point (median and spread; 3 or more)")
@click.option("--json", "as_json", is_flag=True, help="print the table and the verdict as JSON (nothing else on stdout)")
@click.option("--wide", is_flag=True, help="every column of the table (the CSV and JSON always keep them all)")
@click.option("--keep", is_flag=True, help="leave the lab up afterwards (for the notebooks)")
@click.option("--fix", is_flag=True, help="then try the remedies for what binds, each against the settings as "
              "they were (one pull and --parallel, --repeats rounds), and write the winner as a bundle")
def survey(parallel, iperf_seconds, verify, repeats, as_json, wide, keep, fix, **lab) -> int:
    exp = SURVEY.with_(**on_lab(**lab), parallels=(1, parallel), repeats=repeats,
                       options={"iperf_seconds": iperf_seconds, "verify": verify, "fix": fix, "wide": wide})
    out = run(exp, keep=keep, progress=not as_json)
    if as_json:
        print(json.dumps(survey_json(out.result.survey, out.saved, out.result.fix), indent=1))
    else:
        print(exp.text(out))
    return 0


@cli.command("run", help="run a declared experiment: " + ", ".join(DECLARED))
@click.argument("experiment", type=click.Choice(list(DECLARED)))
@lab_options(name=None, compute_nodes=None, preset=None, image_size=None)
@click.option("--parallel", type=PARALLEL, multiple=True, help="pull counts (repeatable; default: the declaration's)")
@click.option("--repeats", type=REPEATS, help="repeats (default: the declaration's)")
@click.option("--keep", is_flag=True, help="leave the lab up afterwards")
@click.option("--only", multiple=True, help="the parts whose name contains this (repeatable; the contest's "
              "hypotheses, seed-fixes' fixes; default: all)")
def run_(experiment, parallel, repeats, keep, only, **lab) -> int:
    exp = declared(experiment)
    exp = exp.with_(**on_lab(**lab), **({"parallels": tuple(parallel)} if parallel else {}),
                    **({"repeats": repeats} if repeats else {}), **({"options": {"only": only}} if only else {}))
    out = run(exp, keep=keep)
    print(exp.text(out) if exp.text else f"{exp.name}: done in {out.wall_s} s; saved {out.saved}")
    return 0


@cli.command(help="bring the lab up and leave it up")
@lab_options()
def up(**lab) -> int:
    it = lab_for(BARE.with_(**on_lab(**lab)), keep=True).up()
    print(pd.DataFrame(it.describe()).to_string(index=False))
    for k, v in it.health().items():
        print(f"{k:28} {v}")
    print(f"lab '{it.name}' is up; `labkit down --name {it.name}` ends it")
    return 0


@cli.command(help="end a lab: its processes and namespaces")
@click.option("--name", default="main", show_default=True)
@click.option("--all", "every", is_flag=True, help="every servelab lab on this machine")
def down(name, every) -> int:
    for lab in sorted({*state.known(), *state.orphan_labs()}) if every else [name]:
        done = state.end(lab)
        print(f"lab '{lab}': " + ("; ".join(done) if done else "nothing was running"))
    return 0


@cli.command(help="the labs on this machine")
def status() -> int:
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


@cli.command(help="restart the services of a running lab that died (orphaned workers ended)")
@click.option("--name", default="main", show_default=True)
def heal(name) -> int:
    """Restart what died in a lab that is up (its own services, by their recorded ids; their orphaned
    workers ended by process group) and say "healed" only once it serves again; else what failed."""
    lab = Lab.attach(name)
    rc = 0
    try:
        done = lab.heal()
        print("\n".join(done) if done else f"lab '{name}': every service is running; nothing to heal")
    except ServiceError as exc:
        print(exc)
        rc = 1
    for k, v in lab.status().items():
        print(f"  {k:26} {v}")
    return rc


@cli.command(help="write a preset (or a re-imported bundle) as a deployable sregistry bundle")
@click.option("--preset", type=PRESET_NAMES, default="recommended", show_default=True)
@settings_options
@click.option("--from", "settings_from", type=click.Path(exists=True),
              help="an exported bundle (dir or .tar.gz) to write again")
@click.option("--label", help="bundle name (default: the preset)")
@click.option("--out", default=str(DATA / "bundles"), show_default=True)
def export(preset, settings, overrides, settings_from, label, out) -> int:
    s = (apply_overrides(import_bundle(settings_from), list(overrides)) if settings_from
         else BARE.with_(**on_lab(preset=preset, settings=settings, overrides=overrides)).lab_settings())
    bundle, tar = export_bundle(s, out, label or (Path(settings).stem if settings else preset))
    print(f"bundle: {bundle}\narchive: {tar}\n(checked with nginx -t and uwsgi; see its README.md)")
    return 0


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
def import_(dir, out, **given) -> int:
    """An operator's sregistry files -> a settings file; every directive modelled or ignored, with why."""
    from .config.importer import SregistryFiles, import_files    # crossplane and the directive tables: only here
    root = Path(dir)
    files = SregistryFiles.in_dir(root, **{k: Path(v) for k, v in given.items() if v})
    if not files.given():
        raise SettingsError(f"{root}: none of nginx/nginx.conf, nginx.conf, uwsgi.ini, docker-compose.yml, "
                            "daemon.json, config.yml, harbor.yml, common/config/nginx/nginx.conf is there")
    result = import_files(files)
    out = Path(out) if out else DATA / "settings" / f"{root.resolve().name or 'imported'}.json"
    print(result.text())
    result.write(out)
    print(f"\nread {', '.join(result.files.values())}\nwrote {out}: "
          f"`labkit survey --settings {out}` (add --set group.field=value to change one)")
    return 0


@cli.command(help="survey, TCP windows, presets compared and the bundle, as one HTML file")
@click.option("--name", default="report", show_default=True)
@image_size_option()
@click.option("--parallel", type=PARALLEL, multiple=True, default=(1, 5), show_default=True,
              help="a parallel pull count to compare (repeatable: --parallel 1 --parallel 5)")
@click.option("--preset", type=PRESET_NAMES, default="sregistry-2018-10", show_default=True,
              help="settings the survey runs under")
@settings_options
def report(name, image_size, parallel, **settings) -> int:
    from .experiments.reports import REPORT      # bokeh and scapy: imported only for the report
    out = run(REPORT.with_(**on_lab(name=name, image_size=image_size, **settings), parallels=tuple(parallel)))
    print(REPORT.text(out))
    return 0


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
def probe(url, image, report, api, user, platform, layers_at_once, follow_hosts, **kw) -> int:
    """The survey's measurements against a real registry, from here: table, verdict, saved results."""
    from .experiments.probe import probe_text, run_oci_probe, run_probe   # the capture reader (scapy): only here
    if (api or ("sregistry" if image else "oci")) == "oci":
        target = url if not image else url.rstrip("/") + "/" + image
        p = run_oci_probe(target, user=user, platform=platform, layers_at_once=layers_at_once,
                          capture_dir=DATA / "captures", **kw)
    elif not image:
        raise SettingsError("--api sregistry: give URL collection/name:tag (two arguments)")
    else:
        p = run_probe(url, image, capture_dir=DATA / "captures", follow_hosts=follow_hosts, **kw)
    print(probe_text(p, p.save(DATA / "results", "probe"), kw["insecure"]))
    if report:
        from .present.report import probe_section, write_report     # bokeh: only for the report
        print(f"report: {write_report(Path(report), [probe_section(p)], title=f'servelab probe: {p.target}')}")
    return 0


@cli.command(help="one knob at a time from a preset; prints the trials and the winner")
@lab_options()
@click.option("--knob", type=Override(), multiple=True, required=True, metavar="GROUP.FIELD=V1,V2",
              help="a setting and the values to try, e.g. --knob app.serve_mode=fileresponse,accel (repeatable)")
@click.option("--parallel", type=PARALLEL, default=5, show_default=True, help="parallel pulls per trial")
@click.option("--repeats", type=REPEATS, default=1, show_default=True,
              help="repeats per trial (3 or more: a knob keeps its first value unless another beats it beyond the spread)")
@click.option("--out", help="CSV file for the trials (default: data/results/<time>-sweep-<preset>.csv)")
def sweep(knob, parallel, repeats, out, **lab) -> int:
    """One knob at a time from a preset: each knob's values tried with the others at their best so far."""
    exp = SWEEP.with_(**on_lab(**lab), parallels=(1, parallel), repeats=repeats)
    exp = exp.with_(options={"knobs": knobs_of(knob, exp.lab_settings()), "out": out})   # checked before the lab
    done = run(exp)
    print(exp.text(done))
    return 0 if best_of(done.result) is not None else 1


@cli.command(help="each explanation of the seed made real, at 1 and N pulls, judged, and recorded with its wall time "
                  "in data/recorded (the seed's sizes by default)")
@click.option("--name", default="hyp", show_default=True, help="lab name")
@image_size_option("1536MiB", "image size; a hypothesis that needs more gets its own minimum")
@click.option("--parallel", type=PARALLEL, multiple=True, default=(1, 5, 40), show_default=True,
              help="pull counts (repeatable; the seed's 1, 5, 40)")
@click.option("--out", default=str(DATA / "recorded"), show_default=True,
              help="directory for hypotheses-<size>MiB.csv and .json")
@click.option("--deadline", type=click.FloatRange(10, 3600), default=HYPOTHESIS_DEADLINE, show_default=True,
              help="seconds each pull may run; a pull still running then is a timeout, its bytes counted")
def hypotheses(name, image_size, parallel, out, deadline) -> int:
    """The hypotheses table at the seed's sizes, recorded with its wall time (one command for the full run)."""
    done = run(HYPOTHESES.with_(lab_name=name, image_size=image_size, parallels=tuple(parallel),
                                options={"out_dir": out, "deadline": deadline}))
    print(HYPOTHESES.text(done))
    return 0


@cli.command(help="the contest at the seed's scale: every hypothesis through the rulebook's runs, judged alike")
@click.option("--name", default="contest", show_default=True, help="lab name (one lab per hypothesis, in turn)")
@image_size_option("128MiB", "the image every hypothesis pulls (the seed's 1.5 GiB is too slow here)")
@click.option("--only", multiple=True, metavar="WORDS",
              help="the hypotheses whose name contains WORDS (repeatable; default: all); merged into the record")
@click.option("--k", "k", type=click.FloatRange(1, 64), help="the time dilation (default: the smallest whole k "
              "at which the seed's 8 vCPUs take at most half this machine's cores)")
@click.option("--check", "checks", multiple=True, type=click.Choice(list(rulebook())), metavar="CHECK",
              help="only the runs that measure this check of the rulebook (repeatable; default: every run); merged "
                   "into the record, replacing only those runs' rows")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), help="run only the hypotheses whose runs "
              "are estimated to end within this many minutes, at their own rates in --rates-from, fastest first; "
              "the others are said in the record's JSON (not_run: the estimate and why), and not run")
@click.option("--rates-from", type=click.Path(exists=True, dir_okay=False), help="with --max-minutes: a recorded "
              "contest's CSV whose measured rates the estimate takes (default: this contest's record)")
@click.option("--estimate", is_flag=True, help="print k, its reason and the estimated wall time, and start nothing")
@click.option("--out-dir", type=click.Path(file_okay=False), help="record in this directory instead of data/recorded "
              "(a check made beside the record, e.g. at another CPU ratio, is not merged into it)")
def contest(name, image_size, only, checks, max_minutes, rates_from, k, estimate, out_dir) -> int:
    """One lab per hypothesis, the rulebook's runs in each, recorded in data/recorded/contest-<size>MiB-k<k>.csv."""
    from .experiments.contest import CONTEST, budget, estimate as wall, record_not_run
    exp = CONTEST.with_(lab_name=name, image_size=image_size, options={"only": only or None, "k": k,
                                                                      "checks": checks or None, "out_dir": out_dir})
    if max_minutes:
        keep, over = budget(exp, max_minutes * 60, rates_from)
        for n, v in over.items():
            print(f"not run: {n}: {v['why']}")
        if not estimate and over:
            print(f"said in {record_not_run(exp, over)}")
        if not keep:
            return 0
        exp = exp.with_(options={"only": tuple(keep)})
    if estimate:
        k_, secs, why = wall(exp)
        print(f"{why}\nestimated wall time at the seed's own rates: {secs / 60:.0f} min")
        return 0
    print(exp.text(run(exp)))
    return 0


@cli.command(help="a Locust pull storm from many compute nodes (in a lab, or --master/--worker)")
@lab_options(name="storm", compute_nodes=4)
@click.option("--users", type=click.IntRange(1, MAX_USERS), default=40, show_default=True,
              help="simulated clients in all (Singularity's, or OCI's on an OCI lab)")
@click.option("--spawn-rate", type=click.FloatRange(0, MAX_SPAWN_RATE, min_open=True),
              help="users started per second (default: all at once)")
@click.option("--pulls", type=click.IntRange(0, MAX_PULLS), default=0, show_default=True,
              help="stop after this many pulls in all")
@click.option("--run-time", type=Duration(), help="stop after this long (90s, 5m); with --pulls, whichever comes first")
@click.option("--verify", type=VERIFY, default="sha256", show_default=True)
@click.option("--sha256", default="", help="the image's sha256 (default: the manifest's version); oci: the "
              "manifest's digest, hex (default in a lab: the one it pushed)")
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
@click.option("--api", type=click.Choice(["sregistry", "oci"]),
              help="the registry's API (default: in a lab, what its registry.kind serves: oci for distribution; "
                   "master: sregistry); oci pulls as an OCI client (a master's workers read credentials from "
                   "$REGISTRY_AUTH_FILE or ~/.docker/config.json)")
@click.option("--platform", default="linux/amd64", show_default=True, help="oci: the image chosen from an index")
@click.option("--layers-at-once", type=click.IntRange(1, 32), default=6, show_default=True,
              help="oci: layers fetched at once per pull (containers/image's default is 6)")
@click.option("--no-keep-alive", is_flag=True, help="oci: a new connection for every request of a pull (default: "
              "a pull's requests share keep-alive connections, as containers/image's do)")
@click.option("--workers", type=click.IntRange(min=1), help="master: how many workers to wait for")
@click.option("--bind-host", default="*", show_default=True, help="master: address to listen on for workers")
@click.option("--master-host", help="worker: the master's host")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
@click.option("--node", help="worker: this compute node's name in the tables (default: hostname)")
@click.option("--out", default=str(DATA / "results"), show_default=True, help="master: where the pull records go")
def storm(users, spawn_rate, pulls, run_time, verify, sha256, no_start_line, on, keep, report, master, worker, url,
          cacert, insecure, follow_hosts, image, api, platform, layers_at_once, no_keep_alive, workers, bind_host,
          master_host, master_port, node, out, **lab) -> int:
    """A Locust pull storm: in a lab (default), or as the master or a worker on a real cluster."""
    if worker and master:
        raise SettingsError("storm: --master or --worker, not both")
    if worker:
        if not master_host:
            raise SettingsError("storm --worker needs --master-host (the host running `labkit storm --master`)")
        return run_worker(master_host, master_port, node)
    spec = StormSpec(users=users, pulls=pulls, run_s=run_time, spawn_rate=spawn_rate, verify=verify, sha256=sha256,
                     start_together=not no_start_line, follow_hosts=follow_hosts, insecure=insecure, api=api or "",
                     platform=platform, layers_at_once=layers_at_once, keep_alive=not no_keep_alive).check()
    if master:
        if not (url and image and workers):
            raise SettingsError("storm --master needs --url http://registry:port, --image collection/name:tag "
                                "and --workers N")
        result = run_master(url, image, spec, workers, Path(out), bind_host, master_port, cacert)
        print(storm_text(result, result.save(Path(out), "storm")))
    else:
        exp = STORM.with_(**on_lab(**lab), options={"spec": spec, "out": out})
        attached = Lab.attach(on) if on else None
        if problems := refusals(attached.settings if attached else exp.lab_settings(), spec.api):
            raise SettingsError("storm: " + "; ".join(problems))
        done = run(exp, on=attached, keep=keep)
        result = done.result
        if report:
            from .present.report import storm_section, write_report     # bokeh: only for the report
            print(f"report: {write_report(Path(report), [storm_section(result)], 'servelab: a pull storm')}")
        print(exp.text(done))
    return 0 if result.row()["harness_failures"] == 0 else 1


@cli.command("cpu-model", help="a CPU model's published speed per OpenSSL code path beside this machine's (masked)")
@click.option("--model", type=click.Choice(sorted(CPU_MODELS)), default="opteron-6174", show_default=True,
              help="the model (labkit.config.cpu_models)")
@click.option("--remeasure", is_flag=True, help="measure this machine again (not this table's cached figures)")
def cpu_model(model, remeasure) -> int:
    """A CPU model's published speed per OpenSSL code path beside this machine's, masked as the lab masks it."""
    rows, mask = compare(model, DATA / "run" / "cpu-speed.json", remeasure)
    m = cpu_model_of(model)
    print(f"{model}: {m.clock_ghz} GHz ({m.clock_source}); features: {m.features_source}")
    print(f"this machine: {host_name()}, {openssl_version()}; OPENSSL_ia32cap={mask.env}")
    print(f"  hidden from OpenSSL: {', '.join(mask.masked) or 'nothing'}")
    print(f"  the model has, this machine lacks: {', '.join(mask.lacking) or 'nothing'}")
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_colwidth", 400):
        print(table.drop(columns=["source"]).to_string(index=False))
    for r in rows:
        print(f"  {r['code path']}: {r['source']}")
    print("openssl speed -evp <path> -bytes 16384, best of 3 one-second runs (cached for this table only; "
          "--remeasure to redo). A lab measures its code path afresh when it starts and slows each process by that "
          "ratio (lk.cpu_ratio(lab) says it, and how busy the machine was).")
    return 0


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
