# Two commands for a fresh machine (see README.md):  make demo   |   make test
# Both build the pinned environment first (scripts/setup_env.sh; idempotent, cached mmcv wheel).
include requirements/stack.env

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.multisiam_setup_done
PYTEST_ARGS ?=

.PHONY: setup demo test lint pytest clean-venv

$(STAMP): requirements/stack.env requirements/runtime.txt scripts/setup_env.sh setup.py
	VENV=$(VENV) bash scripts/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) tools/demo.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint docker/Dockerfile

pytest: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

test: lint pytest

clean-venv:
	rm -rf $(VENV)
