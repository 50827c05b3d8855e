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

# Interop tests drive the real openssl and curl clients, sslscan checks the gateway's TLS
# policy, and `mutls doctor` is tested against nginx with ssl_verify_client on; install them
# where they are missing. nginx runs only from the tests' own config (`nginx -c` in a temp dir);
# as for `make bench`, the distribution's nginx service is stopped and disabled right after
# install so nothing is left listening on port 80.
SYSTEM_TOOLS := openssl curl jq sqlite3 sslscan nginx

install: $(STAMP)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || [ -x /usr/sbin/$$t ] || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  case "$$missing" in *" nginx"*) \
	    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl disable --now nginx || true; \
	    else service nginx stop >/dev/null 2>&1 || true; fi;; esac; fi

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

# bench/gateway drives nginx (the baseline and the shared upstream), wrk, and a small LD_PRELOAD
# library built with gcc against libssl-dev. nginx runs only from the bench's own config
# (`nginx -c`); the distribution's nginx service is stopped and disabled right after install so
# nothing is left listening on port 80.
BENCH_TOOLS := nginx wrk gcc libssl-dev

bench: install
	@missing=""; for p in $(BENCH_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  case "$$missing" in *" nginx"*) \
	    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl disable --now nginx || true; \
	    else service nginx stop >/dev/null 2>&1 || true; fi;; esac; fi
	$(PY) bench/pki_bench.py
	$(PY) bench/vault_bench.py
	$(PY) bench/ca_bench.py --workers 2,8
	$(PY) bench/api_issue_bench.py
	$(PY) bench/gateway/hotpath.py
	$(PY) bench/gateway/run.py
	$(PY) bench/egress/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
