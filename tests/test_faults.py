"""The fault suite (issue 8 part 3): the CMS spiders against a flaky publisher, over loopback.
For ``cms_mcd`` the mirror publishes a complete export (the recorded tables completed with the
constructed ``tests/fixtures/cms_mcd`` ones, as ``policysync/demo.py`` does); its document is
``current_article.zip``, fetched through the licence page.

Each case starts from a home where a clean sync of every source below has committed its facts, makes
the mirror misbehave for ONE source (``policysync/mirror_faults.py``), runs the weekly sync of all
of them, and checks: the exit code, the source's one-line error in the run report (and in the
terminal summary), that every fact of the previous version is still in force, and that the next
sync, once the fault is gone, completes cleanly.

To cover a new spider, add a :class:`Spider` row to :data:`SPIDERS` (its landing page, one of its
documents, the words its errors use) and give the template sync its source.

``cms_coverage_api`` has no landing page and documents, so it has its own group,
:data:`API_FAULTS` (``test_api_fault``). That group runs on a second mirror serving the constructed
API, and its faulted sync is the one that should load a new version. The faults hit that version's
detail call, the schedule, the licence token and the API host's robots.txt. Only that source syncs,
so a failure commits nothing (exit 3) and the previous version stays in force; the next sync, once
the fault is gone, loads the version.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from policysync.config import Home, init_home, resolve_home
from policysync.mirror import CMS_HOST, HCPCS_LANDING_PATH, MUE_LANDING_PATH, PTP_LANDING_PATH, MirrorServer
from policysync.mirror_asp import ASP_LANDING_PATH
from policysync.mirror_coverage_api import API_HOST, coverage_api, publish_tables, read_tables
from policysync.mirror_faults import Fault
from policysync.mirror_icd10cm import ICD10_LANDING_PATH
from policysync.mirror_mcd import LANDING_PATH as MCD_LANDING_PATH
from policysync.mirror_mcd import export_zip, mirror_file_path, publish_export
from policysync.pipeline import SyncReport, sync
from policysync.report import render_sync_report
from rulebook import versions as vers
from rulebook.db import open_rulebook
from rulebook.facts import as_of
from rulebook.kinds import KINDS
from tests.conftest import REPO
from tests.test_coverage_api_sync import next_version


@dataclass(frozen=True)
class Spider:
    source: str
    landing: str  # mirror path of its landing page
    document: str  # mirror path of one document the landing page links
    links_word: str  # "no <links_word> links found on the landing page"
    html_error: str  # the error for an HTML page served with 200 where the document was expected

    @property
    def host(self) -> str:
        return self.document.split("/", 2)[1]

    @property
    def url(self) -> str:
        return f"https://{self.document.lstrip('/')}"

    @property
    def landing_url(self) -> str:
        return f"https://{self.landing.lstrip('/')}"

    @property
    def filename(self) -> str:
        return self.document.rsplit("/", 1)[1]


def _zip(name: str) -> str:
    return f"/{CMS_HOST}/files/zip/{name}"


HCPCS_APRIL = "april-2020-alpha-numeric-hcpcs-file.zip"
MUE_PRACTITIONER = "medicare-ncci-2026-q3-practitioner-services-mue-table.zip"
PTP_F1 = "medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
ASP_PRICING = "october-2025-asp-pricing-file.zip"
ICD10_TABULAR = "april-1-2026-code-tables-tabular-and-index.zip"
MCD_ARTICLE = "current_article"
MCD_EXPORTS = ("current_article", "current_lcd")
MCD_RECORDED = "mcd/export_2026-01"  # the recorded export's CSV tables (completed, see mcd_export)
MCD_FIXTURES = REPO / "tests" / "fixtures" / "cms_mcd"

SPIDERS = [
    Spider(
        "cms_hcpcs", HCPCS_LANDING_PATH, _zip(HCPCS_APRIL), "HCPCS file",
        f"{HCPCS_APRIL}: expected a zip archive, got an HTML page",
    ),
    Spider(
        "cms_ncci_mue", MUE_LANDING_PATH, _zip(MUE_PRACTITIONER), "MUE table",
        f"{MUE_PRACTITIONER}: expected a zip archive, got an HTML page",
    ),
    Spider(
        # The PTP spider sees the HTML itself: after accepting the licence it expects the file.
        "cms_ncci_ptp", PTP_LANDING_PATH, _zip(PTP_F1), "PTP edit file",
        f"https://www.cms.gov/files/zip/{PTP_F1}: license gate: accepting led to an HTML page "
        f"(https://www.cms.gov/files/zip/{PTP_F1}?agree=yes), not the file",
    ),
    Spider(
        "cms_asp", ASP_LANDING_PATH, _zip(ASP_PRICING), "ASP payment limit or NDC-HCPCS crosswalk",
        f"{ASP_PRICING}: expected a zip archive, got an HTML page",
    ),
    Spider(
        "icd10cm", ICD10_LANDING_PATH, _zip(ICD10_TABULAR), "ICD-10-CM fiscal-year page or code-set zip",
        f"{ICD10_TABULAR}: expected a zip archive, got an HTML page",
    ),
    Spider(
        # Behind the licence page too: the spider accepts it (?agree=yes) and then expects the export.
        "cms_mcd", f"/{CMS_HOST}{MCD_LANDING_PATH}", mirror_file_path(MCD_ARTICLE),
        "MCD export (current_article.zip, current_lcd.zip)",
        f"https://downloads.cms.gov/medicare-coverage-database/downloads/exports/{MCD_ARTICLE}.zip: license gate: "
        f"accepting led to an HTML page (https://downloads.cms.gov/medicare-coverage-database/downloads/exports/"
        f"{MCD_ARTICLE}.zip?agree=yes), not the export",
    ),
]  # fmt: skip
# What the mirror publishes: HCPCS April 2020 and, for ASP, the October 2025 quarter (the HCPCS
# builder serves its October 2025 file too); the NCCI builders serve their recorded excerpts.
RELEASES = ["2020-04", "2025-10"]
SOURCES = [s.source for s in SPIDERS]
API_SOURCE = "cms_coverage_api"

TIMEOUT = 0.5  # DOWNLOAD_TIMEOUT of these syncs, so a server "slower than the timeout" costs little
RETRY_TIMES = 2  # crawlers/settings.py: 3 attempts in all
HTML = b"<!DOCTYPE html>\n<html><head><title>Service notice</title></head><body>Try again later.</body></html>"


@dataclass(frozen=True)
class Case:
    target: str  # "document" | "landing" | "robots"
    fault: Callable[[Spider], Fault]
    error: Callable[[Spider], str] | None  # the one line expected in the report; None: no error
    exit_code: int
    requests: int | None = None  # how many requests the faulted path sees, when that is the point


FAULTS: dict[str, Case] = {
    "503 burst within the retry budget": Case(
        "document", lambda s: Fault.burst(503, times=RETRY_TIMES), None, 0, requests=RETRY_TIMES + 1
    ),
    "503 burst longer than the retry budget": Case(
        "document",
        lambda s: Fault.burst(503, times=RETRY_TIMES + 1),
        lambda s: f"{s.url}: HTTP 503 Service Unavailable (after 2 retries)",
        1,
        requests=RETRY_TIMES + 1,
    ),
    "500 for ever": Case(
        "document",
        lambda s: Fault.burst(500),
        lambda s: f"{s.url}: HTTP 500 Internal Server Error (after 2 retries)",
        1,
    ),
    "connection reset": Case(
        "document",
        lambda s: Fault.reset(),
        lambda s: f"{s.url}: connection reset or lost before a complete response (after 2 retries)",
        1,
    ),
    "server slower than the timeout": Case(
        "document",
        lambda s: Fault.slow(TIMEOUT * 4),
        lambda s: f"{s.url}: timed out: no complete response within {TIMEOUT:g} s (DOWNLOAD_TIMEOUT) (after 2 retries)",
        1,
    ),
    "body shorter than its Content-Length": Case(
        "document",
        lambda s: Fault.short_body(100),
        lambda s: f"{s.url}: connection closed before the whole body was received (shorter than its Content-Length)"
        " (after 2 retries)",
        1,
    ),
    "HTML page with status 200 instead of the file": Case(
        "document", lambda s: Fault.answer(200, {"Content-Type": "text/html; charset=utf-8"}, HTML),
        lambda s: s.html_error, 1,
    ),
    "redirect loop": Case(
        "document",
        lambda s: Fault.redirect(s.document),
        lambda s: f"{s.url}: redirect loop: still redirected after 20 redirects (REDIRECT_MAX_TIMES)",
        1,
        requests=21,
    ),
    "redirect off the allow-list": Case(
        "document",
        lambda s: Fault.redirect("https://downloads.example.org/x.zip"),
        lambda s: f"{s.url}: redirect to https://downloads.example.org/x.zip refused: downloads.example.org "
        f"is not on the allow-list for {s.source}",
        1,
        requests=1,
    ),
    "robots.txt disallows the file": Case(
        "robots",
        lambda s: Fault.answer(
            200,
            {"Content-Type": "text/plain"},
            f"User-agent: *\nDisallow: {s.document.removeprefix('/' + s.host)}\n".encode(),
        ),
        lambda s: f"{s.url}: disallowed by robots.txt",
        1,
        requests=0,
    ),
    "landing page that suddenly lists no files": Case(
        "landing",
        lambda s: Fault.answer(200, {"Content-Type": "text/html; charset=utf-8"}, HTML),
        lambda s: f"{s.landing_url}: no {s.links_word} links found on the landing page",
        1,
    ),
}  # fmt: skip


def facts(home: Home) -> tuple[int | None, dict[str, list[tuple[Any, ...]]]]:
    """The newest committed version and every fact as of it (all columns but the row id)."""
    db = open_rulebook(home.db_path)
    try:
        latest = vers.latest_committed(db)
        out = {}
        for name, kind in KINDS.items():
            rows = as_of(db, kind, latest or 0)
            out[name] = [tuple(v for k, v in r.items() if k != "id") for r in rows]
        return latest, out
    finally:
        db.close()


@pytest.fixture(scope="module")
def mirror(shared_data: Path) -> Iterator[MirrorServer]:
    with MirrorServer(shared_data, releases=RELEASES, sources=SOURCES) as m:
        # The recorded MCD export lacks four tables (policysync/mirror_mcd.py): publish it completed
        # with the constructed ones, as policysync/demo.py does.
        for name in MCD_EXPORTS:
            publish_export(m, name, export_zip(name, [shared_data / MCD_RECORDED / name / "csv", MCD_FIXTURES]))
        yield m


@pytest.fixture(scope="module")
def template(mirror: MirrorServer, tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = resolve_home(tmp_path_factory.mktemp("faults") / "home")
    init_home(home)
    report = sync(home, sources=SOURCES, mirror=mirror.url)
    assert report.exit_code == 0, report.to_json()
    assert all(s.outcome == "changed" and s.added for s in report.sources), report.to_json()
    return home


def run(home: Home, mirror: MirrorServer) -> SyncReport:
    return sync(home, sources=SOURCES, mirror=mirror.url, crawl_settings={"DOWNLOAD_TIMEOUT": TIMEOUT})


@pytest.mark.parametrize("spider", SPIDERS, ids=SOURCES)
@pytest.mark.parametrize("case", list(FAULTS))
def test_fault(spider: Spider, case: str, mirror: MirrorServer, template: Home, tmp_path: Path) -> None:
    home = resolve_home(tmp_path / "home")
    shutil.copytree(template.root, home.root)
    before_version, before = facts(home)
    c = FAULTS[case]
    path = {"document": spider.document, "landing": spider.landing, "robots": f"/{spider.host}/robots.txt"}[c.target]
    seen = len(mirror.requests)
    mirror.fault(path, c.fault(spider))
    try:
        report = run(home, mirror)
    finally:
        mirror.clear_fault(path)
    asked = [r for r in mirror.requests[seen:] if r.path.partition("?")[0] == spider.document]

    assert report.exit_code == c.exit_code, report.to_json()
    src = next(s for s in report.sources if s.source == spider.source)
    others = [s for s in report.sources if s.source != spider.source]
    # The other sources were asked and found nothing new: committed as unchanged.
    assert [(s.outcome, s.errors) for s in others] == [("unchanged", [])] * len(others)
    if c.error is None:
        assert (src.outcome, src.errors) == ("unchanged", [])
    else:
        expected = c.error(spider)
        assert (src.outcome, src.errors) == ("failed", [expected])
        assert f"    error: {expected}\n" in render_sync_report(report)
    assert report.to_json()["sources"][SOURCES.index(spider.source)]["errors"] == src.errors
    if c.requests is not None:
        assert len(asked) == c.requests, [(r.path, r.status) for r in asked]
    if case == "503 burst within the retry budget":
        assert [r.status for r in asked] == [503, 503, 304]  # recovered on the last retry, conditionally

    # Every previous fact is still in force, and nothing was added: the version committed for the
    # other sources holds exactly the facts of the one before.
    after_version, after = facts(home)
    assert after_version is not None and before_version is not None and after_version > before_version
    assert after == before

    # Once the publisher behaves again, the next sync completes without an error and changes nothing.
    again = run(home, mirror)
    assert again.exit_code == 0 and all(s.errors == [] for s in again.sources), again.to_json()
    assert facts(home)[1] == before


def test_faults_count_the_requests_they_spoil(shared_data: Path) -> None:
    """The fault mechanism itself: a burst spoils exactly ``times`` requests, then the document is
    served (conditionally) again; a fault is recorded like any request."""
    import urllib.error
    import urllib.request

    with MirrorServer(shared_data, releases=["2020-04"], sources=["cms_hcpcs"]) as m:
        path = _zip(HCPCS_APRIL)
        m.fault(path, Fault.burst(503, times=2))
        statuses = []
        for _ in range(3):
            try:
                with urllib.request.urlopen(m.url + path, timeout=5) as resp:  # noqa: S310 - loopback
                    statuses.append(resp.status)
                    body = resp.read()
            except urllib.error.HTTPError as err:
                statuses.append(err.code)
        assert statuses == [503, 503, 200]
        assert body == m.document(path).body()
        assert [r.status for r in m.requests_for(path)] == [503, 503, 200]
        m.fault(path, Fault.short_body(10))
        with pytest.raises(Exception) as exc:  # noqa: B017 - http.client's IncompleteRead
            with urllib.request.urlopen(m.url + path, timeout=5) as resp:  # noqa: S310
                resp.read()
        assert "IncompleteRead" in type(exc.value).__name__


# --- cms_coverage_api: an API, not a landing page and its documents ---
#
# Its run asks the schedule (every run), then, when a week is new, the licence token, three reference
# lists, the week's listing and each changed version's detail calls. The module's own mirror serves
# the constructed API (policysync/mirror_coverage_api.py) over the recorded tables completed with the
# constructed ones; the template home has synced the versions of the week of 2025-12-28, and the API
# then lists A52370 v129 (a copy of v128 without one covered diagnosis, created 2026-01-05): each
# faulted run is the one that should load it.

API = f"https://{API_HOST}/v1/"
API_SCHEDULE = "metadata/local-data-schedule/"
API_TOKEN = "metadata/license-agreement/"
API_V129 = "data/article/?articleid=52370&ver=129"  # the first detail call of the new version (its bundle URL)


@dataclass(frozen=True)
class ApiCase:
    call: str  # the API call faulted (below API), or "robots.txt"
    fault: Fault
    error: str | None  # the one line expected in the report; None: no error, v129 loads
    exit_code: int
    requests: int | None = None  # how many requests the faulted call sees, when that is the point


V129 = f"{API}{API_V129}: A52370 v129: data/article/: "
HTML_TYPE = {"Content-Type": "text/html; charset=utf-8"}
# Only cms_coverage_api syncs here, so a failed source leaves nothing to commit: the run fails (exit 3).
API_FAULTS: dict[str, ApiCase] = {
    "503 burst within the retry budget": ApiCase(API_V129, Fault.burst(503, times=RETRY_TIMES), None, 0, requests=3),
    "503 burst longer than the retry budget": ApiCase(
        API_V129, Fault.burst(503, times=RETRY_TIMES + 1), f"{V129}HTTP 503 (after 2 retries)", 3, requests=3
    ),
    "503 for ever on the schedule": ApiCase(
        API_SCHEDULE, Fault.burst(503), f"{API}{API_SCHEDULE}: local data schedule: HTTP 503 (after 2 retries)", 3,
        requests=3,
    ),
    "500 for ever on the licence token": ApiCase(
        API_TOKEN, Fault.burst(500), f"{API}{API_TOKEN}: license agreement token: HTTP 500 (after 2 retries)", 3,
        requests=3,
    ),
    "connection reset": ApiCase(
        API_V129, Fault.reset(), f"{V129}connection reset or lost before a complete response (after 2 retries)", 3,
        requests=3,
    ),
    "server slower than the timeout": ApiCase(
        API_V129, Fault.slow(TIMEOUT * 4),
        f"{V129}timed out: no complete response within {TIMEOUT:g} s (DOWNLOAD_TIMEOUT) (after 2 retries)", 3,
    ),
    "body shorter than its Content-Length": ApiCase(
        API_V129, Fault.short_body(100),
        f"{V129}connection closed before the whole body was received (shorter than its Content-Length)"
        " (after 2 retries)", 3, requests=3,
    ),
    "HTML page with status 200 instead of JSON": ApiCase(
        API_V129, Fault.answer(200, HTML_TYPE, HTML), f"{V129}expected JSON, got an HTML page", 3, requests=1
    ),
    "HTML page with status 200 instead of the schedule": ApiCase(
        API_SCHEDULE, Fault.answer(200, HTML_TYPE, HTML),
        f"{API}{API_SCHEDULE}: local data schedule: unreadable answer (expected JSON, got an HTML page)", 3,
    ),
    "robots.txt disallows the API": ApiCase(
        "robots.txt", Fault.answer(200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /v1/\n"),
        f"{API}{API_SCHEDULE}: schedule: disallowed by robots.txt", 3,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def api_mirror(shared_data: Path) -> Iterator[MirrorServer]:
    with MirrorServer(shared_data, sources=[API_SOURCE]) as m:
        publish_tables(m, read_tables([MCD_FIXTURES]))
        coverage_api(m).schedule = (date(2025, 12, 28), date(2026, 1, 1))
        yield m


@pytest.fixture(scope="module")
def api_template(api_mirror: MirrorServer, tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = resolve_home(tmp_path_factory.mktemp("api_faults") / "home")
    init_home(home)
    report = sync(home, sources=[API_SOURCE], mirror=api_mirror.url)
    assert report.exit_code == 0 and report.sources[0].outcome == "changed", report.to_json()
    api = coverage_api(api_mirror)
    next_version(api, "52370", "128", "129", "2026-01-05", drop_dx="C34.90")
    api.schedule = (date(2026, 1, 11), date(2026, 1, 15))
    return home


def api_run(home: Home, m: MirrorServer) -> SyncReport:
    return sync(home, sources=[API_SOURCE], mirror=m.url, crawl_settings={"DOWNLOAD_TIMEOUT": TIMEOUT})


@pytest.mark.parametrize("case", list(API_FAULTS))
def test_api_fault(case: str, api_mirror: MirrorServer, api_template: Home, tmp_path: Path) -> None:
    home = resolve_home(tmp_path / "home")
    shutil.copytree(api_template.root, home.root)
    before_version, before = facts(home)
    c = API_FAULTS[case]
    path = f"/{API_HOST}/robots.txt" if c.call == "robots.txt" else f"/{API_HOST}/v1/{c.call}"
    seen = len(api_mirror.requests)
    api_mirror.fault(path, c.fault)
    try:
        report = api_run(home, api_mirror)
    finally:
        api_mirror.clear_fault(path)
    asked = [r for r in api_mirror.requests[seen:] if r.path == path]
    (src,) = report.sources
    assert report.exit_code == c.exit_code, report.to_json()
    if c.requests is not None:
        assert len(asked) == c.requests, [(r.path, r.status) for r in asked]
    if c.error is None:
        assert (src.outcome, src.errors) == ("changed", []), src.errors
        assert facts(home)[1] != before
        return
    assert (src.outcome, src.errors) == ("failed", [c.error])
    assert f"    error: {c.error}\n" in render_sync_report(report)
    # Nothing was committed: the previous version and every fact of it are still in force.
    assert facts(home) == (before_version, before)
    # Once the API behaves again, the next sync loads v129 without an error.
    again = api_run(home, api_mirror)
    assert again.exit_code == 0 and (again.sources[0].outcome, again.sources[0].errors) == ("changed", [])
    assert facts(home)[1] != before
