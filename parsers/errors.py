"""The one exception hierarchy of policysync (CONVENTIONS.md 7).

It lives in ``parsers`` because that is the package every other package may import; the
application re-exports it as ``policysync.errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


class PolicySyncError(Exception):
    """Root of every error policysync reports. ``str(err)`` is the one line the CLI prints."""

    exit_code = 3


class UsageError(PolicySyncError):
    """Bad arguments or configuration (CLI exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file is missing, unreadable or inconsistent."""


class FetchError(PolicySyncError):
    """A document could not be fetched, or what came back is not what was expected."""

    def __init__(self, message: str, *, source: str = "", url: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.url = url


class ParseError(PolicySyncError):
    """A document is malformed. Carries the source id, the document and the place in it."""

    def __init__(self, message: str, *, source: str = "", url: str = "", locator: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.url = url
        self.locator = locator


class LayoutChanged(ParseError):
    """A valid document whose layout this parser cannot read (a column is gone, a header moved away)."""


class UnsafeArchive(ParseError):
    """A zip member escapes its folder (``../``), is absolute, or expands past the size limit."""


class RulebookError(PolicySyncError):
    """The rulebook cannot do what was asked (unknown version, failed migration, ...)."""


class CompileError(PolicySyncError):
    """A rule pack cannot be compiled or fails its own schema."""


class CompileArgumentError(CompileError, UsageError):
    """A compile request that cannot be right: an empty window, an unknown scope (exit code 2)."""


class PackError(PolicySyncError):
    """A rule pack on disk is unusable: bad checksum, unsupported schema version, wrong window."""


def with_context(records: Iterator[T], source: str, url: str) -> Iterator[T]:
    """Pass ``records`` through, filling in the source id and URL of any ParseError raised deep down
    where only the file name is at hand."""
    try:
        yield from records
    except ParseError as err:
        err.source = err.source or source
        err.url = err.url or url
        raise
