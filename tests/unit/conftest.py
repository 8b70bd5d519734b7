"""Unit tests start no program: pure logic, crafted inputs, Django's test client (tests/integration
holds everything that starts nginx, uwsgi, a namespace or any other process)."""
import subprocess

import pytest


@pytest.fixture(autouse=True)
def no_programs(monkeypatch):
    def refused(self, args, *a, **kw):
        raise AssertionError(f"a unit test started a program ({args!r}): it belongs in tests/integration")
    monkeypatch.setattr(subprocess.Popen, "__init__", refused)
