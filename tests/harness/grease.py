"""GREASE ECH whose random config_id never lands on the server's key.

A GREASE extension carries a uniformly random config_id (RFC 9849 §6.2.1).
One run in 256 it equals the config_id of the key the server holds; the
server then tries that key, HPKE fails to open, and it reports
``hpke_open_failed`` rather than ``grease_shaped``. That is the right
report, and it made tests asserting ``grease_shaped`` fail one run in 256.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable


def random_avoiding_config_ids(*config_ids: int) -> Callable[[int], bytes]:
    """``os.urandom`` for :class:`ech.client.config.ClientConfig`, except that
    one-byte draws (the GREASE config_id) are uniform over the ids not given."""
    allowed = [i for i in range(256) if i not in config_ids]

    def draw(length: int) -> bytes:
        if length == 1:
            return bytes([secrets.choice(allowed)])
        return os.urandom(length)

    return draw
