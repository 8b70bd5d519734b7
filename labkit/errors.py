"""Every error labkit raises on purpose derives from LabkitError, so one `except` catches them.

Each one's message names what is wrong (the setting, the service, the file) and what to do.
"""
from __future__ import annotations


class LabkitError(Exception):
    """Base of labkit's own errors."""


class SettingsError(LabkitError, ValueError):
    """Bad settings, with one clause per problem naming the setting; nothing was applied."""


class UnknownName(LabkitError, ValueError):
    """A node, link, hop, vantage point or stage the declared path does not have."""


class ConfigRejected(LabkitError, ValueError):
    """nginx or uwsgi refused a rendered config; the message is theirs."""


class ToolMissing(LabkitError, RuntimeError):
    """A program the lab runs is not installed."""


class NetnsError(LabkitError, RuntimeError):
    """An iproute2/tc/sysctl command failed."""


class ServiceError(LabkitError, RuntimeError):
    """A program of the path would not start, stop or reload."""


class LabError(LabkitError, RuntimeError):
    """The lab cannot do what was asked (no root, not up, ...)."""


class ServiceDown(LabError):
    """A measurement was refused because a service of the path is not running."""


class HttpStatusError(LabkitError, RuntimeError):
    """A server answered with an HTTP status other than the one asked for (its `status`)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class TlsSetupError(LabkitError, ValueError):
    """A client's TLS trust could not be set up (a missing or unreadable CA file); nothing was sent."""


class TlsVerifyError(LabkitError, ConnectionError):
    """An https server's certificate did not verify against the client's CA and name: the pull is refused."""
