"""Logging to stderr for the CLI: ``--log-format text`` (default) or ``json``.

Text: warnings and errors only, one line each (``warning: ...``), so a cron run stays quiet unless
something needs a look. JSON: one object per line for a log shipper (journald, Loki, ...), from
INFO up for policysync's own loggers (run events: lock waits and takeovers, progress, notifications,
each source's outcome) and from WARNING up for the libraries. Every object has ``ts`` (ISO UTC),
``level``, ``logger`` and ``message``, plus the record's structured fields (``event``, ``source``, ...).

The handler looks ``sys.stderr`` up at each record, so it follows whatever stderr is current (a
test runner's capture included).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")

# Attributes every LogRecord has; anything else was passed in ``extra`` and is a structured field.
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime"}


class _Stderr(logging.Handler):
    policysync = True  # marks handlers this module installed, to replace them on the next configure()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, sort_keys=False)


def configure(fmt: str = "text") -> None:
    """Install the one stderr handler on the root logger (replacing one installed before)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "policysync", False):
            root.removeHandler(h)
    handler = _Stderr()
    own = logging.getLogger("policysync")
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        handler.setLevel(logging.INFO)
        own.setLevel(logging.INFO)
    else:
        handler.setFormatter(TextFormatter())
        handler.setLevel(logging.WARNING)
        own.setLevel(logging.NOTSET)
    root.addHandler(handler)
