"""Shared test helpers. The recorded real files are read from ../shared/data through ``shared_data``
only; they are never copied into this repository."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """Where the recorded CMS and payer files are: $POLICYSYNC_SHARED_DATA or ../shared/data."""
    env = os.environ.get("POLICYSYNC_SHARED_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"recorded data not found at {path} (set POLICYSYNC_SHARED_DATA)")
    return path


def approve_pending(db: Any, now: str = "2026-06-01T00:00:00Z") -> None:
    """Approve every committed version pending review, as a reviewer would before compiling:
    ``compile`` without ``--version`` uses only approved versions (rulebook/review.py)."""
    from rulebook import review

    for row in list(db.query("SELECT id FROM versions WHERE status = 'committed' AND review_state = 'pending_review'")):
        # A quarantined source (e.g. the 35-row 2026 HCPCS excerpt after a full file) needs --force.
        forced = bool(review.quarantine_blockers(db, row["id"]))
        review.decide(
            db, row["id"], action="approve", actor="test", note="approved by the test suite", now=now, force=forced
        )
