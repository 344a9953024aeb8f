# One command sets up and runs the main job, one sets up and runs the tests (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

$(STAMP): setup.py pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch 2.13.0 lies on this machine's disk; install it before anything can pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ros,sim,train,nas,ray]'
	# MetaDrive without its opencv-python requirement (cv2 comes from opencv-python-headless); see setup.py.
	$(PY) -m pip install -q --no-deps metadrive-simulator==0.4.3
	touch $@

demo: setup
	$(VENV)/bin/diffusiondrive demo

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m 'not slow' -x -q

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
