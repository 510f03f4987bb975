"""The click command line: a thin layer. Each command parses options, calls one library function
and formats the result. Split by command group (CONVENTIONS.md 6)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from parsers.errors import PolicySyncError
from policysync import __version__
from policysync.logs import FORMATS
from policysync.logs import configure as configure_logging


class _Root(click.Group):
    """Every PolicySyncError becomes one line on stderr and its exit code (2 usage, 3 failure)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PolicySyncError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="POLICYSYNC_HOME",
    default=".policysync",
    show_default=True,
    help="Home directory (config.toml, rulebook.db, artifacts/, packs/). Also $POLICYSYNC_HOME.",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    envvar="POLICYSYNC_LOG_FORMAT",
    default="text",
    show_default=True,
    help="Logs on stderr: text (warnings only) or json (one object per line, run events included).",
)
@click.version_option(__version__, prog_name="policysync")
@click.pass_context
def cli(ctx: click.Context, home: str, log_format: str) -> None:
    """policysync: payer policy surveillance and effective-dated rule packs.

    \b
    Example:
      policysync init && policysync sync && policysync compile --from 2026-01-01 --to 2026-04-01 -o packs/
    """
    configure_logging(log_format)
    ctx.obj = {"home": home, "log_format": log_format}


def progress_printer() -> Any:
    """Progress lines on a terminal; nothing in cron (stderr not a TTY). With --log-format json,
    progress is logged as events instead."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_root().obj or {}).get("log_format") == "json":
        progress_log = logging.getLogger("policysync.progress")
        return lambda msg: progress_log.info(msg, extra={"event": "progress"})
    if sys.stderr.isatty():
        return lambda msg: click.echo(f"  {msg}", err=True)
    return None


from policysync.cli import browse as _browse  # noqa: E402,F401
from policysync.cli import compile as _compile  # noqa: E402,F401  (registers commands)
from policysync.cli import demo as _demo  # noqa: E402,F401
from policysync.cli import diff as _diff  # noqa: E402,F401
from policysync.cli import gc as _gc  # noqa: E402,F401
from policysync.cli import home as _home  # noqa: E402,F401
from policysync.cli import review as _review  # noqa: E402,F401
from policysync.cli import scrub as _scrub  # noqa: E402,F401
from policysync.cli import serve as _serve  # noqa: E402,F401
from policysync.cli import sync as _sync  # noqa: E402,F401


def main() -> None:
    cli(prog_name="policysync")
