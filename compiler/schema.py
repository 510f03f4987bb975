"""The pack and manifest JSON Schemas (2020-12), validated the way jsonschema intends: with the
format checker on, ``best_match`` for the one-line message, every error with its JSON path."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA_VERSION = "1.1.0"
SUPPORTED_MAJOR = 1


@cache
def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("compiler").joinpath("schemas", f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@cache
def validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(name: str, instance: Any) -> list[str]:
    """Every schema error as ``$.json.path: message``."""
    return [f"{e.json_path}: {e.message}" for e in validator(name).iter_errors(instance)]


def first_error(name: str, instance: Any) -> str | None:
    err = best_match(validator(name).iter_errors(instance))
    return None if err is None else f"{err.json_path}: {err.message}"
