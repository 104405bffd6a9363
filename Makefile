# Puente's front door. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: demo test test-sqlite test-postgres lint bench migrate serve sandbox install wheel clean

# uv lives beside the environment, not in it: `uv pip sync` removes whatever the lockfile
# does not list, uv itself included.
UV := $(VENV)-tools/bin/uv

$(STAMP): requirements-dev.lock pyproject.toml package-lock.json
	@test -x $(UV) || $(PYTHON) -m pip install -q --disable-pip-version-check --target $(VENV)-tools "uv==$(UV_VERSION)"
	@test -x $(BIN)/python || $(UV) venv -q --python $(PYTHON) $(VENV)
	@$(UV) pip sync -q --compile-bytecode --python $(BIN)/python requirements-dev.lock
	@$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	@# Compiled once here: with PYTHONDONTWRITEBYTECODE set (as on our machines) Python
	@# never writes its caches, and every `puente` process would compile its imports anew
	@# (about 3 s of CPU per command or worker start, 1 s with the caches).
	@$(BIN)/python -m compileall -q -j0 src >/dev/null
	@npm ci --no-audit --no-fund --silent
	@touch $(STAMP)

install: $(STAMP)

## demo: Puente and the Meta sandbox on SQLite, seeded, at http://127.0.0.1:8000
## (options go in ARGS: make demo ARGS="--port 8100 --sandbox-port 8101 --no-traffic")
demo: $(STAMP)
	$(BIN)/puente demo $(ARGS)

## test: the whole suite on SQLite, then on PostgreSQL (skipped with a notice if unreachable,
## required when PUENTE_REQUIRE_POSTGRES=1)
test: $(STAMP)
	$(BIN)/python scripts/run_tests.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	@# Import layering: who may import whom (pyproject's [tool.importlinter]), and no cycles.
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python scripts/check_imports.py
	$(BIN)/python scripts/i18n.py check

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

migrate: $(STAMP)
	$(BIN)/puente migrate

serve: $(STAMP)
	$(BIN)/puente serve $(ARGS)

sandbox: $(STAMP)
	$(BIN)/puente sandbox

## wheel: dist/puente-*.whl (with the sdist and requirements.lock), carrying the front-end
## libraries setup.py copies from node_modules; install it anywhere (docs/operations.md)
wheel: $(STAMP)
	rm -rf dist
	$(UV) build --out-dir dist
	@# The versions Puente was tested with, to install the wheel with (-c requirements.lock).
	cp requirements.lock dist/

clean:
	rm -rf $(VENV) $(VENV)-tools node_modules var dist build .pytest_cache .mypy_cache .ruff_cache
