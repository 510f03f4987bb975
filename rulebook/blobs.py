"""Content-addressed storage of raw documents: ``ROOT/ab/abcdef....`` by sha256.

Raw bytes are kept so a parser fix can be replayed over history (``policysync reparse``)
without crawling again. Writes go to a temporary file and are renamed into place, so a
crash never leaves a half-written blob under its final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from parsers.errors import RulebookError


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def put(self, body: bytes) -> str:
        """Store ``body`` and return its sha256. Storing the same bytes twice is a no-op."""
        digest = sha256_hex(body)
        final = self.path(digest)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        p = self.path(sha256)
        try:
            body = p.read_bytes()
        except FileNotFoundError:
            raise RulebookError(f"artifact {sha256[:12]}: raw bytes missing from {self.root}") from None
        if sha256_hex(body) != sha256:
            raise RulebookError(f"artifact {sha256[:12]}: bytes on disk do not match their sha256 ({p})")
        return body
