"""Settings changed the way an operator types them: `links.nginx=800mbit`, `uwsgi.processes=8`, `nginx.sendfile=off`.

    apply_overrides(preset("sregistry-2018-10"), ["links.nginx=800mbit", "cpu.uwsgi_cpus=0.5"])

Pure: text in, validated settings out. Every problem names the override and the setting, and
nothing is changed unless all of them are good.
"""
from __future__ import annotations

import json
from pathlib import Path

from .settings import LabSettings, SettingsError, is_keyed, parse_settings, setting

_TRUE, _FALSE = {"on", "true", "yes", "1"}, {"off", "false", "no", "0"}


def parse_override(text: str) -> tuple[str, str, str]:
    """'group.field=value' -> (group, field, value), with the setting's name checked."""
    path, eq, value = text.partition("=")
    group, _, field = path.strip().partition(".")
    if not eq or not field:
        raise SettingsError(f"--set {text!r}: write group.field=value, e.g. links.nginx=800mbit")
    model = LabSettings.model_fields.get(group)
    if model is None:
        raise SettingsError(f"--set {text!r}: no settings group {group!r}; groups: {', '.join(LabSettings.model_fields)}")
    fields = model.annotation.model_fields
    if field not in fields and not is_keyed(group):     # a keyed group's names are the path's to check
        raise SettingsError(f"--set {text!r}: {group} has no setting {field!r}; it has {', '.join(fields)}")
    return group, field, value.strip()


def _value(raw: str, current):
    """The typed value: booleans as on/off, none/default for None, numbers, lists for tuples, else text."""
    low = raw.lower()
    if isinstance(current, bool):
        if low in _TRUE | _FALSE:
            return low in _TRUE
        return raw
    if low in ("none", "default", ""):
        return None
    if isinstance(current, tuple) or (current is None and len(raw.split()) == 3):
        return raw.split()
    if " " in raw and hasattr(current, "number"):            # nginx's "number size" buffers
        number, size = raw.split(None, 1)
        return {"number": number, "size": size}
    try:
        return json.loads(raw) if low[:1].isdigit() or low[:1] == "-" else raw
    except json.JSONDecodeError:
        return raw


def apply_overrides(base: LabSettings, overrides: list[str]) -> LabSettings:
    """`base` with every override applied, validated as a whole (SettingsError names each bad one)."""
    data = base.model_dump()
    for text in overrides:
        group, field, raw = parse_override(text)
        data[group][field] = _value(raw, setting(base, group, field))
    return parse_settings(data)


def load_settings(path: Path) -> LabSettings:
    """Settings from a JSON file (what `labkit import` writes, or an exported bundle's servelab-settings.json)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
    try:
        return parse_settings(data.get("settings", data) if isinstance(data, dict) else data)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None
