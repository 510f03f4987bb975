"""Loopback mirror routes for the commercial payer sources (``[sources.<payer>_<docset>]``, registered
in :data:`policysync.mirror.ROUTE_BUILDERS` as ``payer``).

Serves the six recorded payer PDFs of ``shared/data/payer`` (PROVENANCE.md section 6) and one index page
per payer that links them. The index pages are CONSTRUCTED (a plain list of policy links, the simplest
layout the payer spider reads); their URLs are the payers' real index pages as configured in
``policysync.config.DEFAULT_CONFIG``. The Cigna and UnitedHealthcare PDFs are served at the real URLs
PROVENANCE.md records; the other four at constructed paths on the payer's own host (their original
URLs were not recorded).

A test publishes a new version of a policy with ``MirrorServer.put(path, body, content_type=...,
link_text=..., page=<index path>)``: the index route renders its links on every request.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policysync.mirror import Document, MirrorSite

__all__ = ["PAYER_DOCS", "PayerDoc", "index_path", "payer_routes"]


@dataclass(frozen=True)
class PayerDoc:
    source: str  # the config entry's id
    payer: str
    index_url: str
    url: str  # where the document is served (real where recorded, else constructed on the payer's host)
    data_path: str  # relative to the shared data folder
    title: str
    real_url: bool  # the URL is the one PROVENANCE.md records


PAYER_DOCS: tuple[PayerDoc, ...] = (
    PayerDoc(
        "uhc_drug_policies",
        "uhc",
        "https://www.uhcprovider.com/en/policies-protocols/commercial-policies/commercial-medical-drug-policies.html",
        "https://www.uhcprovider.com/content/dam/provider/docs/public/policies/comm-medical-drug/botulinum-toxins-a-and-b.pdf",
        "payer/uhc/uhc_2026D0017AN_botulinum_toxins_eff_2026-01-01.pdf",
        "Botulinum Toxins A and B",
        True,
    ),
    PayerDoc(
        "cigna_drug_policies",
        "cigna",
        "https://static.cigna.com/assets/chcp/resourceLibrary/coveragePolicies/pharmacy_a-z.html",
        "https://static.cigna.com/assets/chcp/pdf/coveragePolicies/pharmacy/ip_0319_coveragepositioncriteria_rituximab_non_oncology.pdf",
        "payer/cigna/cigna_IP0319_rituximab_iv_non_oncology_eff_2026-02-01.pdf",
        "Rituximab Intravenous Products for Non-Oncology Indications (IP0319)",
        True,
    ),
    PayerDoc(
        "florida_blue_mcg",
        "florida_blue",
        "https://mcgs.bcbsfl.com/",
        "https://mcgs.bcbsfl.com/MCG/09-J0000-66.pdf",
        "payer/florida_blue/floridablue_09-J0000-66_bevacizumab_rev_2026-01-01.pdf",
        "09-J0000-66 Bevacizumab (Avastin) and biosimilars",
        False,
    ),
    PayerDoc(
        "bcbs_nc_medical_policies",
        "bcbs_nc",
        "https://www.bluecrossnc.com/providers/policies-guidelines-codes/commercial/medical-policies",
        "https://www.bluecrossnc.com/content/dam/bcbsnc/pdf/providers/medical-policies/preferred-injectable-oncology-program.pdf",
        "payer/bcbs_nc/bcbsnc_preferred_injectable_oncology_program_2026-01.pdf",
        "Preferred Injectable Oncology Program",
        False,
    ),
    PayerDoc(
        "emblemhealth_prime_drug_policies",
        "emblemhealth_prime",
        "https://www.emblemhealth.com/providers/clinical-corner/medical-drug-policies",
        "https://www.emblemhealth.com/content/dam/emblemhealth/pdfs/provider/medical-drug-policies/ic-0098-denosumab.pdf",
        "payer/emblemhealth_prime/emblemhealth_prime_IC-0098_denosumab_rev_2025-11-04.pdf",
        "IC-0098 Denosumab (Prolia, Xgeva and biosimilars)",
        False,
    ),
    PayerDoc(
        "priority_health_drug_list",
        "priority_health",
        "https://www.priorityhealth.com/provider/manual/pharmacy/medical-drug-list",
        "https://www.priorityhealth.com/-/media/priorityhealth/documents/formulary/medical-drug-list-2026.pdf",
        "payer/priority_health/priority_health_medical_drug_list_2026.pdf",
        "Commercial and MyPriority Medical Drug List",
        False,
    ),
)

# The recorded PDFs were printed on 2026-04-03/04 (PROVENANCE.md, "G-print").
_PUBLISHED = datetime(2026, 4, 3, tzinfo=UTC)


def index_path(index_url: str) -> str:
    from policysync.mirror import mirror_path

    return mirror_path(index_url)


def _render_index(site: MirrorSite, path: str, title: str) -> Document:
    from policysync.mirror import Document

    items = "\n".join(
        f'<li><a href="{html.escape(link.href)}">{html.escape(link.text)}</a></li>' for link in site.links.get(path, [])
    )
    body = (
        "<!doctype html>\n<!-- CONSTRUCTED by policysync's loopback mirror: a plain list of policy links, "
        "not the payer's page. -->\n"
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>'
        f"<h1>{html.escape(title)}</h1><ul>\n{items}\n</ul></body></html>\n"
    ).encode()
    return Document.of(body, "text/html; charset=utf-8", _PUBLISHED)


def payer_routes(site: MirrorSite, data_dir: Path, releases: Iterable[str] | None = None) -> None:
    """Index pages and documents of the six recorded payers. ``releases`` is not used (one version each)."""
    from policysync.mirror import Document, Link, mirror_path

    for doc in PAYER_DOCS:
        page = index_path(doc.index_url)
        if page not in site.routes:
            title = f"{doc.payer} drug policies (constructed index)"
            site.routes[page] = lambda page=page, title=title: _render_index(site, page, title)  # type: ignore[misc]
        file = Path(data_dir) / doc.data_path
        path = mirror_path(doc.url)

        def load(file: Path = file) -> bytes:
            return file.read_bytes()

        served = Document(load, "application/pdf", _PUBLISHED)
        site.routes[path] = lambda served=served: served  # type: ignore[misc]
        site.links.setdefault(page, []).append(Link("/" + path.lstrip("/").partition("/")[2], doc.title))
