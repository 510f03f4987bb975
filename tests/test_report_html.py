"""The change-set report (issue 7 part 1): HTML parsed with BeautifulSoup, Markdown and JSON.

The rulebook is synced from the recorded HCPCS files, one quarter at a time as CMS publishes them:
April 2020 (version 1), July 2020 (version 2, the diff tests/test_diff_cms_trans.py checks against
CMS's own change report), then the October 2026 file, recorded only as a 35-row excerpt, which the
quarantine guard catches (version 3). Expected URLs and sha256 are computed from what the mirror
serves, independently of the rulebook. The escaping test uses a CONSTRUCTED change set.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from policysync.cli import cli
from policysync.config import init_home, resolve_home
from policysync.mirror import CMS_HOST, HCPCS_RELEASES, MirrorServer, hcpcs_release_zip
from policysync.pipeline import sync
from rulebook.diff import Change, ChangeSet
from rulebook.report_html import render_html


def run(home: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["--home", str(home), *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def release(name: str) -> Any:
    (rel,) = [r for r in HCPCS_RELEASES if r.release == name]
    return rel


@pytest.fixture(scope="module")
def home(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = resolve_home(tmp_path_factory.mktemp("report-home"))
    init_home(home)
    with MirrorServer(shared_data, releases=["2020-04"], sources=["cms_hcpcs"]) as mirror:
        for name in ("2020-04", "2020-07", "2026-10"):
            if name != "2020-04":
                rel = release(name)
                body = hcpcs_release_zip(shared_data, name)
                mirror.put(f"/{CMS_HOST}{rel.path}", body, link_text=rel.text, last_modified=rel.published)
            report = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
            assert report.status == "committed", report.to_json()
    return home.root


@pytest.fixture(scope="module")
def outputs(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``policysync diff 1 2`` in the three formats."""
    out = tmp_path_factory.mktemp("report-out")
    got: dict[str, Any] = {}
    for fmt in ("html", "md", "json"):
        path = out / f"changes.{fmt}"
        code, stdout, _ = run(home, "diff", "1", "2", "--format", fmt, "-o", str(path))
        assert (code, stdout) == (0, f"wrote {path}\n")
        got[fmt] = path.read_text(encoding="utf-8")
    got["soup"] = BeautifulSoup(got["html"], "html.parser")
    got["cs"] = json.loads(got["json"])
    return got


def rows(soup: BeautifulSoup) -> list[Any]:
    return soup.select("tr.ps-change")


def test_counts_at_the_top_match_the_rows_and_the_json(outputs: dict[str, Any]) -> None:
    soup, cs = outputs["soup"], outputs["cs"]
    trs = rows(soup)
    assert len(trs) == len(cs["changes"]) == cs["summary"]["total"] > 50
    counts = soup.select_one(".ps-counts")
    assert counts is not None
    assert counts.select_one('[data-count="total"]').get_text() == f"{len(trs):,}"
    by_sev = Counter(tr["data-severity"] for tr in trs)
    for sev in ("high", "medium", "low"):
        shown = counts.select_one(f'.ps-count-severity [data-count="{sev}"]').get_text()
        assert int(shown.replace(",", "")) == by_sev[sev] == cs["severity"][sev]
    retro = sum(tr["data-retroactive"] == "1" for tr in trs)
    assert int(counts.select_one('[data-count="retroactive"]').get_text()) == retro == cs["summary"]["retroactive"]
    for category, n in cs["counts"].items():
        assert counts.select_one(f'.ps-count-category [data-count="{category}"]').get_text() == f"{n:,}"


def test_the_three_formats_carry_the_same_change_set(outputs: dict[str, Any]) -> None:
    soup, cs, md = outputs["soup"], outputs["cs"], outputs["md"]
    from_html = {(tr["data-source"], tr["data-code"], tr["data-severity"]) for tr in rows(soup)}
    from_json = {(c["source"], c["key"], c["severity"]) for c in cs["changes"]}
    assert from_html == from_json
    md_rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| code |")]
    assert sorted(line.split(" | ")[0][2:] for line in md_rows) == sorted(c["key"] for c in cs["changes"])
    assert md.startswith("# Rulebook changes: version 1 → 2\n")


def test_grouped_by_source_then_table_then_code(outputs: dict[str, Any]) -> None:
    soup = outputs["soup"]
    sources = soup.select("section.ps-source")
    assert [s["data-source"] for s in sources] == ["cms_hcpcs"]
    tables = sources[0].select("section.ps-table")
    assert [t["data-group"] for t in tables] == ["hcpcs_codes"]
    codes = [tr["data-code"] for tr in tables[0].select("tr.ps-change")]
    assert codes == sorted(codes) and len(codes) == len(set(codes))
    assert all(tr["data-kind"] == "hcpcs_codes" for tr in tables[0].select("tr.ps-change"))


def test_retroactive_changes_are_flagged(outputs: dict[str, Any]) -> None:
    soup = outputs["soup"]
    # C9058: the July 2020 file ends the code and moves ADD DT back from 2020-04-01 to 2019-11-15,
    # before the release that states it (see tests/test_diff_cms_trans.py KNOWN).
    (tr,) = soup.select('tr.ps-change[data-code="C9058"]')
    assert tr["data-retroactive"] == "1" and tr.select_one(".ps-retro").get_text() == "RETROACTIVE"
    assert "effective_date_change" in tr.select_one(".ps-cats").get_text()
    before_after = {
        row.th.get_text(): (row.select_one(".ps-before").get_text(), row.select_one(".ps-after").get_text())
        for row in tr.select("table.ps-fields tr")
    }
    assert before_after["eff_start"] == ("2020-04-01", "2019-11-15")
    for other in rows(soup):
        assert (other.select_one(".ps-retro") is not None) == (other["data-retroactive"] == "1")


def test_provenance_links_to_the_real_url_and_its_sha256(outputs: dict[str, Any], shared_data: Path) -> None:
    soup = outputs["soup"]
    rel = release("2020-07")
    url = f"https://{CMS_HOST}{rel.path}"
    sha = hashlib.sha256(hcpcs_release_zip(shared_data, "2020-07")).hexdigest()
    # Every change in the April -> July diff is stated by the July file (none is a removal).
    for tr in rows(soup):
        link = tr.select_one(".ps-prov a")
        assert link is not None and link["href"] == url, tr["data-code"]
        assert link["rel"] == ["noopener", "noreferrer"]
        assert re.fullmatch(r"HCPC2020_JUL_ANWEB\.xlsx row \d+", link.get_text()), link.get_text()
        assert tr.select_one(".ps-sha").get_text() == f"sha256 {sha}"
    assert f"]({url}) sha256 `{sha}`" in outputs["md"]


def test_self_contained_with_filters(outputs: dict[str, Any]) -> None:
    soup = outputs["soup"]
    assert not soup.select("link, img, iframe, script[src], [style*=url]")
    (script,) = soup.find_all("script")
    assert "ps-f-severity" in script.get_text() and soup.find("style") is not None
    assert [o["value"] for o in soup.select(".ps-f-source option")] == ["", "cms_hcpcs"]
    assert [o["value"] for o in soup.select(".ps-f-severity option")] == ["", "high", "medium", "low"]
    assert soup.select_one("input.ps-f-code")["type"] == "search"
    hrefs = {a["href"] for a in soup.find_all("a")}
    assert hrefs == {f"https://{CMS_HOST}{release('2020-07').path}"}


def test_quarantined_and_stale_sources_are_shown(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "q.html"
    assert run(home, "diff", "2", "3", "--format", "html", "-o", str(path))[0] == 0
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    (q,) = soup.select("p.ps-quarantine")
    assert q["data-source"] == "cms_hcpcs"
    assert "Quarantined in version 3: cms_hcpcs: release 2026-10 yielded 35 records against" in q.get_text()
    # The default config lists the NCCI sources too; never fetched, they are stale. HCPCS is not.
    stale = {p["data-source"] for p in soup.select("p.ps-stale")}
    assert "cms_ncci_mue" in stale and "cms_hcpcs" not in stale
    assert "(last: never)" in soup.select_one('p.ps-stale[data-source="cms_ncci_mue"]').get_text()

    code, md, _ = run(home, "diff", "2", "3", "--format", "md")
    assert code == 0 and "- **QUARANTINED in version 3: cms_hcpcs: release 2026-10 yielded 35 records" in md
    assert "- **STALE: cms_ncci_mue: no successful fetch within 1.5 x its 91-day cadence (last: never)**" in md
    code, text, _ = run(home, "diff", "2", "3", "--json")
    cs = json.loads(text)
    assert [(q["version_id"], q["source"], q["reason"]) for q in cs["quarantined"]] == [(3, "cms_hcpcs", "drop")]
    assert {s["source"]: s["stale"] for s in cs["sources"]}["cms_hcpcs"] is False
    # Restricted to a source, only that source's guards.
    code, text, _ = run(home, "diff", "2", "3", "--json", "--source", "cms_ncci_mue")
    assert json.loads(text)["quarantined"] == [] and [s["source"] for s in json.loads(text)["sources"]] == [
        "cms_ncci_mue"
    ]


def test_filters_run_in_a_real_browser(outputs: dict[str, Any], tmp_path: Path) -> None:
    """The page's own script, in headless Chromium (Debian's package), with the filters given in the
    URL fragment; the DOM after the script ran shows which rows it hid."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (make test installs it)")
    page = tmp_path / "changes.html"
    page.write_text(outputs["html"], encoding="utf-8")
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            f"{page.as_uri()}#severity=high&code=J",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout.decode()
    soup = BeautifulSoup(dom, "html.parser")
    shown = sorted(tr["data-code"] for tr in rows(soup) if not tr.has_attr("hidden"))
    expected = sorted(c["key"] for c in outputs["cs"]["changes"] if c["severity"] == "high" and "J" in c["key"])
    assert shown == expected and expected
    assert soup.select_one(".ps-shown").get_text() == str(len(expected))


def test_a_change_set_too_large_for_a_page_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The limit is 200,000 changes (a first PTP load is 2.6 million); lowered here to 10.
    monkeypatch.setattr("policysync.cli.diff.HTML_LIMIT", 10)
    code, out, err = run(home, "diff", "1", "2", "--format", "html")
    n = len(json.loads(run(home, "diff", "1", "2", "--json")[1])["changes"])
    assert (code, out) == (2, "")
    assert err == (
        f"error: diff 1 2: {n:,} changes are too many for one HTML page (limit 10); "
        "narrow it with --source ID, or use --format md or --json\n"
    )


EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_everything_from_the_rulebook_is_escaped() -> None:
    """CONSTRUCTED: a change set whose every text field is hostile."""
    change = Change(
        fact_kind="hcpcs_codes",
        source='cms_hcpcs"><b>',
        key=f"J9{EVIL}",
        categories=["descriptor_change", EVIL],
        severity="medium",
        substantive=True,
        retroactive=True,
        eff_start="2020-01-01",
        eff_end=None,
        fields={"long_description": {"before": EVIL, "after": "</td></tr></table>" + EVIL}},
        provenance={"sha256": "ab" * 32, "locator": EVIL, "url": "javascript:alert(1)", "release": EVIL},
    )
    cs = ChangeSet(
        1,
        2,
        [change],
        quarantined=[{"version_id": 2, "source": EVIL, "message": EVIL}],
        sources=[{"source": EVIL, "stale": True, "cadence_days": 7, "last_successful_fetch": EVIL}],
    )
    page = render_html(cs)
    soup = BeautifulSoup(page, "html.parser")
    assert len(soup.find_all("script")) == 1 and not soup.find_all(["img", "b"])
    assert not soup.select("[onerror]") and not soup.find_all("a")  # a javascript: URL is never linked
    (tr,) = rows(soup)
    assert tr["data-code"] == f"J9{EVIL}" and tr["data-source"] == 'cms_hcpcs"><b>'
    assert tr.select_one(".ps-before").get_text() == EVIL
    assert tr.select_one(".ps-after").get_text() == "</td></tr></table>" + EVIL
    assert tr.select_one(".ps-prov").get_text().startswith(EVIL)
    assert soup.select_one("p.ps-quarantine").get_text().count(EVIL) == 1
    assert "<script>alert" not in page
    fragment = render_html(cs, standalone=False)
    assert fragment.startswith('<section class="ps-changeset"') and "<style>" not in fragment
    assert "<script" not in fragment


def test_policy_kinds_are_grouped_by_policy() -> None:
    """CONSTRUCTED: LCD article rules of two policies and a HCPCS change, in one source order."""

    def change(kind: str, source: str, key: str, policy: str | None) -> Change:
        prov: dict[str, Any] = {"sha256": "cd" * 32, "locator": "constructed", "url": "https://www.cms.gov/x"}
        if policy:
            prov["policy"] = policy
        return Change(kind, source, key, ["added"], "medium", True, False, "2026-01-01", None, {}, prov)

    cs = ChangeSet(
        1,
        2,
        [
            change("coverage_rules", "cms_mcd", "A52370|J9271|1|1", "A52370"),
            change("coverage_rules", "cms_mcd", "A52370|J9035|1|1", "A52370"),
            change("coverage_rules", "cms_mcd", "A56482|J9271|2|0", "A56482"),
            change("hcpcs_codes", "cms_hcpcs", "J9271", None),
        ],
    )
    soup = BeautifulSoup(render_html(cs), "html.parser")
    got = {
        s["data-source"]: {
            t["data-group"]: [tr["data-code"] for tr in t.select("tr.ps-change")] for t in s.select(".ps-table")
        }
        for s in soup.select("section.ps-source")
    }
    assert got == {
        "cms_mcd": {
            "A52370 (coverage_rules)": ["A52370|J9035|1|1", "A52370|J9271|1|1"],
            "A56482 (coverage_rules)": ["A56482|J9271|2|0"],
        },
        "cms_hcpcs": {"hcpcs_codes": ["J9271"]},
    }
