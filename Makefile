# The two commands of the README: `make demo` (the main job) and `make test`.
# Both create .venv and install what they need (torch==2.13.0 first: the CPU wheel).
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEMO    ?= demo-out

.PHONY: setup demo test test-all bench clean

$(STAMP): setup.py
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip wheel setuptools
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[host,dev]'
	@command -v yosys >/dev/null 2>&1 || scripts/install-system-deps || \
	  echo "note: yosys not installed; the synthesis cross-check tests will skip"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VPY) scripts/demo.py --out $(DEMO)

test: $(STAMP)
	$(VPY) -m pytest -q

test-all: $(STAMP)
	$(VPY) -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(VPY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build *.egg-info
