"""Safe zip reading shared by every parser that receives a zip (CMS ships most files zipped).

A zip from the network is untrusted input: a member name may try to escape its folder
(``../../etc/passwd``, ``/abs/path``) and a small member may expand to gigabytes. Nothing here
writes to disk, but member names still reach locators, logs and possibly later extraction, so the
checks are made once, here, for every caller. Errors are one line naming the archive (CONVENTIONS 8).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import PurePosixPath, PureWindowsPath

from parsers.errors import ParseError, UnsafeArchive

__all__ = ["DEFAULT_MAX_BYTES", "looks_like_html", "open_zip", "read_member", "safe_members"]

#: Largest uncompressed member any parser will read. The biggest real CMS member (the 2019 HCPCS
#: txt) is under 4 MB; 512 MiB leaves room for growth while refusing a zip bomb.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

_CHUNK = 1024 * 1024
_HTML_START = re.compile(rb"\s*(?:<!doctype\s+html|<html|<head|<body|<!--)", re.IGNORECASE)


def looks_like_html(body: bytes) -> bool:
    """True for bytes that begin like an HTML page (an error or login page served instead of a file)."""
    return _HTML_START.match(body[:1024].removeprefix(b"\xef\xbb\xbf")) is not None


def open_zip(body: bytes, filename: str) -> zipfile.ZipFile:
    """Open ``body`` as a zip archive or raise :class:`ParseError` naming ``filename``."""
    if looks_like_html(body):
        raise ParseError(f"{filename}: expected a zip archive, got an HTML page", locator=filename)
    try:
        return zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise ParseError(
            f"{filename}: not a readable zip archive, truncated or corrupt ({err})", locator=filename
        ) from err


def safe_members(zf: zipfile.ZipFile, filename: str, max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    """Names of the file members of ``zf`` (folders left out), after checking every member.

    Raises :class:`UnsafeArchive` for a name that is absolute or has a ``..`` part, and for a member
    whose declared uncompressed size exceeds ``max_bytes``.
    """
    names = []
    for info in zf.infolist():
        _check_name(info.filename, filename)
        _check_declared_size(info, filename, max_bytes)
        if not info.is_dir():
            names.append(info.filename)
    return names


def read_member(zf: zipfile.ZipFile, name: str, filename: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The uncompressed bytes of member ``name``, read in chunks and never more than ``max_bytes``."""
    _check_name(name, filename)
    try:
        info = zf.getinfo(name)
    except KeyError as err:
        raise ParseError(f"{filename}: no member '{name}'", locator=filename) from err
    _check_declared_size(info, filename, max_bytes)
    out = bytearray()
    try:
        with zf.open(info) as member:
            while chunk := member.read(_CHUNK):
                out += chunk
                # The declared size can lie; what is actually inflated is what costs memory.
                if len(out) > max_bytes:
                    raise UnsafeArchive(
                        f"{filename}: member '{name}' expands past the {max_bytes}-byte limit",
                        locator=f"{filename}/{name}",
                    )
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        # RuntimeError: an encrypted member; NotImplementedError: an unsupported compression method.
        raise ParseError(
            f"{filename}: member '{name}' cannot be read, corrupt or unsupported ({err})",
            locator=f"{filename}/{name}",
        ) from err
    return bytes(out)


def _check_name(name: str, filename: str) -> None:
    # Both separators: a zip written on Windows may use backslashes, and "C:" drives are absolute too.
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise UnsafeArchive(f"{filename}: member '{name}' has an absolute path", locator=filename)
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeArchive(f"{filename}: member '{name}' escapes the archive with '..'", locator=filename)


def _check_declared_size(info: zipfile.ZipInfo, filename: str, max_bytes: int) -> None:
    if info.file_size > max_bytes:
        raise UnsafeArchive(
            f"{filename}: member '{info.filename}' expands to {info.file_size} bytes, "
            f"over the {max_bytes}-byte limit",
            locator=f"{filename}/{info.filename}",
        )
