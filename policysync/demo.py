"""The demo: the whole flow over the recorded data, through the loopback mirror only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compiler.packs import compile_packs
from policysync import pipeline
from policysync.config import init_home, resolve_home
from policysync.mirror import HCPCS_RELEASES, MirrorServer
from policysync.report import render_sync_report
from rulebook import review
from rulebook import versions as vers
from rulebook.db import open_rulebook
from rulebook.diff import diff_versions, render_markdown

FIRST = [r.release for r in HCPCS_RELEASES if r.release <= "2020-07"]


def run_demo(home_dir: Path, data_dir: Path, echo: Callable[[str], None] = print) -> int:
    home = resolve_home(home_dir)
    init_home(home)
    echo(f"home: {home.root}")
    with MirrorServer(data_dir, releases=FIRST) as m:
        echo(f"1. sync of the HCPCS files up to July 2020 via the loopback mirror {m.url}")
        r1 = pipeline.sync(home, sources=["cms_hcpcs"], mirror=m.url)
        echo(render_sync_report(r1))
    with MirrorServer(data_dir) as m:
        echo(
            "2. CMS 'publishes' October 2020, October 2025 and the October 2026 excerpt; "
            "the NCCI MUE and PTP sources join: sync again"
        )
        r2 = pipeline.sync(home, mirror=m.url)
        echo(render_sync_report(r2))
    db = open_rulebook(home.db_path)
    cs = diff_versions(db, r1.version, r2.version)
    high = [c for c in cs.changes if c.severity == "high"]
    echo(
        f"3. what changed from version {r1.version} to {r2.version}: "
        f"{len(cs.changes)} changes, {len(high)} high"
    )
    for c in high[:10]:
        echo(f"   [high] {c.key} {', '.join(c.categories)} [{c.eff_start}, {c.eff_end or 'open'})")
    report = home.reports / f"diff-{r1.version}-{r2.version}.md"
    report.write_text(render_markdown(cs), encoding="utf-8")
    echo(f"   full change set: {report}")
    echo("4. review: a compliance reviewer approves the pending versions before anything is compiled")
    for v in (r1.version, r2.version):
        if vers.get_version(db, v).review_state == "pending_review":
            # The October 2026 file is a 35-row excerpt, so cms_hcpcs is quarantined: a forced approval.
            for q in review.quarantine_blockers(db, v):
                echo(f"   quarantined in version {q['version_id']}: {q['message']}")
            quarantined = bool(review.quarantine_blockers(db, v))
            note = "demo: recorded CMS files" + (
                "; the October 2026 HCPCS file is recorded as a 35-row excerpt" if quarantined else ""
            )
            entry = review.decide(
                db, v, action="approve", actor="demo", note=note, now=pipeline.utcnow(), force=quarantined
            )
            echo(
                f"   policysync review approve {v} --by demo --note '{entry.note}'"
                + (" --force" if entry.forced else "")
                + ": "
                f"{entry.previous_state} -> {entry.new_state} (audit #{entry.id})"
            )
    echo("5. packs")
    for start, end in (("2020-07-01", "2020-10-01"), ("2026-07-01", "2026-10-01")):
        out = home.packs / f"medicare_{start}_{end}"
        res = compile_packs(db, start=start, end=end, scope="medicare", out_dir=out)
        counts = ", ".join(f"{n} {k}" for k, n in res.manifest["packs"][0]["sections"].items())
        echo(f"   {out}/: in force in [{start}, {end}): {counts} (rulebook version {res.version})")
    echo(f"rulebook: {home.db_path}; raw documents: {home.artifacts}; run reports: {home.reports}")
    return max(r1.exit_code, r2.exit_code)
