# tilec developer commands. `make demo` and `make test` are all a newcomer needs; `make venv` is their
# shared first step (idempotent: it does nothing when .venv is up to date with pyproject.toml).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tilec-installed
TORCH := torch==2.13.0

.PHONY: venv test demo bench fuzz clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

# The suite runs on every core (pytest-xdist; a test file stays on one worker so that its module
# fixtures build once). `make test JOBS=0` runs it in one process.
test: venv
	$(PY) -m pytest tests -q -n $(or $(JOBS),auto) --dist loadscope

demo: venv
	$(VENV)/bin/tilec run examples/*.py --target auto --check
	$(VENV)/bin/tilec model init --config tiny --seed 0 -o build/tiny.safetensors
	$(VENV)/bin/tilec model build --config tiny --target cpu -o build/dsv32-tiny
	$(VENV)/bin/tilec model generate --model build/dsv32-tiny --weights build/tiny.safetensors \
		--prompt "DeepSeek-V3.2 on tilec:" --max-new-tokens 32 --temperature 0 --check

# `make bench BENCH_ARGS=--quick` passes options through to benchmarks/cpu.py.
bench: venv
	@if [ -f benchmarks/cpu.py ]; then $(PY) benchmarks/cpu.py $(BENCH_ARGS); else echo "no benchmarks/cpu.py"; fi

# `make fuzz N=2000 SEED=0 JOBS=2`: random tile programs on the pass pipeline and every target here (cuda-emu
# executes the CUDA code on the CPU; cuda
# compiled only without a GPU), as generated and after the passes, checked against the interpreter;
# FUZZ_ARGS passes more options (`--save` into the current directory, `--save-dir tests/fuzz/regressions`,
# `--time-limit S`, `--progress K`, `--targets cpu`).
fuzz: venv
	$(PY) -m tilec.fuzz --n $(or $(N),2000) --seed $(or $(SEED),0) --jobs $(or $(JOBS),2) $(FUZZ_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache
