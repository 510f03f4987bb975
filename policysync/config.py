"""The home directory and its ``config.toml``.

Home: ``--home DIR``, else ``$POLICYSYNC_HOME``, else ``./.policysync``. It holds ``config.toml``,
``rulebook.db``, ``artifacts/`` (raw documents by sha256), ``packs/`` and ``reports/``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parsers.errors import ConfigError

DEFAULT_CONFIG = """\
# policysync configuration. One [sources.<id>] entry per source; the id names the spider,
# the parser and the tests alike.
# Any source may set quarantine_drop = 0.20 (the default): a release whose parsed record count
# falls by more than that share against the previous release is quarantined for review.

[review]
# Who may approve or reject versions: `policysync serve` offers exactly these names and refuses any
# other, and so does `policysync review --by` once the list is not empty.
# Example: reviewers = ["J. Doe", "A. Smith"]
reviewers = []

[sources.cms_hcpcs]
enabled = true
# The real CMS page that links the quarterly Alpha-Numeric HCPCS files.
start_url = "https://www.cms.gov/medicare/coding-billing/healthcare-common-procedure-system/quarterly-update"
# CMS publishes quarterly; a source with no successful fetch in 1.5 x this is stale.
cadence_days = 91

[sources.cms_ncci_mue]
enabled = true
# The real CMS page that links the quarterly MUE tables (practitioner, outpatient hospital, DME).
start_url = "https://www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/medicare-ncci-medically-unlikely-edits-mues"
cadence_days = 91

[sources.cms_ncci_ptp]
enabled = true
# The real CMS page that links the PTP edit files (four parts per setting, behind the AMA licence page).
start_url = "https://www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/medicare-ncci-procedure-procedure-ptp-edits"
cadence_days = 91

[sources.cms_asp]
enabled = true
# The real CMS page that links the quarterly Medicare Part B payment limit files and ASP NDC-HCPCS crosswalks.
start_url = "https://www.cms.gov/medicare/payment/part-b-drugs/asp-pricing-files"
cadence_days = 91

[sources.cms_mcd]
# Medicare Coverage Database bulk exports (LCDs, Billing and Coding Articles): coverage rules per
# MAC jurisdiction and state. Behind the AMA/ADA/AHA licence click-through, which the spider accepts:
# enable it only if your organisation accepts those terms. Off by default for that reason;
# `policysync sync --source cms_mcd` runs it once.
enabled = false
# The real MCD downloads page; the exports themselves are on downloads.cms.gov.
start_url = "https://www.cms.gov/medicare-coverage-database/downloads/downloads.aspx"
# CMS refreshes the exports weekly (Thursday).
cadence_days = 7

[sources.cms_coverage_api]
# The weekly incremental path: the CMS Coverage API's what's-new listing since the last sync, then the
# detail of only the changed LCD and article versions (with the one-hour AMA/ADA/AHA licence token,
# which accepts those terms: off by default for the same reason as cms_mcd). No API key.
enabled = false
# The real API base; the spider follows the OpenAPI spec v1.5 paths under it.
start_url = "https://api.coverage.cms.gov/v1/"
# Weekly: the local data are refreshed on Thursdays (metadata/local-data-schedule).
cadence_days = 7
# Each run loads only the changed documents, so the record-count drop check is off.
quarantine_drop = 1.0

[sources.icd10cm]
enabled = true
# The ICD-10-CM code set (public domain): the real CMS ICD-10 page, which links one page per fiscal
# year; the spider takes the newest two years' "Code Tables, Tabular and Index" zips (base release
# in force from October 1, April 1 update). Used to check the diagnoses of coverage rules and claims.
start_url = "https://www.cms.gov/medicare/coding-billing/icd-10-codes"
# Annual (October 1) with the April 1 update: twice a year.
cadence_days = 182

# Commercial payer drug policies (parsers/payer.py, crawlers/spiders/payer.py). One entry per payer
# document set, all served by the one payer spider and parser (parser = "payer"); a payer whose index
# page is a plain list of policy links needs only an entry like these. Off by default: enable the
# ones you license, or name them with `policysync sync --source ID`. Each sync fetches only the
# policies that changed, so the record-count drop check is off for them (quarantine_drop = 1.0).
[sources.uhc_drug_policies]
enabled = false
parser = "payer"
payer = "uhc"
index_urls = ["https://www.uhcprovider.com/en/policies-protocols/commercial-policies/commercial-medical-drug-policies.html"]
link_patterns = ['/policies/comm-medical-drug/[^/]+\\.pdf$']
document_kinds = ["pdf"]
lines_of_business = ["commercial"]
states = []
cadence_days = 7
quarantine_drop = 1.0

[sources.cigna_drug_policies]
enabled = false
parser = "payer"
payer = "cigna"
index_urls = ["https://static.cigna.com/assets/chcp/resourceLibrary/coveragePolicies/pharmacy_a-z.html"]
link_patterns = ['/coveragePolicies/pharmacy/[^/]+\\.pdf$']
document_kinds = ["pdf"]
lines_of_business = ["commercial"]
states = []
cadence_days = 7
quarantine_drop = 1.0

[sources.florida_blue_mcg]
enabled = false
parser = "payer"
payer = "florida_blue"
index_urls = ["https://mcgs.bcbsfl.com/"]
link_patterns = ['/MCG/[^/]+\\.pdf$']
document_kinds = ["pdf", "html"]
lines_of_business = ["commercial", "medicare_advantage"]
states = ["FL"]
cadence_days = 7
quarantine_drop = 1.0

[sources.bcbs_nc_medical_policies]
enabled = false
parser = "payer"
payer = "bcbs_nc"
index_urls = ["https://www.bluecrossnc.com/providers/policies-guidelines-codes/commercial/medical-policies"]
link_patterns = ['/medical-policies/[^/]+\\.pdf$']
document_kinds = ["pdf"]
lines_of_business = ["commercial"]
states = ["NC"]
cadence_days = 7
quarantine_drop = 1.0

[sources.emblemhealth_prime_drug_policies]
enabled = false
parser = "payer"
payer = "emblemhealth_prime"
index_urls = ["https://www.emblemhealth.com/providers/clinical-corner/medical-drug-policies"]
link_patterns = ['/medical-drug-policies/[^/]+\\.pdf$']
document_kinds = ["pdf"]
lines_of_business = ["commercial"]
states = ["NY"]
cadence_days = 7
quarantine_drop = 1.0

[sources.priority_health_drug_list]
enabled = false
parser = "payer"
payer = "priority_health"
index_urls = ["https://www.priorityhealth.com/provider/manual/pharmacy/medical-drug-list"]
link_patterns = ['medical-drug-list[^/]*\\.pdf$']
document_kinds = ["pdf"]
lines_of_business = ["commercial", "individual"]
states = ["MI"]
cadence_days = 7
quarantine_drop = 1.0

# Notifications (policysync/notify.py): after a run that committed substantive changes, or in which
# a source failed or is stale, a digest goes to every channel set here. A digest that cannot be
# delivered is logged, kept in the rulebook's outbox and retried on the next run; it never fails a sync.
[notify]
# email_to = ["billing-rules@example.org"]
# email_from = "policysync@example.org"
# smtp_host = "localhost"
# smtp_port = 25
# smtp_starttls = false
# smtp_user = "policysync"
# smtp_password_env = "POLICYSYNC_SMTP_PASSWORD"  # the password is read from this environment variable
# webhook_url = "https://hooks.example.org/policysync"
# timeout_s = 10
# report_base_url = "https://intranet.example.org/policysync/reports/"  # links instead of file paths
# max_changes = 50  # high-severity changes listed in one digest

# Prometheus text-format metrics, rewritten atomically after every run, for node_exporter's
# textfile collector (point the collector's directory at it, or set an absolute path inside it).
[metrics]
# path = "metrics/policysync.prom"  # relative to the home
"""


#: The default ``quarantine_drop`` of a source: a release with 20 % fewer records than the one before.
QUARANTINE_DROP = 0.20


@dataclass(frozen=True)
class SourceConfig:
    id: str
    enabled: bool = True
    start_url: str | None = None
    cadence_days: int = 7
    # Quarantine when the parsed record count of a release drops by more than this share against
    # the source's previous release (policysync/pipeline.py); 1.0 turns the drop check off.
    quarantine_drop: float = QUARANTINE_DROP
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def db_path(self) -> Path:
        return self.root / "rulebook.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def packs(self) -> Path:
        return self.root / "packs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def require(self) -> Home:
        if not self.exists():
            raise ConfigError(f"{self.root}: no policysync home here (run `policysync init` first)")
        return self


def resolve_home(home: str | Path | None) -> Home:
    if home:
        return Home(Path(home))
    env = os.environ.get("POLICYSYNC_HOME")
    return Home(Path(env) if env else Path(".policysync"))


def init_home(home: Home) -> bool:
    """Create the home. Returns False (and changes nothing) when it already exists."""
    from rulebook.db import open_rulebook

    created = not home.exists()
    for d in (home.root, home.artifacts, home.packs, home.reports):
        d.mkdir(parents=True, exist_ok=True)
    if created:
        home.config_path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    open_rulebook(home.db_path).close()
    return created


def _share(path: Path, sid: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(
            f"{path}: [sources.{sid}] quarantine_drop must be a share between 0 and 1 (e.g. 0.20), got {value!r}"
        )
    return float(value)


def configured_payers(home: Home) -> set[str]:
    """The payer ids of the configured payer sources (``parser = "payer"``): the ``payer:<id>`` scopes."""
    return {
        str(cfg.extra.get("payer") or sid.split("_")[0])
        for sid, cfg in load_sources(home).items()
        if cfg.extra.get("parser") == "payer"
    }


def load_sources(home: Home) -> dict[str, SourceConfig]:
    path = home.require().config_path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise ConfigError(f"{path}: no [sources.<id>] entries")
    out: dict[str, SourceConfig] = {}
    for sid, entry in sources.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: [sources.{sid}] must be a table")
        known = {"enabled", "start_url", "cadence_days", "quarantine_drop"}
        cadence = entry.get("cadence_days", 7)
        if not isinstance(cadence, int) or cadence <= 0:
            raise ConfigError(f"{path}: [sources.{sid}] cadence_days must be a positive integer")
        out[sid] = SourceConfig(
            id=sid,
            enabled=bool(entry.get("enabled", True)),
            start_url=entry.get("start_url"),
            cadence_days=cadence,
            quarantine_drop=_share(path, sid, entry.get("quarantine_drop", QUARANTINE_DROP)),
            extra={k: v for k, v in entry.items() if k not in known},
        )
    return out


def load_reviewers(home: Home) -> list[str]:
    """The reviewer names configured in ``[review] reviewers`` (empty when the table is absent)."""
    path = home.require().config_path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    review = data.get("review", {})
    names = review.get("reviewers", []) if isinstance(review, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f'{path}: [review] reviewers must be a list of names, e.g. ["J. Doe"]')
    return [n.strip() for n in names]


def load_table(home: Home, name: str) -> dict[str, Any]:
    """A top-level ``[name]`` table of ``config.toml`` (empty when absent), e.g. ``notify``, ``metrics``."""
    path = home.require().config_path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return table
