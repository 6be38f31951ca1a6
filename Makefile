# The README's two commands. Both install what a fresh Debian/Ubuntu machine lacks first.
#   make demo   build a throwaway Debian VM, provision it with dindkit, smoke-test every mode
#   make test   lint, type-check, unit tests, then the lab tests on real qemu VMs
VENV ?= .venv
# The unit suite runs a second time against a wheel built from this checkout, installed here.
WHEEL_VENV ?= .venv-wheel
PYTHON ?= python3
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test setup host-packages lint unit lab lab-extra lab-vagrant clean

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

# Twice: against the editable install, then against a wheel of the checkout installed in
# $(WHEEL_VENV) (what users get from pip). --import-mode=append keeps the checkout's dindkit/
# behind site-packages; tests/unit/test_package.py checks which dindkit each run imported.
unit: $(VENV)/.installed $(WHEEL_VENV)/.installed
	$(VENV)/bin/pytest -m "not lab" $(PYTEST_ARGS)
	rm -rf $(WHEEL_VENV)/dist
	$(WHEEL_VENV)/bin/pip wheel --quiet --no-deps --wheel-dir $(WHEEL_VENV)/dist .
	$(WHEEL_VENV)/bin/pip install --quiet --no-deps --force-reinstall $(WHEEL_VENV)/dist/dindkit-*.whl
	DINDKIT_TEST_INSTALLED=wheel $(WHEEL_VENV)/bin/pytest -m "not lab" --import-mode=append \
		-p no:cacheprovider $(PYTEST_ARGS)

# Its dependencies, installed once; the wheel itself is rebuilt and reinstalled by every `unit`.
$(WHEEL_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install --quiet --upgrade pip
	$(WHEEL_VENV)/bin/pip install --quiet '.[dev]'
	touch $@

lab:
	$(VENV)/bin/pytest -m "lab and not extra" --durations=0 $(PYTEST_ARGS)

# opt-in lab modules (the job socket's proof, the registry) that do not fit make lab's time yet
lab-extra: setup
	$(VENV)/bin/pytest -m extra --durations=0 $(PYTEST_ARGS)

# only the Vagrant test (part of lab): vagrant up of a box built from the lab image (docs/vagrant.md)
lab-vagrant: setup
	$(VENV)/bin/pytest -m vagrant $(PYTEST_ARGS)

clean:
	-$(VENV)/bin/dindkit lab down --all
	rm -rf $(VENV) $(WHEEL_VENV) reports
