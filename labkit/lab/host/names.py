"""The names the lab gives what it makes on the host (cgroups, loop disks): one safe path component each."""
from __future__ import annotations

import re

from ...errors import LabkitError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_name(name: str, setting: str, error: type[Exception] = LabkitError) -> str:
    """`name` if it is letters, digits, '.', '_' or '-' (not first), at most 64; else `error` naming `setting`."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise error(f"{setting}: {name!r} is not a name of letters, digits, '.', '_' or '-'")
    return name
