"""Loopback mirror routes for ``cms_asp`` (registered in :data:`policysync.mirror.ROUTE_BUILDERS`).

Serves a constructed "ASP Pricing Files" landing page (``mirror_pages/cms_asp_pricing_files.html``)
at the real page's path, and the nine recorded quarters of ``shared/data/asp`` (2024 Q1 - 2026 Q1):
each "section 508" CSV wrapped on the fly into a zip under a real-shaped name, the way the HCPCS
routes do it (STORED, fixed timestamps: the same data gives byte-identical zips). Link names:

* ``/files/zip/<month>-<year>-asp-pricing-file.zip`` (2024 Q1 - 2025 Q4);
* ``/files/zip/january-2026-medicare-part-b-payment-limit-files.zip`` (the 2026 rename);
* ``/files/zip/<month>-<year>-asp-ndc-hcpcs-crosswalk.zip``.

The publication date (Last-Modified and the zip timestamps) is the MMDDYY stamp at the end of the
recorded file name ("... 091725.csv" = 2025-09-17).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policysync.mirror import MirrorSite

__all__ = ["ASP_LANDING_PATH", "AspFile", "asp_files", "asp_zip", "cms_asp_routes"]

ASP_LANDING_PATH = "/www.cms.gov/medicare/payment/part-b-drugs/asp-pricing-files"
_MONTHS = {
    "jan": ("january", 1),
    "apr": ("april", 4),
    "jul": ("july", 7),
    "oct": ("october", 10),
}
_NAME = re.compile(r"of (\w+) (20\d\d) .* (\d{2})(\d{2})(\d{2})\.csv$")


@dataclass(frozen=True)
class AspFile:
    release: str  # "2025-10"
    kind: str  # "pricing" | "crosswalk"
    path: str  # real path on www.cms.gov
    text: str  # link text
    member: str  # the recorded file name, kept as the zip member's name
    source: str  # path relative to the data folder
    published: datetime


def asp_files(data_dir: Path) -> list[AspFile]:
    """Every recorded ASP file as the mirror publishes it, oldest quarter first."""
    out = []
    for folder, kind in (("pricing", "pricing"), ("ndc_hcpcs_crosswalk", "crosswalk")):
        for f in sorted((Path(data_dir) / "asp" / folder).glob("*.csv")):
            m = _NAME.search(f.name)
            if m is None:
                continue
            month, num = _MONTHS[m.group(1)[:3].lower()]
            year = int(m.group(2))
            published = datetime(2000 + int(m.group(5)), int(m.group(3)), int(m.group(4)), tzinfo=UTC)
            if kind == "crosswalk":
                path = f"/files/zip/{month}-{year}-asp-ndc-hcpcs-crosswalk.zip"
                text = f"{month.capitalize()} {year} ASP NDC-HCPCS Crosswalk (ZIP)"
            elif "Payment Limit File" in f.name:
                path = f"/files/zip/{month}-{year}-medicare-part-b-payment-limit-files.zip"
                text = f"{month.capitalize()} {year} Medicare Part B Payment Limit Files (ZIP)"
            else:
                path = f"/files/zip/{month}-{year}-asp-pricing-file.zip"
                text = f"{month.capitalize()} {year} ASP Pricing File (ZIP)"
            out.append(AspFile(f"{year:04d}-{num:02d}", kind, path, text, f.name, f"asp/{folder}/{f.name}", published))
    return sorted(out, key=lambda a: (a.release, a.kind))


def asp_zip(data_dir: Path, f: AspFile) -> bytes:
    from policysync.mirror import build_zip

    return build_zip([(f.member, (Path(data_dir) / f.source).read_bytes())], f.published)


def cms_asp_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """Add robots.txt, the ASP landing page and the recorded quarters to ``site``.

    ``releases`` ("2025-10", ...) limits the quarters served when it names any recorded ASP quarter;
    otherwise (e.g. only HCPCS releases are named) every quarter is served.
    """
    from policysync.mirror import CMS_HOST, Document, Link, _add_cms_robots, _render_landing, _static

    files = asp_files(data_dir)
    wanted = set(releases or ()) & {f.release for f in files}
    _add_cms_robots(site)
    links = site.links.setdefault(ASP_LANDING_PATH, [])
    site.routes[ASP_LANDING_PATH] = lambda: _render_landing(site, ASP_LANDING_PATH, "cms_asp_pricing_files.html")
    for f in files:
        if wanted and f.release not in wanted:
            continue
        doc = Document(partial(asp_zip, data_dir, f), "application/zip", f.published)
        site.routes[f"/{CMS_HOST}{f.path}"] = _static(doc)
        links.append(Link(f.path, f.text))
