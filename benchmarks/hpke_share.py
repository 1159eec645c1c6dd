"""How much of an ECH handshake is spent inside the HPKE engine, measured in situ.

Issue #14 keeps pyhpke as the engine for the classical HPKE suites and asks
that, where its cost is what stands between us and a target, it be measured
and said. This module measures it inside real handshakes rather than in a
loop of its own: while :func:`timed_hpke` is active, the four entry points
our client and server call (``ech.hpke.setup_base_sender`` and
``SenderContext.seal``; ``setup_base_recipient`` and
``RecipientContext.open``) are wrapped to add their CPU time to a counter.
The callers look them up at call time (``hpke.setup_base_*`` through the
module), so the wrappers see every call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from ech import hpke


@dataclass
class HpkeTime:
    """CPU nanoseconds spent in HPKE by the client (seal side) and the server."""

    client_ns: int = 0
    server_ns: int = 0


P = ParamSpec("P")
R = TypeVar("R")


def _timed(function: Callable[P, R], add: Callable[[int], None]) -> Callable[P, R]:
    clock = time.process_time_ns

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            add(clock() - start)

    return wrapper


@contextlib.contextmanager
def timed_hpke() -> Iterator[HpkeTime]:
    """Count the CPU time of every HPKE setup, seal and open until exit."""
    spent = HpkeTime()

    def client(ns: int) -> None:
        spent.client_ns += ns

    def server(ns: int) -> None:
        spent.server_ns += ns

    targets: list[tuple[object, str, Callable[[int], None]]] = [
        (hpke, "setup_base_sender", client),
        (hpke.SenderContext, "seal", client),
        (hpke, "setup_base_recipient", server),
        (hpke.RecipientContext, "open", server),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    try:
        for (owner, name, add), (_, _, original) in zip(
            targets, originals, strict=True
        ):
            setattr(owner, name, _timed(original, add))
        yield spent
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
