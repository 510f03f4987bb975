"""One source, one name, every layer (CONVENTIONS.md 1): every spider has its parser and its tests,
and every spider module imports."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import crawlers.spiders
from crawlers.spiders import SPIDERS
from tests.conftest import REPO


def test_every_spider_module_imports_and_is_registered() -> None:
    modules = [m.name for m in pkgutil.iter_modules(crawlers.spiders.__path__) if not m.name.startswith("_")]
    assert modules, "no spider modules in crawlers/spiders"
    for name in modules:
        module = importlib.import_module(f"crawlers.spiders.{name}")
        spiders = [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and getattr(obj, "name", None) == name
            and obj.__module__ == module.__name__
        ]
        assert spiders, f"crawlers/spiders/{name}.py defines no spider with name = {name!r}"
        assert SPIDERS.get(name) is spiders[0], f"{name}: not registered in crawlers.spiders.SPIDERS"


@pytest.mark.parametrize("source_id", sorted(SPIDERS))
def test_every_spider_has_its_parser_and_tests(source_id: str) -> None:
    assert SPIDERS[source_id].name == source_id
    assert (REPO / "crawlers" / "spiders" / f"{source_id}.py").is_file()
    assert (REPO / "parsers" / f"{source_id}.py").is_file(), f"parsers/{source_id}.py is missing"
    assert (REPO / "tests" / "parsers" / f"test_{source_id}.py").is_file(), (
        f"tests/parsers/test_{source_id}.py is missing"
    )
