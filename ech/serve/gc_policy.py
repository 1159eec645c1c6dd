"""How often the cyclic garbage collector runs while ``ech serve`` serves.

Under load, CPython's default first threshold (700 container objects
allocated and not yet freed) starts a collection every 15 or so
connections; each one traverses the objects of every connection open at
that moment, none of which it can free, and promotes them to the next
generation, which is traversed again later. Reference counting frees
nearly everything a connection allocates as soon as it ends; what only
the collector frees is small (asyncio's selector transports, on CPython
3.11, keep a reference cycle through their read callback: some 15 objects
per closed connection). Measured with ``gc.callbacks`` under the Go
generator of ``benchmarks/workers_load.py`` (32 clients): collections
took about 2% of the server's CPU (some 220 collections, 100 ms in 5 s),
and under 0.2% with :data:`SERVING_THRESHOLD` (2 collections, 7 ms).

The cost of a rarer collection is memory: cyclic garbage waits for up to
:data:`SERVING_THRESHOLD` more allocations, a few MiB at most, whatever
the number of connections; live connections are not affected.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final

__all__ = ["SERVING_THRESHOLD", "serving_gc"]

#: The first-generation threshold while serving (CPython's default: 700).
SERVING_THRESHOLD: Final = 10_000


@contextlib.contextmanager
def serving_gc() -> Iterator[None]:
    """Collect less often (see the module docstring); the old thresholds after."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(SERVING_THRESHOLD, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
