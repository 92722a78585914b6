# Entry points for a fresh machine: `make demo`, `make test` and `make check`.
# Each creates the virtual environment it needs in $(VENV) on first use.
PYTHON ?= python3
VENV ?= .venv
# The PyTorch release dl4ds is tested with. pip picks the build for your platform
# (CPU or CUDA); install another build into $(VENV) first, or override, e.g.
# `make test TORCH_REQUIREMENT='torch>=2.2'`.
TORCH_REQUIREMENT ?= torch==2.13.0
DEMO_OUTPUT ?= demo_output
BIN = $(VENV)/bin

.PHONY: demo test test-fast check env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_REQUIREMENT)"
	$(BIN)/python -m pip install --quiet -e ".[dev,zarr,tensorboard,onnx,crosscheck]"
	touch $@

demo: env
	$(BIN)/dl4ds demo --output $(DEMO_OUTPUT)

# The whole test suite (what CI runs).
test: env
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (training runs, subprocesses, the demo): for a quick loop while editing.
test-fast: env
	$(BIN)/python -m pytest -q -m "not slow"

# Lint, formatting, types and the import-layer contract (configured in pyproject.toml).
check: env
	$(BIN)/ruff check src tests benchmarks examples tools
	$(BIN)/ruff format --check src tests benchmarks examples tools
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(DEMO_OUTPUT)
