"""A test that cannot judge on a machine this busy skips through here: its reason carries LOAD, and
tests/conftest.py counts and lists every such skip at the end of pytest's terminal summary (never silent).

    from tests.load import skip_for_load
    if free < 0.7:
        skip_for_load(f"other load leaves this CPU only {free:.0%} of a core")
"""
import pytest

LOAD = "skipped for load: "


def skip_for_load(why: str) -> None:
    pytest.skip(LOAD + why)
