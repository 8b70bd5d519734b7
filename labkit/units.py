"""Sizes as a person gives them, bytes inside: the one place that turns one into the other.

    parse_size("64MiB") == 64 * MiB;  parse_size("1.5GiB");  parse_size(64) == 64 * MiB (a bare number is MiB)
    format_size(1610612736) == "1.5 GiB"

Settings fields take `SizeBytes` (pydantic), the CLI takes `SIZE` (a click type, in labkit.cli), notebooks
call parse_size; nothing else multiplies by 2**20.
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_UNITS = {"": MiB, "b": 1, "k": KiB, "kib": KiB, "m": MiB, "mib": MiB, "g": GiB, "gib": GiB, "t": TiB, "tib": TiB,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_FORM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


class SizeError(ValueError):
    """A size that is not a number with a unit this module knows."""


def parse_size(value: int | float | str) -> int:
    """Bytes from `value`: a number of MiB (64, 1.5) or a number with a unit ("64MiB", "1.5GiB", "512KiB", "3GB",
    "4096B"); binary units (KiB, MiB, GiB) are the lab's own, decimal ones (kB, MB, GB) are taken as written."""
    if isinstance(value, bool):
        raise SizeError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = _FORM.match(str(value))
        if not m:
            raise SizeError(f"not a size: {value!r} (give e.g. 64MiB, 1.5GiB, or a number of MiB)")
        number, unit = float(m.group(1)), m.group(2).lower()
        if unit not in _UNITS:
            raise SizeError(f"unknown unit {m.group(2)!r} in {value!r} (B, KiB, MiB, GiB, TiB, or kB, MB, GB, TB)")
    if number < 0:
        raise SizeError(f"a size cannot be negative: {value!r}")
    out = number * _UNITS[unit]
    if out != int(out):
        raise SizeError(f"{value!r} is not a whole number of bytes")
    return int(out)


def format_size(n: int) -> str:
    """The largest binary unit that leaves a number of at most one decimal: 1.5 GiB, 64 MiB, 512 KiB, 100 B."""
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def mib(n: int) -> float:
    """Bytes as MiB (for a table's column or a file name)."""
    return n / MiB


SizeBytes = Annotated[int, BeforeValidator(parse_size)]
SIZE_HELP = "a size: 64MiB, 1.5GiB, or a number of MiB"     # an option's help, wherever a person gives one
