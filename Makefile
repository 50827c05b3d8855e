# The README's commands. Every target installs the project into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint format demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Interop tests drive the real openssl and curl clients; install them where they are missing.
SYSTEM_TOOLS := openssl curl jq sqlite3

install: $(STAMP)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

test: install
	$(PY) -m pytest -n 2

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

demo: install
	$(VENV)/bin/mutls demo

bench: install
	$(PY) bench/pki_bench.py
	$(PY) bench/vault_bench.py
	$(PY) bench/ca_bench.py --workers 2,8
	$(PY) bench/api_issue_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
