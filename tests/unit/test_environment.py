"""environment.yml is what pyproject.toml gives (scripts/environment.py writes it), and names only real make targets."""
import importlib.util
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("environment", ROOT / "scripts" / "environment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_environment_yml_is_generated_from_pyproject():
    env = _script()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    text = (ROOT / "environment.yml").read_text()
    assert text == env.render(pyproject), "environment.yml is stale: run python scripts/environment.py"
    for r in env.requirements(pyproject):               # every dependency is there, by conda or by pip
        assert re.search(rf"^\s+- {re.escape(r.name.lower())}\b", text, re.M | re.I), r.name


def test_the_make_targets_it_names_exist():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"`make ([a-z-]+)`", (ROOT / "environment.yml").read_text()))
    assert named and named <= targets
