"""Our change sets between consecutive 2020 quarters, checked against CMS's own change reports.

Each 2020 quarterly zip holds, beside the ANWEB data file, a "Trans Report" (``HCPC2020_<MM>_
trans_alpha.xlsx``): CMS's list of every code with the action it took in that quarter (sheets
"Changes by Action Code", "Changes by HCPC" and "Action Code Key"). The quarters are synced one at a
time, as a weekly job would see them published (April, then July appears, then October), and
``diff_versions`` between the versions is compared with the July and October reports, code by code,
in both directions. The few differences that cannot be removed are listed in :data:`KNOWN`, each with
what the two files show; the test asserts the exact sets, so anything new fails it.

The April report is NOT compared: it lists what changed from January 2020 to April 2020, and we
have no January 2020 file (PROVENANCE.md §1: the 2020 quarters recorded are April, July and
October). Synced first, April is our first version, so its change set is "every code added" — a
statement about our rulebook, not about what CMS changed in April — and nothing in it could be held
against the April report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import python_calamine

from policysync.config import init_home, resolve_home
from policysync.mirror import CMS_HOST, HCPCS_RELEASES, MirrorServer, hcpcs_release_zip
from policysync.pipeline import sync
from rulebook.db import open_rulebook
from rulebook.diff import Change, diff_versions

QUARTERS = ("2020-04", "2020-07", "2020-10")
FOLDER = "hcpcs/quarterly_2020"

#: The "Action Code Key" sheet, as CMS wrote it in the July and October 2020 reports (the April one
#: spells A "Add"). Labels in the report rows are matched to these case-insensitively.
ACTION_KEY = {
    "A": "ADD",
    "B": "Coverage and Long Description Change",
    "C": "Long Description Change",
    "D": "Discontinued",
    "F": "Coverage Change",
    "N": "No Change",
    "P": "Payment Change",
    "R": "Re-activated",
    "S": "Short Description Change",
    "T": "Miscellaneous change (BETOS or Type of Service)",
}

#: A row label that is not in the key: July 2020 writes it for CS (and nowhere else). It is both a
#: C and an S, and the July ANWEB file gives CS the action code C.
COMBINED_LABELS = {"long/short description change": "CS"}

#: What each CMS action means in our change categories. Our diff compares the long and short
#: descriptors, coverage code, pricing indicator, BETOS/TOS, kind, add and termination dates and the
#: billing unit; CMS's P also covers MOG, anesthesia base units and ASC, which we do not keep, so a P
#: for those alone would show up as a difference (none in 2020).
ACTION_CATEGORIES: dict[str, set[str]] = {
    "A": {"added"},
    "D": {"discontinued"},
    "R": {"reactivated"},
    "C": {"descriptor_change"},
    "B": {"descriptor_change", "coverage_code_change"},
    "F": {"coverage_code_change"},
    "P": {"pricing_indicator_change"},
    "S": {"short_descriptor_change"},
    "T": {"betos_tos_change"},
    "N": set(),
}

#: Per report: code -> (categories CMS's action implies that our diff lacks, categories our diff has
#: that CMS's action does not imply). CMS gives each code ONE action per quarter (the "latest action
#: only", DOMAIN.md §3.4); our diff lists every field that changed. Each entry was established by
#: comparing the two ANWEB files: the values are asserted in the tests below.
KNOWN: dict[str, dict[str, tuple[set[str], set[str]]]] = {
    "2020-07": {
        # D, and in the same release ADD DT moved back from 20200401 to 20191115 (retroactive): the
        # July file both ends the code and restates when it began. CMS reports the D only.
        "C9058": (set(), {"effective_date_change"}),
        # C ("Long Description Change"), but the SHORT DESCRIPTION changed too.
        "J7321": (set(), {"short_descriptor_change"}),
        "J9245": (set(), {"short_descriptor_change"}),
        "Q4176": (set(), {"short_descriptor_change"}),
    },
    "2020-10": {
        # F ("Coverage Change"): COV C -> I (not payable by Medicare) and, with it, PRICE1 99 -> 00
        # (not separately priced). CMS files the pricing change under the coverage change.
        "A4226": (set(), {"pricing_indicator_change"}),
        "E0787": (set(), {"pricing_indicator_change"}),
        # C, but the SHORT DESCRIPTION changed too.
        "G2011": (set(), {"short_descriptor_change"}),
        "J9305": (set(), {"short_descriptor_change"}),
        "L8701": (set(), {"short_descriptor_change"}),
        "L8702": (set(), {"short_descriptor_change"}),
    },
}


# --- reading the recorded files (directly, not through parsers/cms_hcpcs.py) --------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _sheet(workbook: python_calamine.CalamineWorkbook, prefix: str) -> list[list[Any]]:
    (name,) = [n for n in workbook.sheet_names if n.lower().startswith(prefix.lower())]
    return workbook.get_sheet_by_name(name).to_python()


def _report_rows(rows: list[list[Any]]) -> dict[str, list[str]]:
    """code -> the action labels it is listed with (the header is "HCPC" or "HCPC/MOD", then "ACTION CD")."""
    header = next(
        i for i, r in enumerate(rows) if _text(r[0]).upper().startswith("HCPC") and _text(r[1]) == "ACTION CD"
    )
    out: dict[str, list[str]] = defaultdict(list)
    for row in rows[header + 1 :]:
        code = _text(row[0])  # modifiers are left-padded ("   A1")
        if code:
            out[code].append(_text(row[1]))
    return dict(out)


class TransReport:
    def __init__(self, path: Path) -> None:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        self.key = {_text(r[0]): _text(r[1]) for r in _sheet(workbook, "Action Code Key") if len(_text(r[0])) == 1}
        self.by_hcpc = _report_rows(_sheet(workbook, "Changes by HCPC"))
        self.by_action = _report_rows(_sheet(workbook, "Changes by Action"))

    def letters(self, code: str) -> str:
        """The action letter(s) of ``code`` in the "Changes by HCPC" sheet ("A", "CS", ...)."""
        by_label = {label.lower(): letter for letter, label in self.key.items()}
        out = ""
        for label in self.by_hcpc[code]:
            out += by_label.get(label.lower()) or COMBINED_LABELS[label.lower()]
        return out


def read_anweb(path: Path) -> dict[str, dict[str, str]]:
    """code -> its first row (RECID 3/7) of an ANWEB xlsx, every cell as text."""
    rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    header = next(i for i, r in enumerate(rows) if "HCPC" in [_text(c) for c in r])
    names = [_text(c) for c in rows[header]]
    out = {}
    for row in rows[header + 1 :]:
        # Cells stripped, except the long description, whose spacing is compared as CMS wrote it.
        rec = {n: str(c) if n == "LONG DESCRIPTION" else _text(c) for n, c in zip(names, row, strict=False)}
        if rec.get("RECID") in ("3", "7"):
            out[rec["HCPC"]] = rec
    return out


# --- the rulebook, one sync per quarter ---------------------------------------------------------


def _release(release: str) -> Any:
    (rel,) = [r for r in HCPCS_RELEASES if r.release == release]
    return rel


@pytest.fixture(scope="module")
def synced(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A home that saw April 2020 published, then July, then October, one sync each."""
    home = resolve_home(tmp_path_factory.mktemp("home"))
    init_home(home)
    versions: dict[str, int] = {}
    with MirrorServer(shared_data, releases=[QUARTERS[0]]) as mirror:
        for release in QUARTERS:
            if release != QUARTERS[0]:
                rel = _release(release)
                mirror.put(
                    f"/{CMS_HOST}{rel.path}",
                    hcpcs_release_zip(shared_data, release),
                    link_text=rel.text,
                    last_modified=rel.published,
                )
            report = sync(home, sources=["cms_hcpcs"], mirror=mirror.url)
            assert (report.exit_code, report.status) == (0, "committed"), report.to_json()
            (source,) = report.sources
            assert source.documents_parsed == 1, "each sync parses only the newly published quarter"
            versions[release] = report.version
    db = open_rulebook(home.db_path)
    yield db, versions
    db.close()


def _previous(release: str) -> str:
    return QUARTERS[QUARTERS.index(release) - 1]


def _changes(synced: Any, release: str) -> dict[str, Change]:
    db, versions = synced
    cs = diff_versions(db, versions[_previous(release)], versions[release])
    by_code = {c.key: c for c in cs.changes}
    assert len(by_code) == len(cs.changes), "one change per code"
    return by_code


@pytest.fixture(scope="module")
def reports(shared_data: Path) -> dict[str, TransReport]:
    return {r: TransReport(shared_data / FOLDER / f"HCPC2020_{r[5:]}_trans_alpha.xlsx") for r in QUARTERS[1:]}


@pytest.fixture(scope="module")
def anweb(shared_data: Path) -> dict[str, dict[str, dict[str, str]]]:
    return {r: read_anweb(shared_data / FOLDER / f"HCPC2020_{r[5:]}_anweb.xlsx") for r in QUARTERS}


# --- the comparison -----------------------------------------------------------------------------


def differences(report: TransReport, ours: dict[str, Change]) -> dict[str, tuple[set[str], set[str]]]:
    """code -> (CMS says, we do not; we say, CMS does not), for every code where either is non-empty."""
    out = {}
    for code in sorted(set(report.by_hcpc) | set(ours)):
        expected: set[str] = set()
        for letter in report.letters(code) if code in report.by_hcpc else "":
            expected |= ACTION_CATEGORIES[letter]
        found = set(ours[code].categories) if code in ours else set()
        if expected != found:
            out[code] = (expected - found, found - expected)
    return out


@pytest.mark.parametrize("release", QUARTERS[1:])
def test_diff_matches_the_cms_change_report(synced: Any, reports: dict[str, TransReport], release: str) -> None:
    report = reports[release]
    ours = _changes(synced, release)
    assert differences(report, ours) == KNOWN[release]
    # Every code we report changed is in CMS's report with an action other than N, and vice versa.
    changed_by_cms = {code for code, labels in report.by_hcpc.items() if labels != ["No Change"]}
    assert set(ours) == changed_by_cms


@pytest.mark.parametrize("release", QUARTERS[1:])
def test_every_cms_action_is_found_in_our_diff(synced: Any, reports: dict[str, TransReport], release: str) -> None:
    """The direction that matters most, stated on its own: A -> added, D -> discontinued, ..."""
    report = reports[release]
    ours = _changes(synced, release)
    for code in report.by_hcpc:
        for letter in report.letters(code):
            missing = ACTION_CATEGORIES[letter] - set(ours[code].categories if code in ours else ())
            assert not missing, f"{code}: CMS action {letter} but our diff lacks {missing}"


def test_report_counts(synced: Any, reports: dict[str, TransReport]) -> None:
    """What the two reports hold, so a change in how they are read shows up here first."""
    counts = {release: Counter(r.letters(c) for c in r.by_hcpc) for release, r in reports.items()}
    assert counts == {
        "2020-07": {"N": 7083, "A": 61, "D": 9, "C": 3, "CS": 1, "S": 1},
        "2020-10": {"N": 7145, "A": 38, "D": 4, "C": 7, "F": 2},
    }
    assert {r: len(_changes(synced, r)) for r in reports} == {"2020-07": 75, "2020-10": 51}


def test_the_action_code_key(reports: dict[str, TransReport]) -> None:
    for report in reports.values():
        assert report.key == ACTION_KEY
        labels = {label for labels in report.by_hcpc.values() for label in labels}
        unknown = {label for label in labels if label.lower() not in {v.lower() for v in ACTION_KEY.values()}}
        assert unknown <= {"Long/Short Description Change"}


def test_the_two_report_sheets_agree_except_one_duplicate(reports: dict[str, TransReport]) -> None:
    """ "Changes by Action Code" is the same list sorted by action, except that July 2020 lists CS
    twice there: once "Long/Short Description Change" and once "No Change" ("Changes by HCPC" has the
    first only, and the descriptors did change)."""
    july, october = reports["2020-07"], reports["2020-10"]
    assert october.by_action == october.by_hcpc
    assert {c: v for c, v in july.by_action.items() if july.by_hcpc.get(c) != v} == {
        "CS": ["Long/Short Description Change", "No Change"]
    }
    assert july.by_hcpc["CS"] == ["Long/Short Description Change"]


def test_report_letters_match_the_anweb_action_code(
    reports: dict[str, TransReport], anweb: dict[str, dict[str, dict[str, str]]]
) -> None:
    """The ANWEB file of the same quarter carries the same action letters in ACTION CD; the one
    exception is CS in July (report: long AND short description change; ANWEB: C)."""
    for release, report in reports.items():
        rows = anweb[release]
        assert set(rows) == set(report.by_hcpc)
        differ = {
            c: (report.letters(c), rows[c]["ACTION CD"]) for c in rows if report.letters(c) != rows[c]["ACTION CD"]
        }
        assert differ == ({"CS": ("CS", "C")} if release == "2020-07" else {})


# --- each known difference, checked against the two ANWEB files ---------------------------------


def _before_after(anweb: dict[str, dict[str, dict[str, str]]], release: str, code: str, column: str) -> tuple[str, str]:
    return anweb[_previous(release)][code][column], anweb[release][code][column]


def test_c9058_is_discontinued_and_its_add_date_moved_back(
    synced: Any, anweb: dict[str, dict[str, dict[str, str]]]
) -> None:
    assert _before_after(anweb, "2020-07", "C9058", "ADD DT") == ("20200401", "20191115")
    assert _before_after(anweb, "2020-07", "C9058", "TERM DT") == ("", "20200630")
    change = _changes(synced, "2020-07")["C9058"]
    assert change.categories[:1] == ["discontinued"]
    assert change.fields["eff_start"] == {"before": "2020-04-01", "after": "2019-11-15"}
    assert change.fields["eff_end"] == {"before": None, "after": "2020-07-01"}
    assert change.retroactive  # now valid from before the release that says so


@pytest.mark.parametrize(
    ("release", "code"),
    [("2020-07", c) for c in ("J7321", "J9245", "Q4176")]
    + [("2020-10", c) for c in ("G2011", "J9305", "L8701", "L8702")],
)
def test_long_description_changes_that_also_changed_the_short_one(
    synced: Any, anweb: dict[str, dict[str, dict[str, str]]], release: str, code: str
) -> None:
    assert anweb[release][code]["ACTION CD"] == "C"
    before, after = _before_after(anweb, release, code, "SHORT DESCRIPTION")
    assert before != after
    change = _changes(synced, release)[code]
    assert change.fields["short_description"] == {"before": before, "after": after}
    assert "long_description" in change.fields


@pytest.mark.parametrize("code", ["A4226", "E0787"])
def test_coverage_changes_that_also_changed_the_pricing_indicator(
    synced: Any, anweb: dict[str, dict[str, dict[str, str]]], code: str
) -> None:
    assert anweb["2020-10"][code]["ACTION CD"] == "F"
    assert _before_after(anweb, "2020-10", code, "COV") == ("C", "I")
    assert _before_after(anweb, "2020-10", code, "PRICE1") == ("99", "00")
    # The action is dated 2020-09-15, before the October release that carries it. The rulebook keeps
    # ACT EFF DT but dates a row by ADD DT/TERM DT only, so this coverage change is not dated (nor
    # flagged retroactive) by it.
    assert anweb["2020-10"][code]["ACT EFF DT"] == "20200915"
    change = _changes(synced, "2020-10")[code]
    assert change.fields["coverage_code"] == {"before": "C", "after": "I"}
    assert change.fields["pricing_indicator"] == {"before": "99", "after": "00"}
    assert change.categories[0] == "coverage_code_change" and change.severity == "high"  # narrows coverage


def test_an_n_row_whose_description_differs_only_in_spacing_is_no_change(
    synced: Any, reports: dict[str, TransReport], anweb: dict[str, dict[str, dict[str, str]]]
) -> None:
    """U0002 in July: CMS says N, yet the raw long description lost a double space. Our parser
    collapses whitespace, so we agree with CMS that nothing changed."""
    before, after = _before_after(anweb, "2020-07", "U0002", "LONG DESCRIPTION")
    assert before != after and before.split() == after.split()
    assert reports["2020-07"].letters("U0002") == "N"
    assert "U0002" not in _changes(synced, "2020-07")
