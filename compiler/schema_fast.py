"""Full pack validation at compile time, made cheap without checking less.

``compile_packs`` validates every rule of a pack against the pack schema (``compiler.schema``). A
jurisdiction coverage pack carries a few thousand coverage rules whose ``diagnoses`` arrays hold
270,000 ICD-10-CM codes in all, but only some 30,000 distinct ones, and whose dates, provenance
hashes, jurisdiction and flags repeat from rule to rule: plain jsonschema descends into every value
(a validator evolved each time, ``$ref`` looked up, ``type``, ``pattern`` and ``format`` checked),
which was over 90 % of a compile.

:func:`errors` returns exactly what ``compiler.schema.errors`` returns: the same Draft 2020-12 rules and
format checker, with three keyword implementations replaced.

* ``properties`` and ``items``: a scalar value (string, number, boolean, null) is checked against a
  subschema once; the (subschema, type, value) triples that passed are remembered and not checked
  again. Checking still goes through the validator's own ``descend``, so ``$ref``, ``pattern``,
  ``enum``, ``format`` apply exactly as before. Whether a scalar satisfies a subschema does not depend
  on where it stands in the instance, as long as the subschema cannot resolve differently in another
  dynamic scope: the memory is used only for schemas without ``$dynamicRef``, ``$dynamicAnchor``,
  ``$recursiveRef`` or any ``$id`` but the root's. A value that fails is checked in full every time,
  and ``items`` over an array with any failing string, or with ``prefixItems``, runs the stock code,
  so every error keeps its usual message and path.
* ``unevaluatedProperties`` is skipped for an object whose every key is named in the same schema's
  ``properties`` (``coverage_rule`` names the keys its ``allOf`` rule brings for that reason): keys
  named there are evaluated whatever their values, so the keyword has nothing to report; the stock
  implementation, which validates the object once more against every ``allOf`` branch to find the
  evaluated keys, runs for any other object.

tests/test_schema_fast.py compares the error lists with ``compiler.schema.errors`` on valid and broken
packs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema import _keywords as stock
from jsonschema.exceptions import best_match
from jsonschema.validators import extend

from compiler.schema import load_schema

_SCALARS = (str, int, float, bool, type(None))
# Subschemas whose verdicts on scalars may be remembered: id -> the object (kept alive, so the id stays its).
_SUBSCHEMAS: dict[int, Any] = {}
# id of subschema -> the values that passed it: strings as they are, other scalars as (type, value).
_PASSED: dict[int, set[Any]] = {}
_MAX_REMEMBERED = 1_000_000  # values over all subschemas; past it the memory starts afresh
_REMEMBERED = [0]  # values remembered since it last started afresh


def _register(schema: dict[str, Any]) -> None:
    """Make ``schema``'s subschemas eligible for remembered verdicts when no keyword can make a
    subschema mean something else in another place."""
    text = json.dumps({k: v for k, v in schema.items() if k != "$id"})
    if any(k in text for k in ('"$dynamicRef"', '"$dynamicAnchor"', '"$recursiveRef"', '"$id"')):
        return
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            _SUBSCHEMAS[id(node)] = node
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)


def _memory(sub: Any) -> set[Any] | None:
    """The values remembered as passing ``sub``, or None when ``sub`` is not eligible."""
    if _SUBSCHEMAS.get(id(sub)) is not sub:
        return None
    passed = _PASSED.get(id(sub))
    if passed is None:
        passed = _PASSED[id(sub)] = set()
    return passed


def forget() -> None:
    """Empty the memory of passed values (benchmarks measure a check that starts with nothing known)."""
    for p in list(_PASSED.values()):
        p.clear()
    _REMEMBERED[0] = 0


def remembered() -> int:
    """How many values are remembered as passing (over all subschemas)."""
    return sum(map(len, list(_PASSED.values())))


def _remember(passed: set[Any], fresh: Any) -> None:
    _REMEMBERED[0] += len(fresh)
    if _REMEMBERED[0] > _MAX_REMEMBERED:  # emptied in place: callers may hold these sets
        for p in list(_PASSED.values()):
            p.clear()
        _REMEMBERED[0] = len(fresh)
    passed.update(fresh)


def _passes(validator: Any, value: Any, sub: Any, passed: set[Any] | None) -> bool | None:
    """True when the scalar ``value`` is remembered or now checked as valid against ``sub``; False when
    it fails; None when the memory does not apply (not a scalar, or ``sub`` not eligible)."""
    if passed is None or type(value) not in _SCALARS:
        return None
    key = value if type(value) is str else (type(value), value)
    if key in passed:
        return True
    if next(iter(validator.descend(value, sub)), None) is not None:
        return False
    _remember(passed, (key,))
    return True


def _properties(validator: Any, properties: Any, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for prop, sub in properties.items():
        if prop in instance:
            if _passes(validator, instance[prop], sub, _memory(sub)):
                continue
            yield from validator.descend(instance[prop], sub, path=prop, schema_path=prop)


def _items(validator: Any, items: Any, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if type(instance) is list and "prefixItems" not in schema:
        passed = _memory(items)
        if passed is not None:
            if all(type(x) is str for x in instance):
                fresh: Any = set(instance) - passed
            elif all(type(x) in _SCALARS for x in instance):
                fresh = {(type(x), x): x for x in instance}.values()
            else:
                fresh = None
            if fresh is not None and all(_passes(validator, x, items, passed) for x in fresh):
                return
    yield from stock.items(validator, items, instance, schema)


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    props = schema.get("properties")
    if type(instance) is dict and type(props) is dict and instance.keys() <= props.keys():
        return
    yield from stock.unevaluatedProperties(validator, unevaluated, instance, schema)


_FastValidator = extend(
    Draft202012Validator,
    validators={"properties": _properties, "items": _items, "unevaluatedProperties": _unevaluated_properties},
)


@cache
def validator(name: str) -> Any:
    """The validator of ``compiler/schemas/<name>.schema.json`` with the format checker on (as
    ``compiler.schema.validator``), with remembered verdicts."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    _register(schema)
    return _FastValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(name: str, instance: Any) -> list[str]:
    """Every schema error as ``$.json.path: message``: the same list as ``compiler.schema.errors``."""
    return [f"{e.json_path}: {e.message}" for e in validator(name).iter_errors(instance)]


def first_error(name: str, instance: Any) -> str | None:
    err = best_match(validator(name).iter_errors(instance))
    return None if err is None else f"{err.json_path}: {err.message}"
