"""The package's layers import one way: config → lab → measure → analyze → present / bundle.

Read from the source with `ast` (every import, also inside functions), each module's layer is its
subpackage (labkit/lab/... is "lab") or, for a top-level module, its name. A layer may import only
the layers ALLOWED names for it; the top (experiments, cli, the package's own __init__) puts the others
together and may import any. What shows results (present) runs nothing of the lab and measures nothing;
the bundle is written from settings alone (the programs that check it are handed in from the top).
"""
import ast
from pathlib import Path

import labkit

ROOT = Path(labkit.__file__).parent
BASE = {"errors", "in_netns", "progress", "units"}  # no labkit imports of their own beyond errors
ALLOWED = {
    "errors": set(),
    "in_netns": {"errors"},
    "progress": set(),                              # progress bars: tqdm, or one HTML line in a notebook
    "units": set(),                                 # sizes as a person gives them, bytes inside
    "config": {"errors", "units"},                  # typed settings, presets, templates: pure
    "path": {"config", "errors"},                   # the declared path (its stages name settings)
    "records": {"path", "config", "errors"},        # what crosses layers: pull results, surveys, runs
    "app": {"config", *BASE},                       # the Django app the lab serves (reads the serve modes)
    "clients": {"config", "records", *BASE},        # the pull clients, one module per kind (a pull is a PullResult)
    "lab": {"config", "path", "app", "clients", *BASE},
    "measure": {"lab", "config", "path", "app", "clients", "records", *BASE},
    "analyze": {"config", "path", "records", "errors", "units"},   # pure: nothing of lab or measure
    "present": {"analyze", "config", "path", "records", "app", *BASE},   # never lab or measure
    "bundle": {"config", "path", "records", *BASE},                       # never lab
}
TOP = {"experiments", "cli", "__init__"}


def layer(module: str) -> str:
    """labkit.lab.programs -> lab; labkit.path -> path; labkit -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(file: Path) -> str:
    rel = file.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(file: Path) -> set[str]:
    """The labkit modules `file` imports, absolute."""
    me = module_name(file)
    package = me if file.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "labkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "labkit":
                continue
            if node.module is None or target in ("labkit",):   # `from . import x`: the modules x
                out |= {f"{target}.{a.name}" for a in node.names}
            else:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    """Layer -> the layers its modules import (itself left out)."""
    edges: dict[str, set[str]] = {}
    for file in ROOT.rglob("*.py"):
        src = layer(module_name(file)) if file.parent != ROOT else file.stem
        for target in imports(file):
            dst = layer(target)
            if dst != src:
                edges.setdefault(src, set()).add(dst)
    return edges


def test_every_layer_is_declared():
    found = {layer(module_name(f)) if f.parent != ROOT else f.stem for f in ROOT.rglob("*.py")}
    assert found <= set(ALLOWED) | TOP, f"modules outside the declared layers: {found - set(ALLOWED) - TOP}"


def test_imports_go_one_way():
    bad = {}
    for file in ROOT.rglob("*.py"):
        src = layer(module_name(file)) if file.parent != ROOT else file.stem
        if src in TOP:
            continue
        for target in imports(file):
            dst = layer(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.setdefault(str(file.relative_to(ROOT.parent)), []).append(target)
    assert not bad, f"imports against config → lab → measure → analyze → present / bundle: {bad}"


def test_present_and_bundle_reach_no_lab_and_measure_nothing():
    g = graph()
    assert not {"lab", "measure"} & g.get("present", set()), g.get("present")
    assert "lab" not in g.get("bundle", set()), g.get("bundle")
    assert not {"experiments", "cli"} & set().union(*(g.get(x, set()) for x in ALLOWED)), "a layer imports the top"


def test_every_public_name_resolves():
    """Each name of labkit's public table (lk.<name>, loaded on first use) is there where the table points."""
    missing = []
    for name in labkit._PUBLIC:
        try:
            getattr(labkit, name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, missing
    assert set(labkit.__all__) == set(labkit._PUBLIC)


def test_analyze_and_measure_do_not_import_each_other():
    g = graph()
    assert "measure" not in g.get("analyze", set()) and "analyze" not in g.get("measure", set())
    assert "lab" not in g.get("analyze", set())


def test_the_contract_would_catch_a_wrong_import(tmp_path):
    wrong = tmp_path / "labkit" / "analyze" / "bad.py"
    wrong.parent.mkdir(parents=True)
    wrong.write_text("from ..measure.pull_at import pull_at\nfrom ..records import Survey\n")
    global ROOT
    old, ROOT = ROOT, tmp_path / "labkit"
    try:
        assert imports(wrong) == {"labkit.measure.pull_at", "labkit.records"}
    finally:
        ROOT = old


def test_nothing_after_the_lab_reads_the_default_path():
    """labkit.path.PATH is the default a lab is built on; what measures, judges or shows a lab reads its own
    (lab.path, survey.path)."""
    after = {"measure", "analyze", "present", "bundle", "records", "experiments"}
    readers = []
    for file in ROOT.rglob("*.py"):
        if (layer(module_name(file)) if file.parent != ROOT else file.stem) not in after:
            continue
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("path") and \
                    any(a.name == "PATH" for a in node.names):
                readers.append(str(file.relative_to(ROOT.parent)))
            elif isinstance(node, ast.Attribute) and node.attr == "PATH" and \
                    isinstance(node.value, ast.Name) and node.value.id == "path":
                readers.append(str(file.relative_to(ROOT.parent)))
    assert not readers, f"these read the default path instead of the lab's or the survey's: {readers}"
