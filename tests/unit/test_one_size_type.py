"""One size type: sizes are parsed and formatted in labkit/units.py only (parse_size, format_size and its
KiB, MiB, GiB); nowhere else in labkit/, benchmarks/ or notebooks/ multiplies by 2**20, shifts by 20,
writes 1024 * 1024 or defines its own MiB. A line that must keep a literal (a program that imports
nothing of labkit, quoting its upstream) says so with `# size literal: <why>`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARITHMETIC = re.compile(r"""
      \b2\s*\*\*\s*(10|20|30|40)\b            # 2**20
    | <<\s*(10|20|30|40)\b                     # 1 << 20
    | \b1024\s*\*\*\s*[1-4]\b                  # 1024**2
    | \b1024\s*\*\s*1024\b                     # 1024 * 1024
    | \b\d+\s*\*\s*1024\b | \b1024\s*\*\s*\d   # 256 * 1024, 1024 * 64
    | _kib\s*\*\s*1024\b                       # a KiB setting by hand
    | ^\s*(KiB|MiB|GiB|TiB)(\s*,\s*\w+)*\s*=  # a module's own MiB = ...
""", re.X | re.M)
ALLOWED = {
    "labkit/units.py",                         # the one place
    # Its body is being edited for speed in parallel (issue 29): READ_SIZE = 1024 * 1024 goes after that merge.
    "labkit/clients/puller.py",
}
EXEMPT = "# size literal:"


def sources() -> dict[str, list[str]]:
    """Each Python file's lines and each notebook's code cells' lines, by path from the repository."""
    out = {}
    for top in ("labkit", "benchmarks"):
        for f in (REPO / top).rglob("*.py"):
            out[f.relative_to(REPO).as_posix()] = f.read_text().splitlines()
    for f in (REPO / "notebooks").glob("*.ipynb"):
        cells = json.loads(f.read_text())["cells"]
        out[f.relative_to(REPO).as_posix()] = [ln for c in cells if c["cell_type"] == "code"
                                              for ln in "".join(c["source"]).splitlines()]
    return out


def offenders(files: dict[str, list[str]]) -> dict[str, list[str]]:
    bad = {}
    for path, lines in files.items():
        if any(path == a or (a.endswith("/") and path.startswith(a)) for a in ALLOWED):
            continue
        hits = [ln.strip() for ln in lines if ARITHMETIC.search(ln.split("#", 1)[0]) and EXEMPT not in ln]
        if hits:
            bad[path] = hits
    return bad


def test_no_size_arithmetic_outside_units():
    bad = offenders(sources())
    assert not bad, ("size arithmetic outside labkit/units.py (use parse_size, format_size, KiB, MiB, GiB): "
                     + "; ".join(f"{p}: {hits}" for p, hits in sorted(bad.items())))


@pytest.mark.parametrize("line", ["MiB = 2**20", "size = n * 2 ** 20", "x = 1 << 20", "b = 16 * 1024**2",
                                  "r = 1024 * 1024", "k = 256 * 1024", "q = c.fs_request_kib * 1024",
                                  "KiB, MiB = 1 << 10, 1 << 20"])
def test_the_check_would_catch_each_form(line):
    assert offenders({"labkit/x.py": [line]}) == {"labkit/x.py": [line]}
    assert offenders({"labkit/units.py": [line]}) == {}


@pytest.mark.parametrize("line", ["n = parse_size('64MiB')", "t = 2 * MiB", "port = 1024", "x = 1 << 4",
                                  "y = 10**20", "CHUNK = 1 << 20   # size literal: Singularity's own"])
def test_the_check_leaves_the_rest(line):
    assert offenders({"labkit/x.py": [line]}) == {}
