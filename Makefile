# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment it needs in $(VENV) on first use.
PYTHON ?= python3
VENV ?= .venv
# The PyTorch release dl4ds is tested with. pip picks the build for your platform
# (CPU or CUDA); install another build into $(VENV) first, or override, e.g.
# `make test TORCH_REQUIREMENT='torch>=2.2'`.
TORCH_REQUIREMENT ?= torch==2.13.0
DEMO_OUTPUT ?= demo_output

.PHONY: demo test env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "$(TORCH_REQUIREMENT)"
	$(VENV)/bin/python -m pip install --quiet -e ".[dev,zarr,tensorboard,onnx]"
	touch $@

demo: env
	$(VENV)/bin/dl4ds demo --output $(DEMO_OUTPUT)

test: env
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_OUTPUT)
