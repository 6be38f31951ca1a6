# The README's two commands. Both install what a fresh Debian/Ubuntu machine lacks first.
#   make demo   build a throwaway Debian VM, provision it with dindkit, smoke-test every mode
#   make test   lint, type-check, unit tests, then the lab tests on real qemu VMs
VENV ?= .venv
PYTHON ?= python3
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test setup host-packages lint unit lab lab-vagrant clean

demo: setup
	$(VENV)/bin/dindkit demo $(DEMO_ARGS)

test: setup lint unit lab

setup: host-packages $(VENV)/.installed

host-packages:
	./scripts/install-host-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit:
	$(VENV)/bin/pytest -m "not lab" $(PYTEST_ARGS)

lab:
	$(VENV)/bin/pytest -m lab --durations=0 $(PYTEST_ARGS)

# only the Vagrant test (part of lab): vagrant up of a box built from the lab image (docs/vagrant.md)
lab-vagrant: setup
	$(VENV)/bin/pytest -m vagrant $(PYTEST_ARGS)

clean:
	-$(VENV)/bin/dindkit lab down --all
	rm -rf $(VENV) reports
