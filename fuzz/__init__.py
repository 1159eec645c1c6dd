"""Coverage-guided fuzzing of our parsers (atheris), outside the ``ech`` package.

``fuzz.harnesses`` holds one target per parser; ``python -m fuzz.run NAME``
runs one under atheris (libFuzzer); ``python -m fuzz.corpus`` writes the seed
corpora; ``fuzz/regressions/`` keeps every input a fuzzer ever crashed on,
replayed by ``tests/fuzz/test_harnesses.py``.
"""
