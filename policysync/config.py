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
"""


@dataclass(frozen=True)
class SourceConfig:
    id: str
    enabled: bool = True
    start_url: str | None = None
    cadence_days: int = 7
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
        known = {"enabled", "start_url", "cadence_days"}
        cadence = entry.get("cadence_days", 7)
        if not isinstance(cadence, int) or cadence <= 0:
            raise ConfigError(f"{path}: [sources.{sid}] cadence_days must be a positive integer")
        out[sid] = SourceConfig(
            id=sid,
            enabled=bool(entry.get("enabled", True)),
            start_url=entry.get("start_url"),
            cadence_days=cadence,
            extra={k: v for k, v in entry.items() if k not in known},
        )
    return out
