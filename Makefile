# stagepilot — every entry point sets up what it needs (.venv from pinned requirements, CDK CLI from npm).
SHELL := /bin/bash
# The functions run on Python 3.13 (infra/bundling.py RUNTIME_PYTHON): the venv is built on it, so the tests
# run on the runtime's Python and the synth can compile the bytecode the zip ships. PYTHON=... overrides the
# search (python3.13 on PATH, then pyenv's installed 3.13).
RUNTIME_PYTHON := 3.13
IS_RUNTIME_PYTHON := -c 'import sys; sys.exit(sys.version[:4] != "$(RUNTIME_PYTHON)")'
ifndef PYTHON
PYTHON := $(shell for p in python$(RUNTIME_PYTHON) $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(RUNTIME_PYTHON)*/bin/python$(RUNTIME_PYTHON) $$(pyenv root 2>/dev/null)/versions/$(RUNTIME_PYTHON)*/bin/python$(RUNTIME_PYTHON); do \
  "$$p" $(IS_RUNTIME_PYTHON) 2>/dev/null && { echo "$$p"; break; }; done)
endif
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
# make deploy STACK=StagePilot-staging: another deployment in the same account and region
STACK ?= StagePilot
STAMP := $(VENV)/.installed-$(RUNTIME_PYTHON)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_HOME := $(CURDIR)/.cdk-home

.PHONY: help demo test lint synth deploy destroy bench soak lock clean completion

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "stagepilot needs CPython $(RUNTIME_PYTHON), the Lambda runtime's version: install it, or pass PYTHON=/path/to/python$(RUNTIME_PYTHON)" >&2; exit 1; }
	$(PY) $(IS_RUNTIME_PYTHON) 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(CDK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(CDK)

demo: $(STAMP) $(CDK)  ## run the automation on the example show, locally (no AWS account)
	$(VENV)/bin/stagepilot simulate --policies examples/policies.json --bans examples/bans.json --events examples/show.jsonl

test: $(STAMP) $(CDK) lint  ## the whole test suite, offline
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not slow"

lint: $(STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

synth: $(STAMP) $(CDK)  ## CloudFormation template into cdk.out/, offline, no credentials
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(CDK) synth --quiet
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json

deploy: $(STAMP) $(CDK)  ## cdk deploy into the account of your AWS credentials (STACK=name, default StagePilot)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(CDK) deploy -c stackName=$(STACK) $(STACK)

destroy: $(STAMP) $(CDK)  ## cdk destroy (the table is retained; STACK=name)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(CDK) destroy -c stackName=$(STACK) $(STACK)

bench: $(STAMP)  ## benchmarks against the floor (docs/performance.md)
	$(PY) -m benchmarks

soak: $(STAMP) $(CDK)  ## the slow reliability variants
	$(PY) -m pytest -q -n 2 --dist loadgroup -m slow -rP

completion: $(STAMP)  ## shell completion for stagepilot into build/completion/ (source the one of your shell)
	mkdir -p build/completion
	for shell in bash zsh; do \
	  $(PY) -m shtab --shell=$$shell --prog stagepilot -o build/completion/stagepilot.$$shell stagepilot.cli.main.build_parser; \
	done

lock: $(STAMP)  ## re-pin requirements.txt from the current venv
	$(PY) -m pip freeze --exclude-editable | sort > requirements.lock.tmp && echo "review requirements.lock.tmp"

clean:
	rm -rf $(VENV) node_modules cdk.out .cdk-home build
