"""Kind `curl`: curl -sS -f -L --max-redirs 5 --proto-redir =http,https [--cacert {cacert}] -o {dest} {url}.

Given the manifest's image URL (asked first, as a script would); redirects followed as labkit's own
client follows them (labkit.clients.follow.MAX_HOPS).
"""
from __future__ import annotations

from .follow import MAX_HOPS
from .program import Program


def curl_tls(values: dict[str, str]) -> list[str]:
    """curl's options for https: the lab's CA where the path has TLS ({cacert}), else none."""
    return ["--cacert", values["cacert"]] if values.get("cacert") else []


def curl_redirects() -> list[str]:
    """Redirects as labkit's own client follows them: up to MAX_HOPS, to http(s) only."""
    return ["-L", "--max-redirs", str(MAX_HOPS), "--proto-redir", "=http,https"]


class Curl(Program):
    name = "curl"
    needs_url = True

    def argv(self, values: dict[str, str]) -> list[str]:
        return ["curl", "-sS", "-f", *curl_redirects(), *curl_tls(values), "-o", values["dest"], values["url"]]
