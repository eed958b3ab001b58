# The single entry point. `make test` and `make demo` are the README's two commands.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON313 := $(shell scripts/find-python)
PYTHON_BIN_DIR := $(dir $(PYTHON313))
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .tools/sam
CHECKOV_VENV := .tools/checkov
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
# Amazon States Language validator (Node 20 or newer): every definition, JSONPath, in make lint.
ASL_VALIDATOR_DIR := .tools/asl-validator
ASL_VALIDATOR_VERSION := 4.0.0
# sam build needs python3.13 itself on PATH; no telemetry from tests.
SAM := PATH="$(PYTHON_BIN_DIR):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# CI must run against both database engines: a missing one fails instead of skipping.
export WANDB_OPS_REQUIRE_ENGINES ?= $(if $(CI),all,)

.PHONY: help test demo docs template lint build engines venv tools clean

help:
	@echo "make test   - install everything, start the database engines, lint, build, run the test suite"
	@echo "make demo   - run every workflow against the local emulator and print what happened"
	@echo "make lint   - ruff, mypy, cfn-lint, sam validate --lint, checkov, asl-validator"
	@echo "make build  - sam build (arm64 layer and functions into .aws-sam/)"
	@echo "make docs   - regenerate template.yaml's workflow blocks, the state machine diagrams and the permission tables"
	@echo "make template - regenerate only template.yaml's workflow blocks (from workflows.yaml)"

# One stamp per environment: reinstall only when its pins change.
$(VENV)/.installed: requirements-dev.txt layers/common/requirements.txt
	@test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(SAM_VENV)/.installed:
	@test -x $(SAM_VENV)/bin/python || $(PYTHON313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $@

$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON313) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $@

$(ASL_VALIDATOR_DIR)/.installed-$(ASL_VALIDATOR_VERSION):
	npm install --prefix $(ASL_VALIDATOR_DIR) --save-exact --no-audit --no-fund --loglevel=error asl-validator@$(ASL_VALIDATOR_VERSION)
	@touch $@

venv: $(VENV)/.installed

# sam-cli and checkov pin libraries that clash with the test environment: each gets its own.
tools: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed $(ASL_VALIDATOR_DIR)/.installed-$(ASL_VALIDATOR_VERSION)

engines:
	scripts/provision-engines

lint: venv tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/common tests scripts bench
	@# Each function is its own top-level `app` module: check them one at a time.
	@for app in functions/*/app.py; do echo "mypy $$app"; $(VENV)/bin/mypy "$$app"; done
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --region us-east-1
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet
	@# The definitions say QueryLanguage JSONPath (the rig refuses JSONata). Their ${...} placeholders sit
	@# only in Parameters strings, which it does not check as ARNs: nothing is suppressed.
	$(ASL_VALIDATOR_DIR)/node_modules/.bin/asl-validator $(foreach definition,$(wildcard statemachines/*.asl.json),--json-path $(definition))

build: tools
	$(SAM) build

test: venv tools engines lint build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

demo: venv
	scripts/provision-engines --mariadb-only
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) scripts/demo.py

# The template's generated blocks first: the permission tables are read from the template.
docs: venv template
	$(PY) scripts/asl_to_mermaid.py
	$(PY) scripts/permissions_doc.py

template: venv
	$(PY) scripts/template_workflows.py

clean:
	rm -rf $(VENV) .tools .aws-sam .pytest_cache .mypy_cache .ruff_cache
