"""Loopback mirror routes for ``icd10cm`` (registered in :data:`policysync.mirror.ROUTE_BUILDERS`).

Serves, all CONSTRUCTED around the recorded files of ``shared/data/icd10cm``:

* the ICD-10 landing page (``mirror_pages/cms_icd10_codes.html``) at the real page's path
  ``/www.cms.gov/medicare/coding-billing/icd-10-codes``, linking the fiscal-year page;
* the FY2026 page ``.../icd-10-codes/2026-icd-10-cm`` (``mirror_pages/cms_icd10cm_year.html``) linking
  the April 1 2026 update's two zips under the names CMS uses (public downloaders record them):
  ``/files/zip/april-1-2026-code-descriptions-tabular-order.zip`` and
  ``/files/zip/april-1-2026-code-tables-tabular-and-index.zip``;
* those zips, built on the fly in the real layout (STORED, fixed timestamps: byte-identical every
  time): ``Code Descriptions/icd10cm_order_2026.excerpt.txt`` (the recorded 100-line G-slice of the
  order file; ".excerpt" stays in the member name so nobody mistakes it for the whole file) and
  ``Table and Index/icd10cm_tabular_2026.xml`` (the recorded whole tabular list, which the
  simple-icd-10-cm wheel ships as ``icd10cm_tabular_2026_April-1.xml``). The publication date
  (2026-02-01) is constructed.

Only the April 2026 release was recorded: no FY2026 base (October 2025) files are served. A test
publishes another release with :func:`publish_icd10cm` (a constructed zip on a fiscal-year page).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policysync.mirror import MirrorServer, MirrorSite

__all__ = [
    "ICD10_LANDING_PATH",
    "ICD10CM_FILES",
    "Icd10cmFile",
    "icd10cm_routes",
    "icd10cm_zip",
    "publish_icd10cm",
    "year_page_path",
]

ICD10_LANDING_PATH = "/www.cms.gov/medicare/coding-billing/icd-10-codes"
PUBLISHED = datetime(2026, 2, 1, tzinfo=UTC)  # constructed


def year_page_path(year: int) -> str:
    """The mirror path of fiscal year ``year``'s ICD-10-CM page."""
    return f"{ICD10_LANDING_PATH}/{year}-icd-10-cm"


@dataclass(frozen=True)
class Icd10cmFile:
    release: str  # "2026-04"
    kind: str  # "order" | "tabular"
    path: str  # real path on www.cms.gov
    text: str  # link text
    member: str  # name inside the zip
    source: str  # path relative to the data folder


ICD10CM_FILES: tuple[Icd10cmFile, ...] = (
    Icd10cmFile(
        "2026-04",
        "order",
        "/files/zip/april-1-2026-code-descriptions-tabular-order.zip",
        "April 1, 2026 Code Descriptions in Tabular Order (ZIP)",
        "Code Descriptions/icd10cm_order_2026.excerpt.txt",
        "icd10cm/icd10cm_order_2026.excerpt.txt",
    ),
    Icd10cmFile(
        "2026-04",
        "tabular",
        "/files/zip/april-1-2026-code-tables-tabular-and-index.zip",
        "April 1, 2026 Code Tables, Tabular and Index (ZIP)",
        "Table and Index/icd10cm_tabular_2026.xml",
        "icd10cm/icd10cm_tabular_2026_April-1.xml",
    ),
)


def icd10cm_zip(data_dir: Path, f: Icd10cmFile) -> bytes:
    """The bytes the mirror serves for ``f``: its recorded file zipped under its real member name."""
    from policysync.mirror import build_zip

    return build_zip([(f.member, (Path(data_dir) / f.source).read_bytes())], PUBLISHED)


def _ensure_year_page(site: MirrorSite, year: int) -> str:
    from policysync.mirror import Link, _render_landing

    page = year_page_path(year)
    if page not in site.routes:
        site.links.setdefault(page, [])
        site.routes[page] = lambda: _render_landing(site, page, "cms_icd10cm_year.html")
        landing = site.links.setdefault(ICD10_LANDING_PATH, [])
        href = page.partition("/www.cms.gov")[2]
        if all(link.href != href for link in landing):
            landing.append(Link(href, f"{year} ICD-10-CM"))
    return page


def icd10cm_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """Add robots.txt, the landing page, the FY2026 page and the recorded April 2026 zips to ``site``.

    ``releases`` picks HCPCS releases and is ignored here: the recorded ICD-10-CM files are always served.
    """
    from policysync.mirror import CMS_HOST, Document, Link, _add_cms_robots, _render_landing, _static

    _add_cms_robots(site)
    site.links.setdefault(ICD10_LANDING_PATH, [])
    site.routes[ICD10_LANDING_PATH] = lambda: _render_landing(site, ICD10_LANDING_PATH, "cms_icd10_codes.html")
    for f in ICD10CM_FILES:
        if not (Path(data_dir) / f.source).is_file():
            continue
        page = _ensure_year_page(site, 2026)
        doc = Document(partial(icd10cm_zip, Path(data_dir), f), "application/zip", PUBLISHED)
        site.routes[f"/{CMS_HOST}{f.path}"] = _static(doc)
        site.links[page].append(Link(f.path, f.text))


def publish_icd10cm(
    mirror: MirrorServer,
    year: int,
    path: str,
    body: bytes,
    *,
    link_text: str,
    last_modified: datetime | None = None,
) -> None:
    """Serve ``body`` at ``path`` (``/files/zip/2027-code-tables-tabular-and-index.zip``), linked from
    fiscal year ``year``'s page (added to the landing page if new): how a test publishes a release."""
    from policysync.mirror import CMS_HOST

    with mirror._lock:
        page = _ensure_year_page(mirror.site, year)
    mirror.put(f"/{CMS_HOST}{path}", body, last_modified=last_modified, link_text=link_text, page=page)
