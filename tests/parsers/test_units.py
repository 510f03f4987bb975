"""parsers.units: the billing unit read from an HCPCS long descriptor.

The descriptor strings in the parametrised tests are constructed in the style of CMS descriptors
(drug names such as "examplumab" are made up); the coverage tests read the recorded files.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from parsers.cms_hcpcs import parse
from parsers.records import BillingUnit, HcpcsRecord, SourceMeta
from parsers.units import billing_unit, carries_billing_unit


@pytest.mark.parametrize(
    ("descriptor", "quantity", "unit"),
    [
        ("Injection, bevacizumab, 10 mg", "10", "mg"),
        ("Injection, examplumab, 0.1 mg", "0.1", "mg"),
        ("Injection, examplumab, .5 mg", "0.5", "mg"),
        ("Injection, examplumab, per vial", "1", "vial"),
        ("Injection, examplumab, per single dose vial", "1", "vial"),
        ("Injection, examplumab, 1 unit", "1", "units"),
        ("Injection, examplumab, 100 units", "100", "units"),
        ("Injection, examplumab, per 5 units", "5", "units"),
        ("Injection, examplumab, 1 i.u.", "1", "units"),
        ("Injection, examplumab, 75 iu", "75", "units"),
        ("Injection, examplumab, per 1,000 usp units", "1000", "units"),
        ("Injection, examplumab, 1,000 units", "1000", "units"),
        ("Injection, examplumab, 10,000 kiu", "10000", "kiu"),
        ("Injection, examplumab, per 5 ml", "5", "ml"),
        ("Injection, examplumab, 5 ml", "5", "ml"),
        ("Injection, examplumab, per 10 cc", "10", "ml"),
        ("Infusion, examplate solution, 1000 cc", "1000", "ml"),
        ("Injection, examplumab, 1 mcg", "1", "mcg"),
        ("Injection, examplumab, 5 micrograms", "5", "mcg"),
        ("Injection, examplumab, 1 microgram", "1", "mcg"),
        ("Injection, examplumab, 500 mg", "500", "mg"),
        ("Injection, examplumab, per milligram", "1", "mg"),
        ("Injection, examplumab, per 10 milligrams", "10", "mg"),
        ("Injection, examplumab, 1mg", "1", "mg"),
        ("Injection, examplumab, 1 g", "1", "g"),
        ("Injection, examplumab, 1 gm", "1", "g"),
        ("Injection, examplumab, per 1.5 gm", "1.5", "g"),
        ("Injection, examplumab, 2 grams", "2", "g"),
        ("Injection, examplumab, per dose", "1", "dose"),
        ("Injection, examplumab, per therapeutic dose", "1", "dose"),
        ("Injection, examplumab, 1 million units", "1000000", "units"),
        ("Injection, examplumab, 3 million units", "3000000", "units"),
        ("Injection, examplumab, 1 billion vector genomes", "1000000000", "vector genomes"),
        ("Injection, examplumab, per 2 meq", "2", "meq"),
        ("Injection, examplumab, up to 50 mg", "50", "mg"),
        ("Injection, examplumab, up to 1 gm", "1", "g"),
        ("Examplate skin substitute, per square centimeter", "1", "sq cm"),
        ("Examplate skin substitute, per 0.5 square centimeters", "0.5", "sq cm"),
        ("Examplium tc-99m, diagnostic, per study dose, up to 25 millicuries", "1", "dose"),
        ("Examplium tc-99m, diagnostic, per study dose up to 20 millicuries", "1", "dose"),
        ("Examplium i-131, therapeutic, per millicurie", "1", "mci"),
        ("Examplium i-131, diagnostic, per 100 microcuries, up to 999 microcuries", "100", "uci"),
        ("Injection, examplumab, per treatment, up to 5x10^15 vector genomes", "1", "treatment"),
        # A trailing parenthetical qualifies the drug, not the unit.
        ("Injection, examplumab, 1 mg (for esrd on dialysis)", "1", "mg"),
        ("Injection, examplumab, 1 microgram, (for non esrd use)", "1", "mcg"),
        ("Injection, examplumab, 50 micrograms (250 i.u.)", "50", "mcg"),
        (
            "Injection, examplumab, 10 mg (code may be used for medicare when drug administered under the "
            "direct supervision of a physician, not for use when drug is self administered)",
            "10",
            "mg",
        ),
        (
            "Injection, examplumab, 1 mg, fda approved prescription, only for use as hiv pre-exposure "
            "prophylaxis (not for use as treatment for hiv)",
            "1",
            "mg",
        ),
        ("Injection, examplumab, not therapeutically equivalent to j9999, 10 mcg", "10", "mcg"),
        ("Injection, examplumab, 10 mg, not otherwise specified", "10", "mg"),
        ("Injection, examplumab, 1 mg, for intravenous use", "1", "mg"),
        ("Injection, examplumab, 50 mcg for intrathecal trial", "50", "mcg"),
        ("Injection, examplumab, 0.9 mg, provided in 1.1 mg vial", "0.9", "mg"),
        ("Injection, examplumab, per ml, containing nominal 2 x 10^13 vector genomes", "1", "ml"),
        # What the dose measures may follow it.
        ("Injection, examplate iron, 0.1 mg of iron", "0.1", "mg"),
        ("Examplate complex, per i.u. of factor ix activity", "1", "units"),
        ("Examplate factor viii (antihemophilic factor, human) per i.u.", "1", "units"),
        ("Injection, examplate complex, per factor viii i.u.", "1", "units"),
        ("Injection, examplate factor, 1 i.u. vwf:rco", "1", "units"),
        ("Injection, examplumab, 10 mg and hyaluronidase-abcd", "10", "mg"),
        ("Injection, examplumab 10 mg and hyaluronidase", "10", "mg"),
        ("Injection, examplase, 5000 iu vial", "5000", "units"),
        ("Injection, examplumab, up to 2 ml ampule", "2", "ml"),
        # The drug's name may precede the dose when no other number is in the segment.
        ("Injection, examplumab-abcd 1 mg", "1", "mg"),
        ("Insulin for administration through dme (i.e., insulin pump) per 50 units", "50", "units"),
        # An explicit unit statement wins.
        ("Infusion, examplate solution, sterile (500 ml = 1 unit)", "500", "ml"),
        ("Injection, EXAMPLUMAB,   10  MG  ", "10", "mg"),
    ],
)
def test_billing_unit(descriptor: str, quantity: str, unit: str) -> None:
    assert billing_unit(descriptor) == BillingUnit(quantity, unit)


@pytest.mark.parametrize(
    "descriptor",
    [
        "",
        "Dressing for one wound",
        "Wheelchair accessory, caster, 5 inch",
        "Wheelchair accessory, 5 inch caster",
        "Syringe with needle, sterile, 3 cc, each",
        "Examplate supply, per pair",
        "Examplate lens, per lens",
        "Examplate contraceptive supply, hormone containing ring, each",
        "Unclassified drugs",
        "Not otherwise classified, antineoplastic drugs",
        # Combinations: two doses, no single billing unit.
        "Injection, examplumab 50 mg and examplatin 25 mg",
        "Injection, examplumab and examplatin, 7.5 mg/2.5 mg (10 mg)",
        "Injection, examplumab and examplatin, 0.5 g/0.125 g",
        "Injection, liposomal, 1 mg examplumab and 2.27 mg examplatin",
        # Ranges, thresholds and concentrations are not billing multiples.
        "Examplorphine, oral, greater than 3 mg, but less than or equal to 6 mg examplorphine",
        "Injection, examplate globulin, intramuscular, over 10 cc",
        "Injection, examplumab, 10 mg/ml",
        "Injection, examplitol, 25% in 50 ml",
        "Wound therapy, per session; total wound surface area less than or equal to 50 square centimeters",
        "Examplate drug delivery system, flow rate of 50 ml or greater per hour",
        # The dose inside the descriptor is not the trailing phrase.
        "Examplumab 8 mg, oral, complete therapeutic substitute, not to exceed a 48 hour dosage regimen",
        "Examplumab, 4.5 mg, long-acting implant",
        "Injection, examplumab, 10 mg per 24 hours; monthly ring, each",
    ],
)
def test_no_billing_unit(descriptor: str) -> None:
    assert billing_unit(descriptor) is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("J9035", True),
        ("Q5107", True),
        ("C9035", True),
        ("S0074", True),
        ("A9552", True),
        ("A2001", True),
        ("A4232", False),  # a syringe's "3 cc" is its size
        ("E0950", False),
        ("G0456", False),
        ("P9010", False),  # blood "per unit" is a bag
        ("L3000", False),
    ],
)
def test_carries_billing_unit(code: str, expected: bool) -> None:
    assert carries_billing_unit(code) is expected


# --- coverage over the recorded files -------------------------------------------------------------

FILES = [
    "annual_2017/2017-Alpha-Numeric-HCPCS-File.zip",
    "annual_2018/2018-Alpha-Numeric-HCPCS-File.zip",
    "annual_2019/2019-Alpha-Numeric-HCPCS-File.zip",
    "quarterly_2020/HCPC2020_04_anweb.xlsx",
    "quarterly_2020/HCPC2020_07_anweb.xlsx",
    "quarterly_2020/HCPC2020_10_anweb.xlsx",
    "quarterly_2025/HCPC2025_OCT_ANWEB.xlsx",
    "quarterly_2026/HCPC2026_OCT_ANWEB.excerpt.csv",
]

# Every J-code of the October 2025 file that has no billing unit, each checked against its descriptor:
# NOC and unclassified codes, combination products (two doses or "x mg/y mg"), dose ranges
# (buprenorphine J0572-J0578), "over 10 cc" (J1560), a concentration (J3265 "10 mg/ml"),
# "25% in 50 ml" (J2150), devices and supplies ("each", implant systems, J7308 "single unit dosage
# form") and J7310 whose dose is followed by "long-acting implant".
J_WITHOUT_UNIT_2025 = {
    "J0138", "J0211", "J0275", "J0458", "J0572", "J0573", "J0574", "J0575", "J0577", "J0578",
    "J0668", "J0695", "J0702", "J0714", "J0741", "J0742", "J0750", "J0751", "J0799", "J0911",
    "J1454", "J1560", "J2150", "J2186", "J2543", "J2865", "J3265", "J3490", "J3530", "J3535",
    "J3570", "J3590", "J3591", "J7199", "J7294", "J7295", "J7300", "J7303", "J7304", "J7306",
    "J7307", "J7308", "J7310", "J7330", "J7354", "J7356", "J7599", "J7620", "J7699", "J7799",
    "J7999", "J8498", "J8499", "J8597", "J8655", "J8999", "J9153", "J9298", "J9999",
}  # fmt: skip
# Older files add one: J7311, an intravitreal implant whose descriptor had no dose before 2020.
J_WITHOUT_UNIT_OLDER = {"J7311"}

# (file, J procedure codes, with a unit)
J_COVERAGE = [
    (FILES[0], 732, 694),
    (FILES[1], 744, 706),
    (FILES[2], 774, 733),
    (FILES[3], 810, 769),
    (FILES[4], 827, 785),
    (FILES[5], 835, 793),
    (FILES[6], 1188, 1129),
    (FILES[7], 0, 0),
]

KNOWN_UNITS = {
    "mg", "mcg", "g", "ml", "units", "kiu", "meq", "mci", "uci", "sq cm", "vector genomes", "pfu",
    "dose", "vial", "implant", "instillation", "treatment",
}  # fmt: skip


@cache
def _records(path: str) -> tuple[HcpcsRecord, ...]:
    file = Path(path)
    return tuple(parse(file.read_bytes(), SourceMeta("cms_hcpcs", "", "", file.name)))


@pytest.mark.parametrize(("relative", "total", "with_unit"), J_COVERAGE)
def test_j_code_coverage(shared_data: Path, relative: str, total: int, with_unit: int) -> None:
    records = _records(str(shared_data / "hcpcs" / relative))
    j_codes = [r for r in records if r.kind == "procedure" and r.code.startswith("J")]
    assert (len(j_codes), sum(1 for r in j_codes if r.billing_unit)) == (total, with_unit)
    without = {r.code for r in j_codes if r.billing_unit is None}
    assert without <= J_WITHOUT_UNIT_2025 | J_WITHOUT_UNIT_OLDER
    if relative == FILES[6]:
        assert without == J_WITHOUT_UNIT_2025


@pytest.mark.parametrize("relative", FILES)
def test_units_only_where_they_belong(shared_data: Path, relative: str) -> None:
    for record in _records(str(shared_data / "hcpcs" / relative)):
        if record.kind == "modifier" or not carries_billing_unit(record.code):
            assert record.billing_unit is None, record
        elif record.billing_unit is not None:
            assert record.billing_unit.unit in KNOWN_UNITS, record
            assert record.billing_unit.quantity.replace(".", "", 1).isdigit(), record


def test_oncology_units_2025(shared_data: Path) -> None:
    by_code = {r.code: r for r in _records(str(shared_data / "hcpcs" / FILES[6]))}
    expected = {
        "J9035": BillingUnit("10", "mg"),
        "J9271": BillingUnit("1", "mg"),
        "J9299": BillingUnit("1", "mg"),
        "J9312": BillingUnit("10", "mg"),
        "J9355": BillingUnit("10", "mg"),
        "J9045": BillingUnit("50", "mg"),
        "J9264": BillingUnit("1", "mg"),
        "J9311": BillingUnit("10", "mg"),  # "rituximab 10 mg and hyaluronidase"
        "J9356": BillingUnit("10", "mg"),
        "Q5107": BillingUnit("10", "mg"),
        "J0585": BillingUnit("1", "units"),
        "J1745": BillingUnit("10", "mg"),
        "J3262": BillingUnit("1", "mg"),
    }
    assert {code: by_code[code].billing_unit for code in expected} == expected
