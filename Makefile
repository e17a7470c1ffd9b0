# Two commands for a newcomer:  make run   and   make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch 2.13.0 is pinned so that pip takes the CPU build that lies on the machine's disk
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: run test install lint bench clean package

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Opens the desktop app on a writable copy of the sample photos (labels are saved beside the images)
run: $(STAMP)
	$(VENV)/bin/efsam-studio samples --copy workspace/samples
	@if [ "$$(uname)" = Linux ] && [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ] && [ -z "$$QT_QPA_PLATFORM" ]; then \
	  echo "No display found: run this from a desktop session, or on a headless machine: xvfb-run make run"; exit 1; fi
	$(VENV)/bin/efsam-studio workspace/samples

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check efficientsam_studio trainer tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info

# The desktop bundle dist/efsam-studio/ (PyInstaller, ONNX Runtime, no torch), then its smoke check
package: $(STAMP)
	bash packaging/build.sh $(PY)
	$(PY) packaging/smoke_check.py --bundle dist/efsam-studio --source-python $(PY)
