"""A tap on what a Python process sends over TCP, for tests that run commands.

With this directory on ``PYTHONPATH`` and ``ECH_WIRETAP=DIR`` set, every
Python process started (the ``ech`` commands of a README, unchanged) appends
what its plain sockets send to ``DIR/PID-COMMAND.bin``: what a network
observer reads. TLS that Python's ``ssl`` does (the DoH client) is not seen
in clear: ``SSLSocket`` sends its ciphertext from C, below these methods.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer as Buffer

_DIRECTORY = os.environ.get("ECH_WIRETAP")


def _record(data: Buffer) -> None:
    """Append ``data`` to this process's file."""
    assert _DIRECTORY is not None
    command = Path(sys.argv[1] if len(sys.argv) > 1 else sys.argv[0]).name or "python"
    path = Path(_DIRECTORY) / f"{os.getpid()}-{command}.bin"
    with path.open("ab") as file:
        file.write(bytes(data))


if _DIRECTORY:
    _send = socket.socket.send
    _sendall = socket.socket.sendall

    def _tapped_send(self: socket.socket, data: Buffer, flags: int = 0, /) -> int:
        sent = _send(self, data, flags)
        _record(memoryview(data)[:sent])
        return sent

    def _tapped_sendall(self: socket.socket, data: Buffer, flags: int = 0, /) -> None:
        _sendall(self, data, flags)
        _record(data)

    socket.socket.send = _tapped_send  # type: ignore[method-assign,assignment]
    socket.socket.sendall = _tapped_sendall  # type: ignore[method-assign,assignment]
