# stagepilot — every entry point sets up what it needs (.venv from pinned requirements, CDK CLI from npm).
SHELL := /bin/bash
# Any supported CPython runs the demo and the tests: the newest of PYTHON_VERSIONS found (python3.X on PATH,
# then pyenv's installed ones, then python3). Only the Lambda zip's bytecode needs the runtime's 3.13
# (infra/bundling.py RUNTIME_PYTHON): a synth on another version ships plain sources and says so.
# PYTHON=/path/to/python overrides the search; PYTHON_VERSIONS=3.13 insists on one (.ci/run does), and names
# only supported ones: SUPPORTED_PYTHONS is the one list (newest first), never overridden.
override SUPPORTED_PYTHONS := 3.13 3.12 3.11
PYTHON_VERSIONS ?= $(SUPPORTED_PYTHONS)
ifneq ($(or $(filter-out $(SUPPORTED_PYTHONS),$(PYTHON_VERSIONS)),$(if $(strip $(PYTHON_VERSIONS)),,none)),)
$(error PYTHON_VERSIONS='$(strip $(PYTHON_VERSIONS))': stagepilot supports CPython $(SUPPORTED_PYTHONS) only; name one or more of them)
endif
PYTHON_VERSION_OF = -c 'import sys; print("%d.%d" % sys.version_info[:2] if sys.implementation.name == "cpython" else "")'
ifndef PYTHON
PYTHON := $(shell root=$${PYENV_ROOT:-$$HOME/.pyenv}; other=$$(pyenv root 2>/dev/null); \
  for v in $(PYTHON_VERSIONS); do \
    for p in python$$v $$root/versions/$$v*/bin/python$$v $$other/versions/$$v*/bin/python$$v python3; do \
      [ "$$("$$p" $(PYTHON_VERSION_OF) 2>/dev/null)" = "$$v" ] && { echo "$$p"; exit 0; }; \
    done; \
  done)
endif
PYTHON_VERSION := $(shell $(PYTHON) $(PYTHON_VERSION_OF) 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
# make deploy STACK=StagePilot-staging: another deployment in the same account and region
STACK ?= StagePilot
# The venv is stamped with its Python: another one found (or PYTHON=...) rebuilds it.
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_HOME := $(CURDIR)/.cdk-home

.PHONY: help demo test lint synth deploy destroy bench soak lock clean completion

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PYTHON_VERSION)" || { echo "stagepilot needs CPython $(PYTHON_VERSIONS) (none found$(if $(PYTHON), at $(PYTHON))): install one, or pass PYTHON=/path/to/python3.X" >&2; exit 1; }
	@case " $(PYTHON_VERSIONS) " in *" $(PYTHON_VERSION) "*) ;; *) echo "stagepilot needs CPython $(PYTHON_VERSIONS); $(PYTHON) is $(PYTHON_VERSION)" >&2; exit 1;; esac
	[ "$$($(PY) $(PYTHON_VERSION_OF) 2>/dev/null)" = "$(PYTHON_VERSION)" ] || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(CDK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(CDK)

demo: $(STAMP) $(CDK)  ## run the automation on the example show, locally (no AWS account)
	$(VENV)/bin/stagepilot simulate --policies examples/policies.json --bans examples/bans.json --events examples/show.jsonl

# The tests cache bytecode (in the git-ignored __pycache__) even where the environment says not to, as many CI
# images do (PYTHONDONTWRITEBYTECODE): otherwise every xdist worker and every subprocess a test starts compiles
# stagepilot again, and each worker rewrites every test module's asserts (its collection: ~7 CPU-s, ~3.5 cached).
# Three workers on two cores: a third of the suite's wall time is waiting, not computing (sandbox servers,
# subprocess stories, the CLI's real pacing waits), which a third worker fills. Measured idle on this 2-core
# machine at 381305e: pytest 181 s with -n 2, 157 s with -n 3 (same 1,875 tests).
test: $(STAMP) $(CDK) lint  ## the whole test suite, offline
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n 3 --dist loadgroup -m "not slow"

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
