# Two commands for a newcomer: `make run` (the question's experiment, quick scale, into
# results/) and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= quick

.PHONY: run test bench clean browser arm clang

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# after installing, build latchlab's native CPU kernels ($CXX, else g++; about 30 s on two
# cores; skipped with a message when there is no compiler) so that the first sweep does not
# wait for them
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m latchlab.engine.native
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m latchlab.engine.native
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/latchlab reproduce seed --scale $(SCALE) --out results

# Debian's ARM cross compiler and user-mode emulator, for the tests that build the native
# kernels for aarch64 (NEON) and train through them under emulation (tests/engine/test_arm.py)
arm:
	@command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq g++-aarch64-linux-gnu qemu-user >/dev/null; }

# Debian's clang, for the tests that build the native kernels with it too (the compiler of
# macOS: tests/engine/test_native.py on this machine, tests/engine/test_arm.py for aarch64)
clang:
	@command -v clang++ >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang >/dev/null; }

# Debian's Chromium and ChromeDriver, for the test that renders `latchlab explain`'s report
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# lint (ruff), types (pyright, basic) and the tests, in two runs (one process for the whole
# suite accumulated enough compiled XLA executables to crash the compiler), each on a worker
# a core (pytest-xdist; at most 4, ~2.5 GB each). A file's tests run in one worker: they
# share its fixtures and compiled shapes (test by test, on two cores, the first run took
# 1.3 times the CPU time and 9.6 min, not 7.3). XDIST= runs them in one process.
XDIST ?= -n auto --maxprocesses 4 --dist loadfile
test: $(VENV)/.installed-test browser arm clang
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pyright -p .
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS) tests --ignore=tests/engine --ignore=tests/experiments
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS) tests/engine tests/experiments

bench: $(VENV)/.installed-test
	$(BIN)/python bench/seed_sweep.py

clean:
	rm -rf $(VENV) results
