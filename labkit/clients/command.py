"""Kind `command`: the user's own template, e.g. `singularity pull {dest} shub://{host}:{port}/{uri}`.

Split like a shell line, then each word's {fields} filled in (config.settings.COMMAND_FIELDS): a value
never splits a word, nor is it read by a shell unless the template runs one. Given the manifest's image
URL as {url}.
"""
from __future__ import annotations

import shlex

from ..config.settings import COMMAND_FIELDS, command_fields
from ..errors import SettingsError
from .program import Program

EXAMPLE = "sh -c 'exec curl -sS -f -o \"$0\" \"$1\"' {dest} {url}"      # a template that runs a shell, for tests and benchmarks


def render_command(template: str, values: dict[str, str]) -> list[str]:
    """A command template as argv: split like a shell line, then each word's {fields} filled in."""
    try:
        bad = sorted(command_fields(template) - set(COMMAND_FIELDS))
    except ValueError as e:
        raise SettingsError(f"client.command: {e}") from None
    if bad:
        raise SettingsError(f"client.command: {template!r} uses {', '.join('{' + b + '}' for b in bad)}; "
                            f"a template may use {', '.join('{' + f + '}' for f in COMMAND_FIELDS)}")
    return [w.format(**values) for w in shlex.split(template)]


class Command(Program):
    name = "command"
    needs_url = True

    def argv(self, values: dict[str, str]) -> list[str]:
        return render_command(self.settings.command or "", values)
