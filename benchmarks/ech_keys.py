"""Server cost of a handshake as the number of ECH keys grows (1, 10, 100).

In memory, sans-IO: our ``ClientConnection`` against our ``ServerConnection``;
only the server's calls are timed (``time.process_time_ns``), constructing
the connection included. Every key is X25519 for ``public.example``, with
distinct config_ids; the server's config (and its config_id index, built
once per config) is made before timing. Cases:

* ``accepted``: the client holds the config of the server's *last* key
  (trial decryption's worst case; without it the position does not matter);
* ``unknown id``: a config for a key the server lacks, with a config_id none
  of its keys has: the server's view of GREASE, or of a client with a
  retired config. (Real GREASE picks a random config_id, which matches a
  held key with probability keys/256 and then costs one failed decryption.)

with ``ServerConfig.ech_trial_decryption`` off (candidates found by
config_id: O(1) in the number of keys) and on (every key is tried).

Run: ``.venv/bin/python benchmarks/ech_keys.py [--count N]``.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time

from ech.client.config import ClientConfig
from ech.client.connection import ClientConnection
from ech.config import ECHConfigList
from ech.events import ECHStatus
from ech.keys import ECHKey, generate_ech_key
from ech.pki import TestCA
from ech.server.config import ServerConfig
from ech.server.connection import ServerConnection

PUBLIC_NAME = "public.example"
HIDDEN_NAME = "secret.example"
KEY_COUNTS = (1, 10, 100)


def server_handshake_ns(
    server_config: ServerConfig,
    client_config: ClientConfig,
    configs: ECHConfigList,
    expected: ECHStatus,
) -> int:
    """One handshake; the server's CPU time in ns."""
    client = ClientConnection(client_config, HIDDEN_NAME, ech_configs=configs)
    client.start()
    hello = client.data_to_send()
    start = time.process_time_ns()
    server = ServerConnection(server_config)
    server.receive_data(hello)
    flight = server.data_to_send()
    spent = time.process_time_ns() - start
    client.receive_data(flight)
    answer = client.data_to_send()  # Finished, or the ech_required alert
    start = time.process_time_ns()
    server.receive_data(answer)
    server.data_to_send()
    spent += time.process_time_ns() - start
    if server.ech_status is not expected:
        raise RuntimeError(f"ECH {server.ech_status}, expected {expected}")
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=150, help="handshakes per cell")
    args = parser.parse_args()

    ca = TestCA.create("keys benchmark CA")
    leaf = ca.issue(PUBLIC_NAME, HIDDEN_NAME)
    client_config = ClientConfig(trust_store=(ca.certificate,))
    keys: list[ECHKey] = []
    for _ in range(max(KEY_COUNTS)):
        keys.append(
            generate_ech_key(PUBLIC_NAME, avoid_ids={k.config.config_id for k in keys})
        )
    taken = {k.config.config_id for k in keys}
    unknown = generate_ech_key(PUBLIC_NAME, avoid_ids=taken)
    unknown_configs = ECHConfigList((unknown.config,))

    print(
        f"{platform.python_implementation()} {platform.python_version()}; server "
        f"CPU time per handshake, median of {args.count} (ms); X25519 keys"
    )
    header = f"{'keys':>5} {'trial decryption':>17} {'accepted':>9} {'unknown id':>11}"
    print(header)
    print("-" * len(header))
    for trial in (False, True):
        for count in KEY_COUNTS:
            held = tuple(keys[:count])
            config = ServerConfig(
                certificates=(leaf,),
                ech_keys=held,
                ech_trial_decryption=trial,
                session_tickets=False,
            )
            config.ech_key_index  # noqa: B018 - built once, before timing
            accepted_configs = ECHConfigList((held[-1].config,))
            cells = []
            for configs, expected in (
                (accepted_configs, ECHStatus.ACCEPTED),
                (unknown_configs, ECHStatus.REJECTED),
            ):
                for _ in range(5):  # warm-up
                    server_handshake_ns(config, client_config, configs, expected)
                gc.collect()
                samples = [
                    server_handshake_ns(config, client_config, configs, expected)
                    for _ in range(args.count)
                ]
                cells.append(statistics.median(samples) / 1e6)
            print(
                f"{count:>5} {'on' if trial else 'off':>17} "
                f"{cells[0]:>9.2f} {cells[1]:>11.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
