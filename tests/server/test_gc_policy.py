"""``ech serve`` collects cyclic garbage less often while serving, and only then."""

from __future__ import annotations

import gc

import pytest

from ech.serve.gc_policy import SERVING_THRESHOLD, serving_gc


def test_serving_raises_the_first_threshold_and_restores_all_three() -> None:
    before = gc.get_threshold()
    with serving_gc():
        during = gc.get_threshold()
    assert during == (max(SERVING_THRESHOLD, before[0]), *before[1:])
    assert during[0] > 700  # CPython's default: a collection every ~15 connections
    assert gc.get_threshold() == before


def test_thresholds_are_restored_when_serving_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), serving_gc():
        raise RuntimeError("serving failed")
    assert gc.get_threshold() == before


def test_a_higher_threshold_set_before_is_kept() -> None:
    before = gc.get_threshold()
    gc.set_threshold(SERVING_THRESHOLD * 2, *before[1:])
    try:
        with serving_gc():
            assert gc.get_threshold()[0] == SERVING_THRESHOLD * 2
    finally:
        gc.set_threshold(*before)
