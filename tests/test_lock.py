"""One sync at a time (issue 8 part 1): the home's lock, tested against a real second process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from policysync.cli import cli
from policysync.config import Home, init_home
from policysync.lock import LOCK_NAME, LockBusy, hold

# A second process that takes the lock, says so on stdout, then holds it until it reads a line on
# stdin (or until it is killed), and releases it normally on that line.
HOLDER = """
import sys
from pathlib import Path
from policysync.config import Home
from policysync.lock import hold
with hold(Home(Path(sys.argv[1])), command="sync", now="2026-11-19T06:00:00Z") as h:
    print("held", h.pid, flush=True)
    sys.stdin.readline()
"""


def start_holder(home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("held "), line
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.wait(timeout=10)


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    init_home(Home(tmp_path))
    return tmp_path


def test_second_sync_exits_2_naming_the_holder(home: Path) -> None:
    proc = start_holder(home)
    try:
        for command in ("sync", "reparse"):
            code, out, err = run(home, command)
            assert code == 2, (out, err)
            assert err == (
                f"error: {home / LOCK_NAME}: another policysync run holds the lock: pid {proc.pid} on "
                f"{socket.gethostname()}, started 2026-11-19T06:00:00Z (sync) (use --wait SECONDS to wait for it)\n"
            )
            assert out == ""
        # Nothing was attempted: no version was opened while the lock was held.
        code, out, _ = run(home, "versions", "--json")
        assert json.loads(out)["versions"] == []
    finally:
        release(proc)


def test_wait_gives_up_after_the_given_time(home: Path) -> None:
    proc = start_holder(home)
    try:
        t0 = time.monotonic()
        code, _, err = run(home, "reparse", "--wait", "0.5")
        assert 0.5 <= time.monotonic() - t0 < 5
        assert code == 2
        assert err.startswith(f"error: {home / LOCK_NAME}: another policysync run still holds the lock after "
                              f"waiting 0.5 s: pid {proc.pid} on ")
        assert err.count("\n") == 1
    finally:
        release(proc)


def test_wait_runs_once_the_holder_finishes(home: Path) -> None:
    proc = start_holder(home)
    try:
        # Let go of the lock a moment after the second run has started waiting for it.
        timer = threading.Timer(0.6, release, [proc])
        timer.start()
        code, out, err = run(home, "reparse", "--wait", "30", "--json")
        timer.join()
        assert code == 0, err
        assert json.loads(out)["status"] == "committed"
    finally:
        if proc.poll() is None:
            release(proc)
    info = json.loads((home / LOCK_NAME).read_text())
    assert info["pid"] == os.getpid() and info["command"] == "reparse" and info["released_at"]


def test_lock_of_a_killed_process_is_taken_over(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    proc = start_holder(home)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # The dead holder's description is still in the file, without a release mark...
    left = json.loads((home / LOCK_NAME).read_text())
    assert left["pid"] == proc.pid and "released_at" not in left
    # ...but the kernel dropped its flock, so the next run takes the lock at once and says so.
    with caplog.at_level("WARNING", logger="policysync.lock"):
        code, out, err = run(home, "reparse", "--json")
    assert code == 0, err
    assert any(
        f"took over the lock left by pid {proc.pid} on {socket.gethostname()}, started 2026-11-19T06:00:00Z (sync)"
        in r.getMessage()
        for r in caplog.records
    )
    info = json.loads((home / LOCK_NAME).read_text())
    assert info["pid"] == os.getpid() and info["released_at"]


def test_in_process_holder_blocks_a_second_holder(home: Path) -> None:
    """flock conflicts between two open file descriptions even within one process."""
    with hold(Home(home), command="gc", now="2026-11-19T06:00:00Z"):
        with pytest.raises(LockBusy, match=r"pid \d+ on .*, started 2026-11-19T06:00:00Z \(gc\)"):
            with hold(Home(home), command="sync"):
                pass
    with hold(Home(home), command="sync"):
        pass
