# tilec developer commands. `make demo` and `make test` are all a newcomer needs; `make venv` is their
# shared first step (idempotent: it does nothing when .venv is up to date with pyproject.toml).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tilec-installed
TORCH := torch==2.13.0

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e . pytest
	@touch $@

test: venv
	$(PY) -m pytest tests -q

demo: venv
	$(VENV)/bin/tilec run examples/*.py --target auto --check

# `make bench BENCH_ARGS=--quick` passes options through to benchmarks/cpu.py.
bench: venv
	@if [ -f benchmarks/cpu.py ]; then $(PY) benchmarks/cpu.py $(BENCH_ARGS); else echo "no benchmarks/cpu.py"; fi

clean:
	rm -rf build dist *.egg-info .pytest_cache
