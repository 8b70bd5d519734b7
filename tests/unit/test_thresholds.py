"""The verdict's thresholds: one table, every constant in it, the README quoting it (issue 29)."""
import re
from pathlib import Path

from labkit.analyze import causes, machine, noise, verdict, windows
from labkit.analyze.thresholds import TABLE, markdown

README = Path(__file__).parents[2] / "README.md"


def test_every_numeric_threshold_of_the_verdicts_modules_is_in_the_table_with_its_value():
    named = {(t.where, t.name.split(".")[-1]): t.value for t in TABLE}
    for mod in (causes, machine, noise, verdict, windows):
        where = mod.__name__.rsplit(".", 1)[-1]
        source = Path(mod.__file__).read_text()
        for name, value in vars(mod).items():
            if (re.fullmatch(r"[A-Z][A-Z_]+", name) and isinstance(value, (int, float)) and not isinstance(value, bool)
                    and re.search(rf"^{name}\s*[:=]", source, re.M)):        # defined there, not imported
                assert named.get((where, name)) == value, f"{where}.{name} = {value} is not in thresholds.TABLE"


def test_each_threshold_says_what_is_behind_it():
    for t in TABLE:
        assert t.rule and len(t.behind) > 20, t.name


def test_the_readme_quotes_the_table_as_it_is():
    assert markdown() in README.read_text(), "README.md: paste labkit.analyze.thresholds.markdown() under its heading"
