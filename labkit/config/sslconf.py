"""nginx's ssl_conf_command as OpenSSL reads it: the SSL_CONF command names it may pass, parsed and checked."""
from __future__ import annotations

# SSL_CONF_cmd's configuration-file names nginx's ssl_conf_command passes to OpenSSL
# (openssl/openssl openssl-3.0.13 85cf92f5, doc/man3/SSL_CONF_cmd.pod); files and keys stay out
CONF_COMMANDS = ("CipherString", "Ciphersuites", "Options", "Groups", "Curves", "MinProtocol", "MaxProtocol",
                 "SignatureAlgorithms", "RecordPadding", "Protocol")


def conf_commands(v: str) -> list[tuple[str, str]]:
    """'Options PrioritizeChaCha; Groups X25519' -> [(name, value), ...]; ValueError naming a bad one."""
    out = []
    for part in filter(None, (p.strip() for p in v.split(";"))):
        name, _, value = part.partition(" ")
        if name not in CONF_COMMANDS or not value.strip() or any(c in value for c in "{}\"'"):
            raise ValueError(f"{part!r}: write 'Name value' with Name one of {', '.join(CONF_COMMANDS)}, "
                             "commands separated by ';'")
        out.append((name, value.strip()))
    return out
