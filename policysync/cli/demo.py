"""``mirror serve`` and ``demo``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from parsers.errors import UsageError
from policysync.cli import cli
from policysync.demo import run_demo
from policysync.mirror import DEFAULT_PORT, serve_forever


def _data_dir(data: str | None) -> Path:
    path = Path(data or os.environ.get("POLICYSYNC_SHARED_DATA") or Path("..") / "shared" / "data")
    if not (path / "hcpcs").is_dir():
        raise UsageError(f"{path}: no recorded data here (expected {path / 'hcpcs'}); pass --data DIR")
    return path


DATA_OPTION = click.option(
    "--data",
    metavar="DIR",
    help="The recorded files (default: $POLICYSYNC_SHARED_DATA, else ../shared/data).",
)


@cli.group()
def mirror() -> None:
    """The loopback mirror of the recorded CMS files."""


@mirror.command("serve")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@DATA_OPTION
@click.option(
    "--extra",
    "extra",
    metavar="DIR",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also serve the generated NCCI MUE/PTP zips in DIR, by their real names (repeatable).",
)
def mirror_serve(port: int, data: str | None, extra: tuple[Path, ...]) -> None:
    """Serve the recorded data at its real URL paths on 127.0.0.1 until Ctrl-C.

    \b
    Example:
      policysync mirror serve --port 8765 &
      policysync sync --mirror http://127.0.0.1:8765
      policysync mirror serve --extra bench/out   # plus generated full-size NCCI files
    """
    try:
        serve_forever(
            _data_dir(data),
            port,
            extra_dirs=extra,
            on_ready=lambda url: click.echo(f"mirror serving on {url} (Ctrl-C stops)"),
        )
    except ValueError as err:  # a zip in --extra whose name is not a real NCCI file name
        raise UsageError(str(err)) from err


@cli.command()
@DATA_OPTION
@click.pass_obj
def demo(obj: dict[str, str], data: str | None) -> None:
    """The whole flow over the recorded data, on loopback only: init, sync the 2017 - July 2020
    HCPCS files, then sync again after the later quarters are "published", show what changed,
    compile packs, and say where everything is.

    \b
    Example:
      policysync --home /tmp/demo demo
    """
    run_demo(Path(obj["home"]), _data_dir(data), echo=click.echo)
