"""The CPU ratio a run used, read back from the run itself: a lab, a survey, or a recorded JSON.

    lk.cpu_ratio(lab)                                   # the lab's own, measured when it started
    lk.cpu_ratio(survey)                                # what the survey recorded (its meta's cpu_model)
    lk.cpu_ratio("data/recorded/contest-128MiB-k4.json")   # the contest's: its machine's ratio, the notes' figure

gives {"ratio", "model", "path", "mask", "host_mbps", "model_mbps", "runs_mbps", "others_cores", "busy", "when",
"source", "text"} (a figure the record lacks is None), or None when the run used no CPU model. `text` is one
line a notebook prints beside the numbers it shows. A record whose parts measured different figures (a contest
merged from runs on other days) gives each in "parts" and says so in `text`. Pure: files and dicts in.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from ..config.cpu_speed import NOTE_PREFIX, parse_note

_PUBLISHED = re.compile(r"^cpu\.model (\S+):.*published ([\d.]+) MB/s per core.* masked path ([\d.]+) MB/s")


def _lines(notes) -> list[tuple[str, str]]:
    """(part, line) for every note: a list (a survey's) or a dict of lists by part (the contest's)."""
    if isinstance(notes, dict):
        return [(part, line) for part, lines in notes.items() for line in lines]
    return [("", line) for line in notes or []]


def _from_emulation(emu: dict | None) -> dict | None:
    if not emu or emu.get("model", "host") == "host" or "ratio" not in emu:
        return None
    sp = emu.get("speed") or {}
    return {"ratio": emu["ratio"], "model": emu["model"], "path": emu.get("path"), "mask": emu.get("mask"),
            "host_mbps": emu.get("host_mbps"), "model_mbps": emu.get("model_mbps"), "runs_mbps": sp.get("runs_mbps"),
            "others_cores": sp.get("others_cores"), "busy": sp.get("busy"), "when": sp.get("when"),
            "source": sp.get("source")}


def _from_contest(meta: dict) -> dict | None:
    ratio = (meta.get("machine") or {}).get("ratio")
    if ratio is None:
        return None
    speeds, model = {}, {}
    for part, line in _lines(meta.get("notes")):
        if line.startswith(NOTE_PREFIX) and (sp := parse_note(line)):
            speeds[part] = sp
        elif m := _PUBLISHED.match(line):
            model = {"model": m.group(1), "model_mbps": float(m.group(2)), "host_mbps": float(m.group(3))}
    out = {"ratio": ratio, "model": model.get("model") or meta["machine"].get("cpu_model"),
           "model_mbps": model.get("model_mbps"), "host_mbps": model.get("host_mbps")}
    figures = {(s.mbps, s.when) for s in speeds.values()}
    if speeds:
        sp = next(iter(speeds.values()))
        out |= {"path": sp.path, "mask": sp.mask, "host_mbps": sp.mbps, "runs_mbps": list(sp.runs_mbps),
                "others_cores": sp.others_cores, "busy": any(s.busy for s in speeds.values()), "when": sp.when,
                "source": sp.source}
    if len(figures) > 1:
        out["parts"] = {p: asdict(s) for p, s in speeds.items()}
    return out


def _text(r: dict) -> str:
    what = f"{r['model']}, {r['path']}" if r.get("path") else r["model"]
    line = f"CPU ratio {r['ratio']:.2f} ({what}"
    if r.get("host_mbps") is not None and r.get("model_mbps") is not None:
        line += f": this machine {r['host_mbps']:.1f} MB/s masked / the model's published {r['model_mbps']:.1f}"
    line += ")"
    if r.get("when"):
        line += (f", {r['source']} {r['when']}; other processes meanwhile {r['others_cores']:.2f} cores: "
                 f"{'BUSY, the ratio may be low' if r['busy'] else 'quiet'}")
    else:
        line += ": recorded before the ratio was measured at lab start (no busy figure)"
    if r.get("parts"):
        line += f"; NOT one figure: its parts measured {len(r['parts'])} ({', '.join(r['parts'])})"
    return line


def cpu_ratio(source) -> dict | None:
    """The CPU ratio the run `source` used (a Lab, a Survey, a recorded JSON's path or its dict), with the
    measurement it came from and one line of text; None when the run had no CPU model."""
    if hasattr(source, "cpu") and hasattr(source.cpu, "info"):        # a lab
        r = _from_emulation(source.cpu.info())
    elif hasattr(source, "meta") and isinstance(source.meta, dict):    # a Survey
        r = _from_emulation(source.meta.get("cpu_model"))
    else:
        d = json.loads(Path(source).read_text()) if isinstance(source, (str, Path)) else dict(source)
        meta = d.get("meta", d)
        r = _from_emulation(meta["cpu_model"]) if isinstance(meta.get("cpu_model"), dict) else _from_contest(meta)
    return r | {"text": _text(r)} if r else None
