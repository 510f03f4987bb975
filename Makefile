# policysync — the two commands a new user needs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test lint typecheck pytest chromium demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

## make test: create .venv if needed, install, then ruff, mypy and pytest
test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) chromium
	$(VENV)/bin/pytest

## chromium: Debian's browser for the end-to-end tests (tests/test_browser.py), installed only when missing
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; else \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  echo "installing Debian's chromium for the browser tests"; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; \
	fi

## make demo: the whole flow over ../shared/data on loopback (fresh demo home each time)
demo: $(STAMP)
	rm -rf .policysync-demo
	$(VENV)/bin/policysync --home .policysync-demo demo

## make bench: the benchmarks in bench/ (figures, not pass/fail)
bench: $(STAMP)
	$(PY) bench/bench_sync.py

clean:
	rm -rf $(VENV) .policysync-demo .mypy_cache .ruff_cache .pytest_cache
