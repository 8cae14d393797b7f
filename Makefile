# The two commands of the README: `make demo` (the main job) and `make test`.
# Both create .venv and install what they need (torch==2.13.0 first: the CPU wheel).
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEMO    ?= demo-out

.PHONY: setup demo demo-quick test test-board test-all bench clean

$(STAMP): setup.py
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip wheel setuptools
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[host,dev,ray]'
	@command -v yosys >/dev/null 2>&1 || scripts/install-system-deps || \
	  echo "note: yosys not installed; the synthesis cross-check tests will skip"
	touch $(STAMP)

setup: $(STAMP)

# the main job: data, the simulated board service, the closed-loop search, deploy, benchmark,
# detect, report (13-16 minutes on 2 cores); `make demo-quick` is the same in ~2 minutes
demo: $(STAMP)
	$(VENV)/bin/codesign demo --out $(DEMO)

demo-quick: $(STAMP)
	$(VENV)/bin/codesign demo --quick --out $(DEMO)

test: $(STAMP)
	$(VPY) -m pytest -q

# The board side alone, as on the PYNQ image: Python 3.10, numpy 1.x, no torch/onnx.
BOARD_PY ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python; do \
              $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null \
              && echo $$p && break; done)
BVENV   := .venv-board
test-board:
	@if [ -z "$(BOARD_PY)" ]; then echo "test-board: no python3.10 here; skipped"; exit 0; fi; \
	test -x $(BVENV)/bin/python || $(BOARD_PY) -m venv $(BVENV); \
	$(BVENV)/bin/python -m pip install -q "numpy<2" "opencv-python-headless<4.11" pytest hypothesis \
	    "flask>=2.2" "waitress>=2.1" && \
	$(BVENV)/bin/python -m pip install -q --no-deps -e . && \
	PCD_BOARD_ONLY=1 $(BVENV)/bin/python -m pytest -q -p no:cacheprovider

test-all: $(STAMP)
	$(VPY) -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(VPY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(BVENV) $(DEMO) .pytest_cache build *.egg-info
