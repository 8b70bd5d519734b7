"""environment.yml from pyproject.toml: the same dependencies for conda users, written, never edited.

    python scripts/environment.py            # rewrite environment.yml
    python scripts/environment.py --check    # exit 1 if environment.yml is not what pyproject.toml gives

Every dependency of the project and of its `notebooks` and `test` extras: from conda-forge when it
is one of CONDA_FORGE (the same name there, lower-case) and neither pinned exactly nor asking for
extras; the rest through pip (pyuwsgi, mfusepy, crossplane, locust's and sregistry's pins, ...),
then labkit itself, editable. tests/unit/test_environment.py checks the file is current.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# packages conda-forge carries under their PyPI name (lower-case), the ones this project uses
CONDA_FORGE = {"django", "djangorestframework", "jinja2", "pydantic", "pandas", "psutil", "scapy", "bokeh",
               "ipywidgets", "tqdm", "tabulate", "pyyaml", "click", "jupyterlab", "nbval", "nbformat", "nbclient",
               "pytest", "pytest-timeout"}
EXTRAS = ("notebooks", "test")
HEADER = """\
# Written by scripts/environment.py from pyproject.toml: edit pyproject.toml, then run it again.
# For conda users: the project's dependencies (and its notebooks and test extras), from conda-forge where
# conda-forge carries them, else through pip. The system tools (nginx, iperf3, iproute2, nftables, docker-proxy)
# come from Debian: run `make setup` as root.
"""


def requirements(pyproject: dict) -> list[Requirement]:
    p = pyproject["project"]
    return [Requirement(r) for r in [*p["dependencies"], *(r for e in EXTRAS for r in p["optional-dependencies"][e])]]


def render(pyproject: dict) -> str:
    conda, pip = [], []
    for r in requirements(pyproject):
        exact = any(s.operator == "==" for s in r.specifier)
        if r.name.lower() in CONDA_FORGE and not exact and not r.extras:
            conda.append(f"{r.name.lower()}{r.specifier}")
        else:
            pip.append(str(r))
    python = pyproject["project"]["requires-python"].removeprefix(">=")
    lines = [HEADER.rstrip("\n"), "name: servelab", "channels:", "  - conda-forge", "dependencies:",
             f"  - python>={python}", "  - pip", *(f"  - {c}" for c in conda), "  - pip:",
             *(f"      - {p}" for p in pip), "      - -e ."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render(tomllib.loads((ROOT / "pyproject.toml").read_text()))
    target = ROOT / "environment.yml"
    if "--check" in argv:
        if target.read_text() != text:
            print("environment.yml is not what pyproject.toml gives: run python scripts/environment.py")
            return 1
        return 0
    target.write_text(text)
    print("wrote", target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
