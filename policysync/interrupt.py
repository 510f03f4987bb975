"""A clean stop on SIGTERM, and the pause points the crash tests kill a sync at.

**SIGTERM** (systemd's stop, ``kill PID``): :func:`stoppable` wraps ``pipeline.sync`` and
``pipeline.reparse`` and, in the main thread, turns SIGTERM into a clean stop:

* while crawling (nothing is half-written then: each source's fetch log is one small transaction and
  blobs are renamed into place; no source is loaded before the crawl ends), the sync stops at once;
* while loading source S (the version's transaction is open, S in its own savepoint), the next row
  or batch raises :class:`StopRequested`: only S's savepoint rolls back, S is reported ``failed``
  (``interrupted by SIGTERM while loading S ...``), the sources after it are not run (``failed``,
  ``not run: interrupted by SIGTERM ...``), and the version commits with the sources that finished
  (exit code 1). If no source finished, the pipeline re-raises and the whole version rolls back;
* once everything is loaded (:func:`committing`: the change set is being classified, or COMMIT is
  under way), the commit finishes: stopping then would only throw the work away.

A run stopped with nothing to commit marks its version ``failed`` (summary
``{"interrupted": "SIGTERM"}``) and raises :class:`Interrupted`, one line, exit code 3. Every
previous fact stays in force; the next sync fetches (conditional GET) and loads what this one did not.

**Pause points** (tests only): ``POLICYSYNC_TEST_PAUSE_AT=POINT`` or ``POINT:N`` makes a sync print
``policysync: paused at POINT:N`` on stderr when it reaches POINT for the N-th time (default 1) and
wait there, up to :data:`PAUSE_MAX_S` seconds or until SIGTERM, so a test can SIGKILL or SIGTERM it
at a known place. Points: ``crawled`` (a source's fetch log written), ``row`` (a parsed row handed to
the loader, inside the version's open transaction; a loader that takes batches, as PTP's does, counts
each batch), ``commit`` (everything loaded and the version
finished, before COMMIT), ``committed`` (after COMMIT, before the report file is written). Unset, the
cost is one boolean test per row.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from parsers.errors import PolicySyncError, UsageError

__all__ = [
    "PAUSE_ENV",
    "Interrupted",
    "StopRequested",
    "committing",
    "loading",
    "point",
    "requested",
    "row",
    "stoppable",
]

PAUSE_ENV = "POLICYSYNC_TEST_PAUSE_AT"
PAUSE_MAX_S = 300.0
POINTS = ("crawled", "row", "commit", "committed")


class Interrupted(PolicySyncError):
    """A sync or reparse stopped by SIGTERM before any source finished loading: its version was
    rolled back (exit code 3). Stopped later, the run commits what finished (module docstring)."""


class StopRequested(BaseException):  # noqa: N818 - not an error: a request, raised through `except Exception`
    """Raised inside the pipeline to unwind it on SIGTERM. A BaseException, so that the per-document
    ``except Exception`` (one bad document must not stop the others) does not swallow it."""


class _State:
    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name once one came
        self.phase = "crawl"  # "crawl" | "load" | "commit"
        self.pause_at: tuple[str, int] | None = None
        self.seen: dict[str, int] = {}

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]
        spec = os.environ.get(PAUSE_ENV, "").strip()
        if spec:
            name, _, n = spec.partition(":")
            if name not in POINTS or not (n or "1").isdigit():
                raise UsageError(f"{PAUSE_ENV}={spec!r}: not POINT or POINT:N (points: {', '.join(POINTS)})")
            self.pause_at = (name, int(n or 1))


STATE = _State()
#: True while a per-row check is needed (a stop was requested, or a test pause point is set).
WATCH = False


def _watch() -> None:
    global WATCH
    WATCH = STATE.requested is not None or STATE.pause_at is not None


def _on_sigterm(signum: int, frame: Any) -> None:
    STATE.requested = signal.Signals(signum).name
    _watch()
    if STATE.phase == "crawl":
        raise StopRequested


def loading() -> None:
    """The version's transaction is open: from now on a stop raises :class:`StopRequested` at the
    next row or batch, which rolls back the savepoint of the source being loaded."""
    STATE.phase = "load"
    if STATE.requested:
        raise StopRequested


def requested() -> str | None:
    """The name of the signal that asked this run to stop (``"SIGTERM"``), or None."""
    return STATE.requested


def committing() -> None:
    """The loads are over: a stop requested from now on lets the commit finish."""
    STATE.phase = "commit"


def point(name: str) -> None:
    """A named place in the pipeline: pause here if a test asked to."""
    if STATE.pause_at is None:
        return
    STATE.seen[name] = n = STATE.seen.get(name, 0) + 1
    if STATE.pause_at != (name, n):
        return
    sys.stderr.write(f"policysync: paused at {name}:{n} ({PAUSE_ENV})\n")
    sys.stderr.flush()
    deadline = time.monotonic() + PAUSE_MAX_S
    while STATE.requested is None and time.monotonic() < deadline:
        time.sleep(0.02)


def row() -> None:
    """Called for each row while :data:`WATCH` is set."""
    point("row")
    if STATE.requested and STATE.phase == "load":
        raise StopRequested


F = TypeVar("F", bound=Callable[..., Any])


def _abandon(home: Any) -> list[int]:
    """Mark the versions this process left ``building`` as failed (interrupted); their ids."""
    from rulebook.db import open_rulebook

    db = open_rulebook(home.db_path)
    try:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ids = [
            r["id"]
            for r in db.query(
                "SELECT id FROM versions WHERE status = 'building' AND json_extract(summary, '$.pid') = ?",
                [os.getpid()],
            )
        ]
        for v in ids:
            db.table("versions").update(
                v,
                {
                    "status": "failed",
                    "finished_at": now,
                    "summary": json.dumps({"interrupted": STATE.requested or "SIGTERM", "pid": os.getpid()}),
                },
            )
        return ids
    finally:
        db.close()


def stoppable(func: F) -> F:
    """Run ``func(home, ...)`` with SIGTERM turned into a clean stop (module docstring)."""

    @functools.wraps(func)
    def run(home: Any, *args: Any, **kwargs: Any) -> Any:
        STATE.reset()
        _watch()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
        try:
            return func(home, *args, **kwargs)
        except StopRequested:
            if main:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
            if STATE.phase == "crawl":
                # The crawl under way is abandoned on purpose (the process is about to exit): its
                # pending download tasks are not worth asyncio's "Task was destroyed" complaints.
                logging.getLogger("asyncio").setLevel(logging.CRITICAL)
            ids = _abandon(home)
            what = f"version {ids[0]} rolled back and marked failed" if ids else "nothing was written"
            raise Interrupted(
                f"{func.__name__} interrupted by {STATE.requested or 'SIGTERM'}: {what}; "
                "every previous fact stays in force"
            ) from None
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            STATE.phase = "crawl"
            STATE.pause_at = None
            _watch()

    return run  # type: ignore[return-value]
