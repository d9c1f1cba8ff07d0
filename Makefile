# Development tasks. `make run` to try the portal, `make test` before pushing.

VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv install run test lint bench vendor clean

help:
	@echo "make run    install, migrate, load demo data, start web + worker + beat on http://127.0.0.1:8000"
	@echo "make test   test suite on SQLite and, side by side, on PostgreSQL + Redis when they answer"
	@echo "            (REQUIRE_SERVICES=1 makes a missing PostgreSQL/Redis a failure;"
	@echo "             PYTEST_ARGS='-k invit -x' is passed to pytest)"
	@echo "make lint   ruff"
	@echo "make bench  benchmarks P2, P3, P5 and page times in a throwaway database; results in bench/results/latest.json"
	@echo "            (BENCH_ARGS='--only pages' is passed to bench/run.py)"
	@echo "make vendor rebuild the vendored front-end files in static/vendor/ from the npm registry"
	@echo "make clean  remove var/ (local database, queue, cache) and .venv"

venv install: $(STAMP)

# Re-installs only when pyproject.toml changes. An existing .venv is kept if its Python is new
# enough; otherwise it is rebuilt with the first of python3.13, python3.12, python3 that is >= 3.12.
$(STAMP): pyproject.toml
	@set -e; \
	is_new_enough() { "$$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }; \
	if ! is_new_enough $(PYTHON); then \
		py=""; \
		for candidate in python3.13 python3.12 python3; do \
			if is_new_enough "$$candidate"; then py="$$candidate"; break; fi; \
		done; \
		if [ -z "$$py" ]; then \
			echo "error: no Python >= 3.12 found (tried python3.13, python3.12, python3)." >&2; \
			echo "       Install Python 3.12+ (e.g. 'pyenv install 3.13' - .python-version asks for 3.13) and re-run make." >&2; \
			exit 1; \
		fi; \
		echo "Creating $(VENV) with $$("$$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"; \
		"$$py" -m venv --clear $(VENV); \
	fi
	@extras=dev; \
	if pkg-config --exists libvirt 2>/dev/null; then extras=dev,libvirt; \
	else echo "libvirt development files not found: installing without the libvirt backend"; fi; \
	$(VENV)/bin/pip install --disable-pip-version-check -q -e ".[$$extras]"
	@touch $(STAMP)

run: $(STAMP)
	$(PYTHON) manage.py migrate --noinput
	$(PYTHON) manage.py seed_demo
	$(PYTHON) manage.py devrun

test: $(STAMP)
	bash .ci/test-passes $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check portal tests bench

# Not part of `make test`: minutes of seeding, and timings that depend on the machine.
bench: $(STAMP)
	$(PYTHON) bench/run.py $(BENCH_ARGS)

# Front-end files are committed under static/vendor/ (nothing is fetched at run time); this
# rebuilds them from pinned npm packages.
vendor:
	cd portal/catalog/worldmap && npm ci --no-audit --no-fund && node build.mjs
	cd portal/metering/chartlib && npm ci --no-audit --no-fund && node build.mjs
	cd portal/api/docsui && npm ci --no-audit --no-fund && node build.mjs
	cd portal/compute/consoles/xtermjs && npm ci --no-audit --no-fund && node build.mjs
	cd portal/compute/consoles/novnc && npm ci --no-audit --no-fund && node build.mjs

clean:
	rm -rf var $(VENV)
