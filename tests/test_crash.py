"""Crash safety, proven (issue 8 part 2): ``policysync sync`` is a real subprocess of the CLI against
the loopback mirror, killed with SIGKILL during the fetch, at the start of the parse, deep in the load
of a big source (a generated PTP quarter, ``bench/generate.py``), just before COMMIT and just after it,
and at seeded random moments. After each kill ``policysync verify`` passes (it marks the version the
dead process left ``building`` as abandoned), no fact of the dead version is anywhere, and the next
sync completes with exactly the facts of an uninterrupted run. SIGTERM stops a sync cleanly: while
crawling, or while loading the first source, nothing is committed (exit 3, one line); while loading a
later source, only that source rolls back, the sources after it are not run, and the version commits
the sources that finished (exit 1), the next sync loading the rest; once everything is loaded, the
commit finishes.

The kill points are ``POLICYSYNC_TEST_PAUSE_AT`` (policysync/interrupt.py): the sync prints
``policysync: paused at POINT`` on stderr and waits there; the fetch is caught in flight by a slow
fault on the mirror instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from policysync.config import Home, init_home, resolve_home
from policysync.mirror import CMS_HOST, MirrorServer
from policysync.mirror_faults import Fault
from policysync.pipeline import sync
from rulebook import versions as vers
from rulebook.db import open_rulebook
from rulebook.facts import as_of
from rulebook.kinds import KINDS, KINDS_BY_SOURCE
from rulebook.verify import verify_rulebook

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["cms_hcpcs", "cms_ncci_mue", "cms_ncci_ptp"]
PTP_ROWS = 12_000  # the generated PTP quarter (bench/generate.py --small --ptp-rows): four parts of ~3,000 rows
HCPCS_ROWS = 7158  # July 2020
MUE_ROWS = 600 + 540 + 162  # the generated Q3 tables (generated.json says the same; checked below)
PTP_F2 = f"/{CMS_HOST}/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f2.zip"
WAIT_S = 60.0  # for a paused sync to reach its point
# "row" counts each row handed to the loader, and each batch for a loader that takes batches (PTP:
# one batch per part at this size). So this is the third PTP part, the first two loaded, uncommitted.
PTP_LOAD = f"row:{HCPCS_ROWS + MUE_ROWS + 3}"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", REPO / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_generate"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crash") / "generated"
    hcpcs = shared_data / "hcpcs" / "quarterly_2025" / "HCPC2025_OCT_ANWEB.xlsx"
    args = [str(out), "--small", "--ptp-rows", str(PTP_ROWS), "--no-xlsx", "--hcpcs", str(hcpcs)]
    assert _generator().main(args) == 0
    quarter = json.loads((out / "generated.json").read_text())["quarters"]["2026-07"]
    assert sum(p["rows"] for p in quarter["ptp"]) == PTP_ROWS
    assert sum(m["rows"] for m in quarter["mue"]) == MUE_ROWS
    return out / "2026-07"


@pytest.fixture(scope="module")
def mirror(shared_data: Path, generated: Path) -> Iterator[MirrorServer]:
    with MirrorServer(shared_data, releases=["2020-07"], extra_dirs=[generated]) as m:
        yield m


def new_home(root: Path) -> Home:
    home = resolve_home(root / "home")
    init_home(home)
    return home


def facts(home: Home) -> dict[str, set[tuple[Any, ...]]]:
    """Every fact as of the newest committed version, without the columns that name versions or rows
    (an interrupted history numbers its versions differently)."""
    db = open_rulebook(home.db_path)
    try:
        latest = vers.latest_committed(db) or 0
        return {
            name: {
                tuple(v for k, v in r.items() if k not in ("id", "v_from", "v_to"))
                for r in as_of(db, kind, latest)
            }
            for name, kind in KINDS.items()
        }
    finally:
        db.close()


def statuses(home: Home) -> list[tuple[int, str]]:
    db = open_rulebook(home.db_path)
    try:
        return [(r["id"], r["status"]) for r in db.query("SELECT id, status FROM versions ORDER BY id")]
    finally:
        db.close()


def uncommitted_rows(home: Home) -> int:
    """Fact rows opened or closed by a version that is not committed (must always be 0)."""
    db = open_rulebook(home.db_path)
    try:
        committed = "(SELECT id FROM versions WHERE status = 'committed')"
        return sum(
            db.execute(
                f"SELECT COUNT(*) FROM [{k}] WHERE v_from NOT IN {committed} OR v_to NOT IN {committed}"
            ).fetchone()[0]
            for k in KINDS
        )
    finally:
        db.close()


@pytest.fixture(scope="module")
def reference_home(mirror: MirrorServer, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home after one uninterrupted sync (tests that change it work on a copy)."""
    home = new_home(tmp_path_factory.mktemp("reference"))
    report = sync(home, sources=SOURCES, mirror=mirror.url)
    assert report.exit_code == 0, report.to_json()
    assert [s.records for s in report.sources] == [HCPCS_ROWS, MUE_ROWS, PTP_ROWS]
    return home


@pytest.fixture(scope="module")
def reference(reference_home: Home) -> dict[str, set[tuple[Any, ...]]]:
    """The facts of an uninterrupted sync."""
    return facts(reference_home)


def cli(home: Home, *args: str) -> list[str]:
    return [sys.executable, "-c", "from policysync.cli import main; main()", "--home", str(home.root), *args]


RUNS: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_leftover_process() -> Iterator[None]:
    """A test that fails before it kills its sync kills it here: nothing outlives the test."""
    yield
    while RUNS:
        proc = RUNS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT_S)


class Run:
    """``policysync sync`` in a subprocess, its stderr read line by line as it comes."""

    def __init__(
        self, home: Home, mirror: MirrorServer, pause_at: str | None = None, sources: list[str] = SOURCES
    ) -> None:
        env = {k: v for k, v in os.environ.items() if k != "POLICYSYNC_TEST_PAUSE_AT"}
        if pause_at:
            env["POLICYSYNC_TEST_PAUSE_AT"] = pause_at
        args = [a for s in sources for a in ("--source", s)]
        self.proc = subprocess.Popen(
            cli(home, "sync", "--mirror", mirror.url, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        RUNS.append(self.proc)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self.readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for t in self.readers:
            t.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout.extend(self.proc.stdout)

    def wait_for_pause(self) -> str:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.stderr.append(line)
            if line.startswith("policysync: paused at "):
                return line.strip()
        self.proc.kill()
        raise AssertionError(f"the sync never paused: {''.join(self.stderr)}")

    def finish(self, sig: int | None = None) -> tuple[int, str, str]:
        """Send ``sig`` (if any), wait for the end: (exit code, stdout, stderr)."""
        if sig is not None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=WAIT_S)
        for t in self.readers:
            t.join(timeout=WAIT_S)
        while (line := self.lines.get()) is not None:
            self.stderr.append(line)
        return code, "".join(self.stdout), "".join(self.stderr)


def verify_cli(home: Home) -> dict[str, Any]:
    """``policysync verify --json`` (the click command, run in this process: no interpreter start)."""
    from click.testing import CliRunner

    from policysync.cli import cli as policysync_cli

    done = CliRunner().invoke(policysync_cli, ["--home", str(home.root), "verify", "--json"])
    assert done.exit_code == 0, done.output
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["ok"] and result["problems"] == []
    return result


def resync_matches(
    home: Home, mirror: MirrorServer, reference: dict[str, set[tuple[Any, ...]]], sources: list[str] = SOURCES
) -> None:
    """The next sync completes, and the rulebook holds exactly the facts of the uninterrupted run."""
    report = sync(home, sources=sources, mirror=mirror.url)
    assert report.exit_code == 0 and report.status == "committed", report.to_json()
    assert facts(home) == reference
    assert uncommitted_rows(home) == 0
    problems, _ = verify_rulebook(open_rulebook(home.db_path), home.artifacts)
    assert problems == []


# Pause point -> (what the line says, versions left building by the kill).
KILL_POINTS = {
    "crawled:1": 1,  # cms_hcpcs crawled and its fetch log written; MUE and PTP not yet fetched
    "row:1": 1,  # the first row of the first document parsed: the version's transaction is open
    PTP_LOAD: 1,  # deep in the load of the PTP quarter: two of its four parts loaded, uncommitted
    "commit": 1,  # everything loaded, the version finished, COMMIT not yet done
    "committed": 0,  # COMMIT done, the process dies before writing its report file
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_at_a_point_then_verify_passes_and_the_next_sync_completes(
    point: str, mirror: MirrorServer, reference: dict[str, set[tuple[Any, ...]]], tmp_path: Path
) -> None:
    home = new_home(tmp_path)
    run = Run(home, mirror, pause_at=point)
    spec = point if ":" in point else f"{point}:1"
    assert run.wait_for_pause() == f"policysync: paused at {spec} (POLICYSYNC_TEST_PAUSE_AT)"
    code, out, _ = run.finish(signal.SIGKILL)
    assert code == -signal.SIGKILL and out == ""

    building = [v for v, s in statuses(home) if s == "building"]
    assert len(building) == KILL_POINTS[point]
    assert uncommitted_rows(home) == 0  # the dead transaction left nothing behind
    if point == "committed":
        assert statuses(home) == [(1, "committed")] and facts(home) == reference
    else:
        assert all(not rows for rows in facts(home).values())

    result = verify_cli(home)
    if building:
        assert result["checked"]["abandoned versions marked failed"] == 1
        assert dict(statuses(home))[building[0]] == "failed"
    assert "building" not in {s for _, s in statuses(home)}
    resync_matches(home, mirror, reference)


def test_sigkill_during_a_fetch(
    mirror: MirrorServer, reference: dict[str, set[tuple[Any, ...]]], tmp_path: Path
) -> None:
    """Killed while a PTP part is being downloaded (the mirror holds the request)."""
    home = new_home(tmp_path)
    fault = Fault.slow(WAIT_S)
    mirror.fault(PTP_F2, fault)
    try:
        run = Run(home, mirror)
        deadline = time.monotonic() + WAIT_S
        while fault.spoiled == 0 and time.monotonic() < deadline and run.proc.poll() is None:
            time.sleep(0.05)
        assert fault.spoiled == 1, "the sync never asked for the PTP part"
        code, _, _ = run.finish(signal.SIGKILL)
    finally:
        mirror.clear_fault(PTP_F2)
    assert code == -signal.SIGKILL
    assert [s for _, s in statuses(home)] == ["building"]
    verify_cli(home)
    assert [s for _, s in statuses(home)] == ["failed"]
    resync_matches(home, mirror, reference)


def test_sigkill_at_seeded_random_moments(
    mirror: MirrorServer, reference: dict[str, set[tuple[Any, ...]]], tmp_path: Path
) -> None:
    """Kill after seeded random delays, several times on the same home, verifying after each kill;
    whatever the kills left, the sync after them completes with the facts of an uninterrupted run."""
    rng = random.Random(20261124)
    home = new_home(tmp_path)
    killed = 0
    for _ in range(3):
        run = Run(home, mirror)
        time.sleep(rng.uniform(0.3, 3.0))
        code, _, stderr = run.finish(signal.SIGKILL)
        killed += code == -signal.SIGKILL
        assert code in (-signal.SIGKILL, 0), stderr
        assert uncommitted_rows(home) == 0
        verify_cli(home)
        assert "building" not in {s for _, s in statuses(home)}
    assert killed >= 1
    resync_matches(home, mirror, reference)


def only(reference: dict[str, set[tuple[Any, ...]]], sources: list[str]) -> dict[str, set[tuple[Any, ...]]]:
    """The reference facts of ``sources``, every other kind empty."""
    kept = {k.name for s in sources for k in KINDS_BY_SOURCE[s]}
    return {name: rows if name in kept else set() for name, rows in reference.items()}


# Pause point -> exit code, whether the version is committed. (Partial commits: further below.)
TERM_POINTS = {
    "crawled:2": (3, False),  # crawling: stops at once, nothing written
    "row:5": (3, False),  # loading the first source: no source finished, the version rolls back
    "commit": (0, True),  # everything loaded: the commit finishes
}


@pytest.mark.parametrize("point", list(TERM_POINTS))
def test_sigterm_stops_cleanly(
    point: str, mirror: MirrorServer, reference: dict[str, set[tuple[Any, ...]]], tmp_path: Path
) -> None:
    home = new_home(tmp_path)
    run = Run(home, mirror, pause_at=point)
    run.wait_for_pause()
    code, out, stderr = run.finish(signal.SIGTERM)
    expected_code, committed = TERM_POINTS[point]
    assert code == expected_code, stderr
    assert uncommitted_rows(home) == 0
    if committed:
        assert statuses(home) == [(1, "committed")] and facts(home) == reference
        assert out.startswith("version 1 (sync): committed")
    else:
        lines = [ln for ln in stderr.splitlines() if not ln.startswith("policysync: paused at")]
        assert lines == [
            "error: sync interrupted by SIGTERM: version 1 rolled back and marked failed; "
            "every previous fact stays in force"
        ]
        assert out == ""
        assert statuses(home) == [(1, "failed")]
        db = open_rulebook(home.db_path)
        assert vers.get_version(db, 1).summary["interrupted"] == "SIGTERM"
        db.close()
        assert all(not rows for rows in facts(home).values())
    verify_cli(home)
    resync_matches(home, mirror, reference)


# (sources, pause point) -> (the source SIGTERM stops while loading, the sources committed before it).
PARTIAL_POINTS = {
    # cms_hcpcs, then the generated PTP quarter: two of PTP's four parts loaded when SIGTERM comes.
    "hcpcs+ptp": (["cms_hcpcs", "cms_ncci_ptp"], f"row:{HCPCS_ROWS + 3}", "cms_ncci_ptp", ["cms_hcpcs"]),
    # The three sources, SIGTERM in the middle one (MUE): PTP after it is not run at all.
    "mue-of-three": (SOURCES, f"row:{HCPCS_ROWS + 5}", "cms_ncci_mue", ["cms_hcpcs"]),
}


@pytest.mark.parametrize("case", list(PARTIAL_POINTS))
def test_sigterm_while_loading_a_later_source_commits_the_sources_that_finished(
    case: str, mirror: MirrorServer, reference: dict[str, set[tuple[Any, ...]]], tmp_path: Path
) -> None:
    sources, point, stopped, done = PARTIAL_POINTS[case]
    home = new_home(tmp_path)
    run = Run(home, mirror, pause_at=point, sources=sources)
    run.wait_for_pause()
    code, out, stderr = run.finish(signal.SIGTERM)
    assert code == 1, stderr  # some sources failed, the others were committed (DESIGN.md's exit codes)
    assert [ln for ln in stderr.splitlines() if not ln.startswith("policysync: paused at")] == []
    assert statuses(home) == [(1, "committed")]
    assert uncommitted_rows(home) == 0
    assert facts(home) == only(reference, done)  # the finished sources' facts, none of the stopped one

    report = json.loads((home.reports / "sync-00001.json").read_text())
    assert (report["status"], report["interrupted"], report["exit_code"]) == ("committed", "SIGTERM", 1)
    assert report["review_state"] == "pending_review"  # first facts of cms_hcpcs: substantive, as usual
    by_source = {s["source"]: s for s in report["sources"]}
    assert [by_source[s]["outcome"] for s in done] == ["changed"] * len(done)
    assert all(by_source[s]["needs_review"] > 0 for s in done)
    after = sources[sources.index(stopped) + 1 :]
    for source in [stopped, *after]:
        rep = by_source[source]
        assert rep["outcome"] == "failed"
        assert (rep["records"], rep["added"], rep["documents_parsed"], rep["needs_review"]) == (0, 0, 0, 0)
        cause = (
            f"interrupted by SIGTERM while loading {source}: its load was rolled back"
            if source == stopped
            else f"not run: interrupted by SIGTERM before {source} was loaded"
        )
        assert rep["errors"] == [f"{cause}; its previous facts stay in force and the next run loads it"]
        assert f"    error: {rep['errors'][0]}" in out.splitlines()  # the terminal summary says it too
    assert out.startswith("version 1 (sync): committed, review: pending_review")
    db = open_rulebook(home.db_path)
    parsed = {r["source"] for r in db.query("SELECT DISTINCT source FROM artifacts WHERE parse_status = 'parsed'")}
    db.close()
    assert parsed == set(done)  # the stopped source's documents wait, unparsed, for the next run

    verify_cli(home)
    resync_matches(home, mirror, only(reference, sources), sources)
    db = open_rulebook(home.db_path)
    second = vers.get_version(db, 2).summary
    db.close()
    loaded = {s["source"] for s in second["sources"] if s["records"]}
    assert loaded == {stopped, *after}  # the next sync loaded exactly what the stopped one did not


def test_sigterm_during_a_fetch_stops_at_once(
    mirror: MirrorServer, reference: dict[str, set[tuple[Any, ...]]], tmp_path: Path
) -> None:
    """SIGTERM while a download hangs: the sync does not wait for the download, it stops now."""
    home = new_home(tmp_path)
    fault = Fault.slow(WAIT_S)
    mirror.fault(PTP_F2, fault)
    try:
        run = Run(home, mirror)
        deadline = time.monotonic() + WAIT_S
        while fault.spoiled == 0 and time.monotonic() < deadline and run.proc.poll() is None:
            time.sleep(0.05)
        assert fault.spoiled == 1, "the sync never asked for the PTP part"
        sent = time.monotonic()
        code, out, stderr = run.finish(signal.SIGTERM)
        took = time.monotonic() - sent
    finally:
        mirror.clear_fault(PTP_F2)
    assert code == 3 and out == "", stderr
    assert stderr.splitlines() == [
        "error: sync interrupted by SIGTERM: version 1 rolled back and marked failed; "
        "every previous fact stays in force"
    ]
    assert took < WAIT_S / 2  # it did not sit out the hanging download
    assert statuses(home) == [(1, "failed")]
    verify_cli(home)
    resync_matches(home, mirror, reference)


# --- what verify checks and repairs (constructed states on a copy of the reference home) ---------


def _copy(home: Home, tmp_path: Path) -> Home:
    copy = resolve_home(tmp_path / "copy")
    shutil.copytree(home.root, copy.root)
    return copy


def test_verify_marks_only_a_dead_processs_build_abandoned(reference_home: Home, tmp_path: Path) -> None:
    home = _copy(reference_home, tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has ended
    db = open_rulebook(home.db_path)
    dead = vers.begin_version(db, kind="sync", now="2026-11-24T00:00:00Z")
    db.table("versions").update(dead, {"summary": json.dumps({"pid": dead_pid, "host": socket.gethostname()})})
    live = vers.begin_version(db, kind="sync", now="2026-11-24T00:00:01Z")  # this process: alive

    problems, _ = verify_rulebook(db, home.artifacts, repair=False)
    assert problems == [
        f"version {dead}: still building (in progress, or left by a process that died)",
        f"version {live}: still building (in progress, or left by a process that died)",
    ]
    problems, checked = verify_rulebook(db, home.artifacts)
    assert problems == []
    assert (checked["abandoned versions marked failed"], checked["builds in progress"]) == (1, 1)
    assert (vers.get_version(db, dead).status, vers.get_version(db, live).status) == ("failed", "building")
    assert "no longer running" in vers.get_version(db, dead).summary["abandoned"]
    db.close()


def test_verify_reports_facts_of_a_version_that_never_committed(reference_home: Home, tmp_path: Path) -> None:
    """What a half-applied load would look like: facts whose version is not committed."""
    home = _copy(reference_home, tmp_path)
    db = open_rulebook(home.db_path)
    db.execute("UPDATE versions SET status = 'failed' WHERE id = 1")
    db.conn.commit()
    problems, _ = verify_rulebook(db, home.artifacts)
    db.close()
    assert f"hcpcs_codes: {HCPCS_ROWS} rows opened by version 1, which never committed" in problems
    assert f"ptp_edits: {PTP_ROWS} rows opened by version 1, which never committed" in problems
    assert "artifacts: 8 documents marked parsed in version 1, which never committed" in problems
