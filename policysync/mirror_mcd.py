"""The loopback mirror's Medicare Coverage Database downloads (source ``cms_mcd``).

What it serves (the route builder :func:`cms_mcd_routes`, registered in ``policysync.mirror``):

* ``/www.cms.gov/medicare-coverage-database/downloads/downloads.aspx``: a **constructed** downloads
  page (not a copy of CMS's) linking each export through the licence page, as the real page's
  download buttons open the AMA/ADA/AHA licence modal first (DOMAIN.md §3.2);
* ``/www.cms.gov/medicare-coverage-database/downloads/license.aspx?file=...``: a **constructed**
  licence page with an Accept form (GET) that asks for the file with ``?agree=yes``;
* ``/downloads.cms.gov/medicare-coverage-database/downloads/exports/current_article.zip`` and
  ``current_lcd.zip``: built on the fly from the recorded export (``mcd/export_2026-01``) as CMS nests
  them, ``current_article.zip`` > ``current_article_csv.zip`` > ``current_article_csv/*.csv``, with the
  readme beside the inner zip. A file asked for without ``agree=yes`` is redirected to the licence page.

The recorded export lacks five tables (``article``, ``article_x_hcpc_code``, ``article_x_icd10_covered``,
``article_x_icd10_noncovered``, ``lcd``), so by default the zips lack them too and the parser refuses
them, naming the missing table. :func:`publish_export` serves an export completed with extra tables
(the constructed fixtures in ``tests/fixtures/cms_mcd``, or ``bench/generate_mcd.py``'s full-size ones).
Zips are STORED with fixed timestamps: the same tables give byte-identical zips.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

if TYPE_CHECKING:
    from policysync.mirror import MirrorServer, MirrorSite

CMS_HOST = "www.cms.gov"
DOWNLOADS_HOST = "downloads.cms.gov"
LANDING_PATH = "/medicare-coverage-database/downloads/downloads.aspx"
LICENSE_PAGE = "/medicare-coverage-database/downloads/license.aspx"
EXPORTS_PATH = "/medicare-coverage-database/downloads/exports/"
LANDING_URL = f"https://{CMS_HOST}{LANDING_PATH}"
RECORDED_EXPORT = "mcd/export_2026-01"
EXPORTS = ("current_article", "current_lcd")
PUBLISHED = datetime(2026, 1, 8, tzinfo=UTC)  # constructed: the Thursday refresh after the recorded tables

_LINKS: dict[int, dict[str, str]] = {}  # id(site) -> {export name: link text}


def export_url(name: str) -> str:
    return f"https://{DOWNLOADS_HOST}{EXPORTS_PATH}{name}.zip"


def mirror_file_path(name: str) -> str:
    return f"/{DOWNLOADS_HOST}{EXPORTS_PATH}{name}.zip"


def export_zip(
    name: str,
    csv_dirs: Iterable[Path],
    *,
    drop: Iterable[str] = (),
    replace: dict[str, bytes] | None = None,
    date_time: datetime = PUBLISHED,
) -> bytes:
    """The export ``name`` (``current_article``) as CMS nests it, from the CSV files of ``csv_dirs``
    (a later folder's table replaces an earlier one's). ``drop`` leaves tables out (``article_x_icd10_covered``);
    ``replace`` gives a table's bytes directly (``{"article": b"..."}``)."""
    from policysync.mirror import build_zip

    tables: dict[str, bytes] = {}
    readme = b""
    for d in csv_dirs:
        for f in sorted(Path(d).glob("*.csv")):
            tables[f.stem.lower()] = f.read_bytes()
        if (Path(d) / "readme_first.txt").is_file():
            readme = (Path(d) / "readme_first.txt").read_bytes()
    other = "lcd" if name.endswith("_article") else "article"
    for t in [t for t in tables if t.startswith(other)]:
        tables.pop(t)  # an article table in a folder shared with LCD tables belongs to the other export
    for t in drop:
        tables.pop(t, None)
    tables.update(replace or {})
    inner = build_zip(((f"{name}_csv/{t}.csv", body) for t, body in sorted(tables.items())), date_time)
    members = [(f"{name}_csv.zip", inner)]
    if readme:
        members.append(("readme_first.txt", readme))
    return build_zip(members, date_time)


def _landing(site_links: dict[str, str]) -> bytes:
    items = []
    for name, text in site_links.items():
        href = f"{LICENSE_PAGE}?file={quote(EXPORTS_PATH + name + '.zip')}"
        items.append(f'    <li><a href="{html.escape(href)}">{html.escape(text)}</a></li>')
    body = "\n".join(items)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Downloads | Medicare Coverage Database</title>'
        "</head>\n<body>\n<!-- Constructed for the policysync loopback mirror; not a copy of the CMS page. -->\n"
        "<h1>Medicare Coverage Database Downloads</h1>\n<h2>Current LCDs and Articles</h2>\n<ul>\n"
        f"{body}\n</ul>\n</body></html>\n"
    ).encode()


def _license_page(file_path: str) -> bytes:
    action = f"https://{DOWNLOADS_HOST}{file_path}"
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>License Agreement</title></head>\n<body>\n'
        "<!-- Constructed for the policysync loopback mirror; not a copy of the CMS page. -->\n"
        "<h1>License for use of Current Procedural Terminology, Fourth Edition (CPT&reg;)</h1>\n"
        "<p>End User Point and Click Agreement: CPT codes, descriptions and other data only are copyright "
        "American Medical Association. ... (constructed summary)</p>\n"
        f'<form method="get" action="{html.escape(action)}">\n'
        '  <input type="hidden" name="agree" value="yes">\n'
        '  <input type="submit" value="Accept">\n'
        "</form>\n"
        f'<form method="get" action="https://{CMS_HOST}{LANDING_PATH}">'
        '<input type="submit" value="Do Not Accept"></form>\n'
        "</body></html>\n"
    ).encode()


def _handler(site: MirrorSite, path: str, query: str) -> Any:
    """The licence page, and the redirect to it for an export asked for without ``agree=yes``."""
    params = parse_qs(query)
    if path == f"/{CMS_HOST}{LICENSE_PAGE}":
        file_path = params.get("file", [""])[0]
        if f"/{DOWNLOADS_HOST}{file_path}" not in site.routes:
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"no such download\n"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, _license_page(file_path)
    if path.startswith(f"/{DOWNLOADS_HOST}{EXPORTS_PATH}") and path in site.routes:
        if "yes" not in params.get("agree", []):
            file_path = path[len(DOWNLOADS_HOST) + 1 :]
            location = f"/{CMS_HOST}{LICENSE_PAGE}?file={quote(file_path)}"
            return 302, {"Location": location, "Content-Type": "text/plain; charset=utf-8"}, b""
    return None


def _install(site: MirrorSite) -> dict[str, str]:
    from policysync.mirror import Document

    links = _LINKS.setdefault(id(site), {})
    site.handlers.setdefault("cms_mcd_license", partial(_handler, site))

    def landing() -> Document:
        return Document.of(_landing(links), "text/html; charset=utf-8", PUBLISHED)

    site.routes[f"/{CMS_HOST}{LANDING_PATH}"] = landing
    return links


def cms_mcd_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """The downloads page, the licence page and the recorded export zips (which lack five tables)."""
    from policysync.mirror import Document, _add_cms_robots, _static

    _add_cms_robots(site)
    links = _install(site)
    base = Path(data_dir) / RECORDED_EXPORT
    for name in EXPORTS:
        csv_dir = base / name / "csv"
        if not csv_dir.is_dir():
            continue
        doc = Document(partial(export_zip, name, [csv_dir]), "application/zip", PUBLISHED)
        site.routes[mirror_file_path(name)] = _static(doc)
        links[name] = f"{name}.zip (CSV)"


def publish_export(
    mirror: MirrorServer,
    name: str,
    body: bytes,
    *,
    last_modified: datetime | None = None,
    link_text: str | None = None,
) -> None:
    """Serve ``body`` as export ``name`` (``current_article``) from now on, linked from the downloads page
    through the licence page: how a test or benchmark publishes "this week's" export."""
    from policysync.mirror import Document, _static

    with mirror._lock:
        links = _install(mirror.site)
        doc = Document.of(body, "application/zip", last_modified or datetime.now(UTC).replace(microsecond=0))
        mirror.site.routes[mirror_file_path(name)] = _static(doc)
        links[name] = link_text or f"{name}.zip (CSV)"
