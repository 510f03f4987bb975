"""The application's view of the one exception hierarchy (defined in :mod:`parsers.errors`)."""

from parsers.errors import (
    CompileError,
    ConfigError,
    FetchError,
    LayoutChanged,
    PackError,
    ParseError,
    PolicySyncError,
    RulebookError,
    UnsafeArchive,
    UsageError,
)

__all__ = [
    "CompileError",
    "ConfigError",
    "FetchError",
    "LayoutChanged",
    "PackError",
    "ParseError",
    "PolicySyncError",
    "RulebookError",
    "UnsafeArchive",
    "UsageError",
]
