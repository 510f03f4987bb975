"""parsers.icd10cm against the real ICD-10-CM files in ../shared/data/icd10cm.

Expected values are read from the documents themselves: the order file excerpt (code, billable flag)
and the FY2026 tabular list XML (the diag tree). The XML is parsed once per session (about a second).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import pytest

from parsers import icd10cm
from parsers.errors import ParseError
from tests.conftest import shared_data_dir

ORDER = "icd10cm/icd10cm_order_2026.excerpt.txt"
TABULAR = "icd10cm/icd10cm_tabular_2026_April-1.xml"


def _order_rows(path: Path) -> list[tuple[str, bool, str]]:
    """(undotted code, billable, short description) of each order-file line (fixed width: order 1-5,
    code 7-13, flag 15, short description 17-76)."""
    rows = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.strip():
            rows.append((line[6:13].strip(), line[14] == "1", line[16:76].strip()))
    return rows


@cache
def _tabular() -> ET.Element:
    return ET.parse(shared_data_dir() / TABULAR).getroot()


def _diag(name: str) -> ET.Element:
    for diag in _tabular().iter("diag"):
        if diag.findtext("name") == name:
            return diag
    raise AssertionError(f"{name} not in the tabular XML")


def _xml_leaves(diag: ET.Element) -> list[str]:
    children = diag.findall("diag")
    if not children:
        return [diag.findtext("name") or ""]
    out: list[str] = []
    for child in children:
        out.extend(_xml_leaves(child))
    return out


def test_package_ships_the_recorded_tabular_list(shared_data: Path) -> None:
    """The code set we use is byte for byte the official file recorded in shared data."""
    import importlib.resources

    import simple_icd_10_cm.data as pkg_data

    shipped = importlib.resources.files(pkg_data).joinpath("icd10c-tabular-April-1-2026.xml").read_bytes()
    recorded = (shared_data / TABULAR).read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == hashlib.sha256(recorded).hexdigest()


def test_order_excerpt_validity_and_billable_flag(shared_data: Path) -> None:
    rows = _order_rows(shared_data / ORDER)
    assert len(rows) == 100
    for code, billable, _desc in rows:
        dotted = icd10cm.normalize(code)
        assert dotted.replace(".", "") == code
        assert icd10cm.is_valid(code), code
        assert icd10cm.is_valid(dotted), dotted
        assert icd10cm.is_billable(dotted) is billable, (code, billable)
        assert icd10cm.classify(code) == ("billable" if billable else "non_billable")
    # the M54 block, in the order file's own order, is the expansion of the category M54
    m54 = [icd10cm.normalize(c) for c, billable, _ in rows if c.startswith("M54") and billable]
    assert icd10cm.expand("M54") == m54
    assert m54[:2] == ["M54.00", "M54.01"] and "M54.2" in m54 and m54[-1] == "M54.9"


def test_order_is_tabular_order(shared_data: Path) -> None:
    """expand_range over the excerpt's first block follows the order file's sequence."""
    rows = _order_rows(shared_data / ORDER)
    a_block = [icd10cm.normalize(c) for c, billable, _ in rows if billable and c < "A06"]
    assert icd10cm.expand_range(a_block[0], a_block[-1]) == a_block


@pytest.mark.parametrize("category", ["C18", "C34", "C50", "D63", "M54", "Z51", "QA0"])
def test_category_expands_to_the_xml_leaves(shared_data: Path, category: str) -> None:
    assert icd10cm.expand(category) == _xml_leaves(_diag(category))


def test_ranges_as_articles_write_them(shared_data: Path) -> None:
    c18 = _xml_leaves(_diag("C18"))
    assert c18[0] == "C18.0" and c18[-1] == "C18.9"
    for spec in ("C18.0\u2013C18.9", "C18.0-C18.9", "C18.0 \u2013 C18.9", "c180 - c189", "C18.0\u2014C18.9"):
        assert icd10cm.expand(spec) == c18, spec
    # a category start is a billable leaf itself (C33), the end includes only C34 up to C34.92
    assert icd10cm.is_billable("C33")
    want = ["C33"] + _xml_leaves(_diag("C34"))
    assert want[-1] == "C34.92"
    assert icd10cm.expand("C33\u2013C34.92") == want
    # a category at the end takes all of its leaves
    assert icd10cm.expand_range("C33", "C34") == want


def test_seventh_character_codes() -> None:
    # S72.001 has no children in the XML: its billable codes carry the seventh character
    assert icd10cm.is_valid("S72.001") and not icd10cm.is_billable("S72.001")
    assert icd10cm.is_billable("S72.001A")
    assert icd10cm.expand("S72.001")[0] == "S72.001A"


def test_normalize() -> None:
    assert icd10cm.normalize(" c3490 ") == "C34.90"
    # QA0 (new in the April 2026 update: "Congenital malformations ... (Q00-QA0)") has a letter second
    assert icd10cm.normalize("QA00101") == "QA0.0101" and icd10cm.is_valid("QA0")
    assert icd10cm.normalize("C34.90") == "C34.90"
    assert icd10cm.normalize("C33") == "C33"
    assert icd10cm.normalize("Z99.99") == "Z99.99"  # well formed, not in the code set
    assert not icd10cm.is_valid("Z99.99")
    for bad in ("", "12", "C3", "C34.90000", "9035", "C34-"):
        with pytest.raises(ParseError):
            icd10cm.normalize(bad)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("C34.92\u2013C33", "reversed"),
        ("C18.9-C18.0", "reversed"),
        ("C18.0\u2013X1", "not an ICD-10-CM code"),
        ("C18.0\u2013Q99.99", "not in the FY2026"),
    ],
)
def test_bad_ranges_name_the_range(spec: str, words: str) -> None:
    with pytest.raises(ParseError) as info:
        icd10cm.expand(spec)
    msg = str(info.value)
    assert words in msg and "range" in msg and "\n" not in msg
    start = spec.replace("\u2013", "-").split("-")[0].strip()
    assert start in msg


def test_audit_counts_unknown_and_non_billable() -> None:
    audit = icd10cm.CodeAudit()
    for code in ("C34.90", "C34", "Z99.99", "not a code", "C34.91"):
        audit.check(code)
    assert audit.counts == {"billable": 2, "non_billable": 1, "unknown": 1, "malformed": 1}
    assert audit.examples["unknown"] == ["Z99.99"]
    from collections import Counter

    counts: Counter[str] = Counter()
    audit.into(counts)
    assert counts == {"icd10 non-billable code": 1, "icd10 unknown code": 1, "icd10 malformed code": 1}


def test_billable_count_matches_the_xml_plus_extensions(shared_data: Path) -> None:
    """Every XML leaf without a seventh-character rule is billable as is."""
    leaves = _xml_leaves(_diag("C50"))
    assert all(icd10cm.is_billable(c) for c in leaves)
    assert len(icd10cm.billable_codes()) > 70_000
