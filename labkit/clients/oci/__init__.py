"""An OCI Distribution API pull client: what `labkit probe` and `labkit storm` speak to Harbor,
`distribution`, Quay or any registry serving `/v2/` (no docker daemon).

    ref = Reference.parse("https://registry.example.org/library/ubuntu:22.04")
    session = Session(ref, get, Credentials.find(ref.netloc, user="me:secret"))
    image = resolve(session, platform="linux/amd64")     # manifest by tag or digest, an index resolved
    results = pull_layers(session, image.layers, fetch_layer, at_once=6)

One concern a module:

    reference   `http[s]://host[:port]/repo/name[:tag|@digest]`, checked against the spec's grammar
    auth        the WWW-Authenticate challenge, Bearer tokens from the realm, Basic, credentials files
    manifest    media types, manifests and indexes, the platform's manifest chosen from an index
    blobs       digests: parsed, and a streaming check of a blob's bytes against its digest
    session     requests made as the registry wants them: the token fetched on a 401, retried once
    pull        the orchestration: ping, manifest, config, every layer one at a time or N at once
    resume      a layer's body resumed with `Range: bytes=N-` when its connection is cut (as containers/image)

The HTTP itself is given (`get(url, headers) -> Opened`, the lab's client inside a network namespace:
labkit.clients.registry_api.open_get), so the protocol here is pure and tested with crafted responses
(tests/unit/test_oci_*.py); the bytes of each layer are read by the lab's measured loop
(labkit.clients.puller.pull_image), given as `fetch_layer`.

The protocol as upstream writes it: the OCI distribution spec (opencontainers/distribution-spec
@967efdc079b91785ad18c77cc4f8991a47feefbf spec.md) and Docker's token authentication
(distribution/distribution @0d6b721dc3ceacb5d678c25b718b2f40a507c2d8 docs/content/spec/auth/token.md).
PyPI's oras (oras-py 0.2.x) gives the reference grammar, the challenge's key-values, Basic's encoding
and the media type names; its requests-based transport is not used: a pull here must run inside a
network namespace and read its own socket's tcp_info, which a requests Session does not give.
"""
from .auth import AuthError, Challenge, Credentials, parse_challenge
from .blobs import Digest, DigestMismatch
from .manifest import Descriptor, Image, ManifestError, PlatformError, parse_platform, select_platform
from .pull import MAX_PARALLEL_DOWNLOADS, LayerPull, pull_layers, resolve
from .reference import Reference
from .resume import MAX_RESUMES, ResumingBlob, resumes_text
from .session import OciError, Session

__all__ = ["AuthError", "Challenge", "Credentials", "Descriptor", "Digest", "DigestMismatch", "Image",
           "LayerPull", "MAX_PARALLEL_DOWNLOADS", "MAX_RESUMES", "ManifestError", "OciError", "PlatformError",
           "Reference", "ResumingBlob", "Session", "parse_challenge", "parse_platform", "pull_layers", "resolve",
           "resumes_text", "select_platform"]
