"""A module's lab for the integration tests: up once (root only), and gone afterwards with every namespace."""
import pytest

from labkit.lab.host import netns
from labkit.lab.lab import Lab


def needs_namespaces() -> None:
    if not netns.can_use_namespaces():
        pytest.skip("needs root (network namespaces)")


def left_behind(name: str) -> list[str]:
    """The lab's namespaces still there (none, once it has ended)."""
    return [ns for ns in netns.list_ns("sl-") if ns.startswith(f"sl-{name}-")]


def module_lab(name: str, settings, image_size: int, **kw):
    """A generator for a module-scoped fixture: `yield from module_lab(NAME, SETTINGS, IMAGE)`."""
    needs_namespaces()
    with Lab(name, settings, image_size=image_size, quiet=True, **kw) as lab:
        yield lab
    assert not left_behind(name)
