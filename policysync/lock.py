"""One sync at a time: an exclusive lock on ``<home>/policysync.lock``.

The lock is ``fcntl.flock`` on an open file, not the file's existence: the kernel drops it when the
holding process dies, however it dies (SIGKILL included), so a lock left by a dead process is taken
over by the next run without any guessing about pids. The file is never deleted (deleting a flock'd
file lets two processes each lock a different inode); it only carries the holder's description
(pid, host, start time, command) as JSON, for the one-line refusal a second run prints. A holder
that ends normally marks the file ``released``; a file still naming a holder when the lock is free
means that holder died, and the takeover is logged.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parsers.errors import PolicySyncError
from policysync.config import Home
from rulebook.verify import pid_alive

log = logging.getLogger("policysync.lock")

LOCK_NAME = "policysync.lock"
POLL_S = 0.1


class LockBusy(PolicySyncError):
    """Another run holds the home's lock (CLI exit code 2: nothing was attempted)."""

    exit_code = 2


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started_at: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at} ({self.command})"


def lock_path(home: Home) -> Path:
    return home.root / LOCK_NAME


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _busy_message(path: Path, info: dict[str, Any] | None, waited: float | None) -> str:
    if info and "pid" in info and not info.get("released_at"):
        holder = Holder(int(info["pid"]), str(info.get("host", "?")), str(info.get("started_at", "?")),
                        str(info.get("command", "?")))
        who = holder.describe()
        if holder.host == socket.gethostname() and not pid_alive(holder.pid):
            # flock is still held although the named pid is gone: a child inherited the descriptor.
            who += "; that pid is gone, a process that inherited its lock descriptor still holds it"
    else:
        who = "a holder that has not written its details yet"
    if waited is None:
        return f"{path}: another policysync run holds the lock: {who} (use --wait SECONDS to wait for it)"
    return f"{path}: another policysync run still holds the lock after waiting {waited:g} s: {who}"


@contextmanager
def hold(home: Home, *, command: str, wait: float = 0.0, now: str | None = None) -> Iterator[Holder]:
    """Hold the home's lock for the body. Raises :class:`LockBusy` (one line naming the holder) when
    another process holds it and does not let go within ``wait`` seconds."""
    path = lock_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        waited_logged = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise LockBusy(_busy_message(path, _read_holder(fd), wait if wait > 0 else None)) from None
            if not waited_logged:
                log.info("waiting for the lock", extra={"event": "lock_wait", "holder": _read_holder(fd),
                                                        "wait_s": wait})
                waited_logged = True
            time.sleep(POLL_S)
        previous = _read_holder(fd)
        if previous and "pid" in previous and not previous.get("released_at"):
            log.warning(
                "%s: took over the lock left by pid %s on %s, started %s (%s): that run ended without releasing it",
                path, previous.get("pid"), previous.get("host"), previous.get("started_at"), previous.get("command"),
                extra={"event": "lock_takeover", "previous": previous},
            )
        holder = Holder(os.getpid(), socket.gethostname(),
                        now or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), command)
        _write(fd, {"pid": holder.pid, "host": holder.host, "started_at": holder.started_at,
                    "command": holder.command})
        try:
            yield holder
        finally:
            info = {"pid": holder.pid, "host": holder.host, "started_at": holder.started_at,
                    "command": holder.command,
                    "released_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            _write(fd, info)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write(fd: int, info: dict[str, Any]) -> None:
    data = (json.dumps(info, sort_keys=True) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
