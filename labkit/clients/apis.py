"""Which client kinds speak which registry's API: a kind that cannot talk to the lab's registry is refused.

sregistry serves its own API (`/api/container/<collection>/<name>:<tag>`, then one file); distribution
serves the OCI distribution API (`/v2/`: manifest, config, layers). Each kind says the APIs it speaks
(ClientKind.apis); the registry's is `settings.registry.api`. A mismatch (sregistry-cli against
distribution, say) is a settings error naming client.kind and registry.kind, raised before anything starts.
"""
from __future__ import annotations

from ..config.settings import LabSettings
from .kinds import KINDS


def api_problems(s: LabSettings) -> list[str]:
    """[] when client.kind speaks the API registry.kind serves, else one line naming both and the kinds that fit."""
    api, kind = s.registry.api, KINDS[s.client.kind]
    if api in kind.apis:
        return []
    fits = ", ".join(n for n, k in KINDS.items() if api in k.apis)
    return [f"client.kind {s.client.kind!r} speaks {' and '.join(kind.apis)}'s API, not the {api!r} API that "
            f"registry.kind {s.registry.kind!r} serves: use one of {fits}"]
