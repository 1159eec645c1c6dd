"""Receiving with an optional deadline, shared by the HTTP server bindings."""

from __future__ import annotations

import asyncio

from ech.http.errors import RequestHeadTimeout
from ech.http.transport import ByteStream


async def recv_before(
    stream: ByteStream, deadline: float | None, timeout: float
) -> bytes:
    """``stream.recv()``, failing at loop time ``deadline`` if one is set.

    Raises:
        RequestHeadTimeout: The deadline passed (``timeout`` is for the
            message).
    """
    if deadline is None:
        return await stream.recv()
    try:
        async with asyncio.timeout_at(deadline):
            return await stream.recv()
    except TimeoutError:
        raise RequestHeadTimeout(f"no complete request head in {timeout:g} s") from None
