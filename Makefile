# Two commands: `make run` (the app, zero-install defaults) and `make test` (the suite).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 5000
export TENANTPILOT_INSTANCE_PATH ?= $(CURDIR)/instance

PLUGINS = $(wildcard plugins/*/setup.cfg)
# The worked example of docs/plugins.md, installed the way a third party would install a
# plugin: a plain (non-editable) pip install, so a change to its package re-installs it.
EXAMPLE       = examples/tenantpilot-trim-names
EXAMPLE_FILES = $(EXAMPLE)/setup.cfg $(EXAMPLE)/pyproject.toml $(wildcard $(EXAMPLE)/tenantpilot_trim_names/*.py \
                $(EXAMPLE)/tenantpilot_trim_names/templates/*/*.html $(EXAMPLE)/tenantpilot_trim_names/static/*)

.PHONY: run test install bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when any package definition changes; built-in plugins are editable installs
# registered through the same entry-point group as third-party ones.
$(VENV)/.installed: $(BIN)/python setup.cfg $(PLUGINS) $(EXAMPLE_FILES)
	$(BIN)/pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	$(BIN)/pip install --quiet $(EXAMPLE)
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/flask --app wsgi db upgrade heads
	@$(BIN)/flask --app wsgi demo seed
	@echo ""
	@echo "  TenantPilot Ops: http://127.0.0.1:$(PORT)/admin/   system plane: http://127.0.0.1:$(PORT)/system/"
	@echo "  Demo logins:"
	@$(BIN)/flask --app wsgi demo logins
	@echo ""
	$(BIN)/flask --app wsgi serve --port $(PORT)

# The test kit uses only the backends named in TEST_DATABASE_URL / TEST_REDIS_URL (else a
# temporary SQLite file + in-process queue). The project's own run names PostgreSQL + Redis on
# 127.0.0.1 (a database of this checkout's own, so two checkouts never reset each other;
# Redis db 13, per-test key prefixes); an unreachable one falls back. The first line of the
# output says which. Set either variable to override, e.g. TEST_DATABASE_URL=sqlite.
CHECKOUT := $(shell printf '%s' '$(CURDIR)' | sha1sum | cut -c1-8)
test: export TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/tenantpilot_test_$(CHECKOUT)
test: export TEST_REDIS_URL ?= redis://127.0.0.1:6379/13
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	@command -v wrk >/dev/null || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Mutation testing (docs/mutation.md), not part of CI: mutmut mutates the functions named in
# MUTANTS (globs over mutmut's names; MUTANTS= mutates all of seam.py, controls.py and
# runs.py, about two hours on two cores) and runs, per mutant, only the tests of setup.cfg's
# [mutmut] section that cover it, fail-fast, on SQLite and the in-process queue.
MUTANTS ?= tenantpilot.controls.* tenantpilot.seam.x__check_capabilities* tenantpilot.seam.x__audit_blocked* \
	tenantpilot.seam.x__record_started* tenantpilot.runs.x__mark_completed* tenantpilot.runs.x__active_conflict*
MUTATION_CHILDREN ?= 2

mutation: install
	$(BIN)/pip install --quiet -e '.[mutation]'
	rm -rf mutants
	TEST_DATABASE_URL=sqlite TEST_REDIS_URL=none $(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) \
	  $(foreach m,$(MUTANTS),'$(m)') && $(BIN)/mutmut results

clean:
	rm -rf $(VENV) instance .pytest_cache mutants
