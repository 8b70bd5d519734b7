"""What an import read, line by line: each directive modelled (into which setting) or ignored (and why).

Pure bookkeeping shared by the readers of nginx, uwsgi and Docker files (labkit.config.import_*):
a `Ledger` collects the settings the files give, where each came from, and every problem,
so that a bad value found only when the settings are validated as a whole is still reported
with the file, line and directive it came from.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from .settings import LabSettings, error_loc

Status = Literal["modelled", "ignored"]


@dataclass(frozen=True)
class Origin:
    """A directive where it stands: file, line, name and its value as written."""
    file: str
    line: int
    directive: str
    value: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.directive}"


@dataclass(frozen=True)
class Entry:
    file: str
    line: int
    directive: str
    value: str
    status: Status
    setting: str          # "nginx.sendfile" when it sets one, else ""
    note: str             # what it became, or why it is ignored

    def row(self) -> dict:
        return asdict(self)


@dataclass
class Ledger:
    """Settings as the files give them (group -> field -> value), with an entry per directive read."""
    entries: list[Entry] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def set(self, o: Origin, setting: str, value: Any, note: str = "", together: bool = False) -> None:
        """`setting` ("group.field") = value, from `o`; a later one replaces an earlier one (the file's own rule).

        `together`: one of several directives that give the setting jointly (sregistry's six CORS headers).
        """
        group, _, name = setting.partition(".")
        if setting in self.origins and not together:
            self._overridden(setting, o)
        self.values.setdefault(group, {})[name] = value
        self.origins[setting] = o
        self.entries.append(Entry(o.file, o.line, o.directive, o.value, "modelled", setting,
                                  note or f"{setting} = {_shown(value)}"))

    def modelled(self, o: Origin, note: str) -> None:
        """Read and represented, but by the lab's own structure rather than a setting (listen, uwsgi_pass, ...)."""
        self.entries.append(Entry(o.file, o.line, o.directive, o.value, "modelled", "", note))

    def ignore(self, o: Origin, reason: str) -> None:
        self.entries.append(Entry(o.file, o.line, o.directive, o.value, "ignored", "", reason))

    def problem(self, where: Origin | str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def _overridden(self, setting: str, by: Origin) -> None:
        old = self.origins[setting]
        for i, e in enumerate(self.entries):
            if e.setting == setting and (e.file, e.line) == (old.file, old.line):
                self.entries[i] = Entry(e.file, e.line, e.directive, e.value, "ignored", "",
                                        f"overridden by {by.file}:{by.line} ({by.directive})")

    def settings(self, base: LabSettings) -> LabSettings | None:
        """`base` with the values read, validated; a bad value becomes a problem naming its directive (None then)."""
        data = base.model_dump()
        for group, values in self.values.items():
            data[group].update(values)
        try:
            return LabSettings.model_validate(data)
        except ValidationError as exc:
            found: dict[tuple[str, str], list[str]] = {}
            got: dict[tuple[str, str], Any] = {}
            for err in exc.errors():      # a union (e.g. a number or "auto") fails once per branch
                where, setting, msg = self._where(err)
                found.setdefault((where, setting), []).append(msg)
                value = error_loc(err)[1]
                if value is not None and not isinstance(value, dict):
                    got[where, setting] = value
            for key, msgs in found.items():
                tail = f" (got {got[key]!r})" if key in got else ""
                self.problems.append(f"{key[0]}: {key[1]}: {' or '.join(dict.fromkeys(msgs))}{tail}")
            return None

    def _where(self, err: dict) -> tuple[str, str, str]:
        """(directive, setting, message) of a validation error: its field's, or the field its message names."""
        loc = error_loc(err)[0]
        msg = err["msg"].removeprefix("Value error, ")
        if len(loc) >= 2 and f"{loc[0]}.{loc[1]}" in self.origins:
            return str(self.origins[f"{loc[0]}.{loc[1]}"]), f"{loc[0]}.{loc[1]}", msg
        named = re.match(r"(\w+): (.*)", msg, re.S)
        if loc and named and f"{loc[0]}.{named.group(1)}" in self.origins:
            setting = f"{loc[0]}.{named.group(1)}"
            return str(self.origins[setting]), setting, named.group(2)
        hits = [o for k, o in self.origins.items() if loc and k.startswith(loc[0] + ".")]
        return (str(hits[0]) if hits else "settings"), _setting(err), msg


def _setting(err: dict) -> str:
    """The setting's dotted name, without pydantic's union branch names."""
    return ".".join(error_loc(err)[0]) or "settings"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(str(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)
