"""The server's encrypted flight is padded when ECH is accepted (ECH-53).

RFC 9849 §6.1.3 and §10.11: with ECH accepted, which certificate the server
sends follows from the hidden name, so the length of EncryptedExtensions to
Finished must not tell it. :mod:`ech.server.padding` pads that flight to the
longest the configuration can send; tickets are padded too.
"""

from __future__ import annotations

import dataclasses

import ech
from ech.config import ECHConfigList
from ech.events import ECHStatus, HandshakeComplete
from ech.keys import ECHKey
from ech.pki import TestCA
from ech.server.padding import flight_size_bound
from ech.server.tickets import TICKET_BUCKET, TicketState, open_ticket, seal_ticket
from ech.tls.enums import ContentType
from tests.helpers import parse_records
from tests.unit.ech.ech_helpers import PUBLIC_NAME, config_list, ech_key

SHORT = "a.test"
LONG = "a-much-longer-name-for-the-rsa-certificate.test"


def _setup() -> tuple[TestCA, ech.ServerConfig, ECHKey]:
    ca = TestCA.create("padding CA")
    key = ech_key()
    config = ech.ServerConfig(
        certificates=(
            ca.issue(SHORT, PUBLIC_NAME),
            ca.issue(LONG, key_type="rsa2048"),
        ),
        ech_keys=(key,),
    )
    return ca, config, key


def _server_flight(
    ca: TestCA,
    config: ech.ServerConfig,
    configs: ECHConfigList | None,
    name: str,
) -> tuple[list[int], ECHStatus]:
    """Lengths of the protected records of the server's first flight."""
    client = ech.ClientConnection(
        ech.ClientConfig(trust_store=(ca.certificate,)), name, ech_configs=configs
    )
    server = ech.ServerConnection(config)
    client.start()
    server.receive_data(client.data_to_send())
    flight = server.data_to_send()
    events = client.receive_data(flight)
    statuses = [e.ech_status for e in events if isinstance(e, HandshakeComplete)]
    lengths = [
        len(f) for t, f in parse_records(flight) if t == ContentType.APPLICATION_DATA
    ]
    return lengths, statuses[0] if statuses else server.ech_status


def test_flight_length_does_not_tell_the_certificate() -> None:
    ca, config, key = _setup()
    configs = config_list(key)
    short, status = _server_flight(ca, config, configs, SHORT)
    assert status is ECHStatus.ACCEPTED
    long, _ = _server_flight(ca, config, configs, LONG)
    assert short == long
    (record,) = short
    assert record == flight_size_bound(config) + 1 + 16  # content, type, tag


def test_without_padding_the_flight_tells_the_certificate() -> None:
    """The control: the same setup with ech_flight_padding=False."""
    ca, config, key = _setup()
    plain = dataclasses.replace(config, ech_flight_padding=False)
    configs = config_list(key)
    short, _ = _server_flight(ca, plain, configs, SHORT)
    long, _ = _server_flight(ca, plain, configs, LONG)
    assert sum(long) - sum(short) > 300


def test_flight_is_not_padded_without_ech_accepted() -> None:
    """No ECH, or ECH rejected: the flight is for a name sent in the clear
    (or the public name) and hides nothing."""
    ca, config, _ = _setup()
    plain = dataclasses.replace(config, ech_flight_padding=False)
    for configs in (None, config_list(ech_key())):
        padded, status = _server_flight(ca, config, configs, SHORT)
        unpadded, _ = _server_flight(ca, plain, configs, SHORT)
        assert status is not ECHStatus.ACCEPTED
        assert abs(sum(padded) - sum(unpadded)) <= 2  # ECDSA length varies


def test_record_padding_applies_on_top_of_the_flight_padding() -> None:
    ca, config, key = _setup()
    config = dataclasses.replace(config, record_padding=lambda _t, n: 512 - n % 512)
    (record,), _ = _server_flight(ca, config, config_list(key), SHORT)
    assert (record - 17) % 512 == 0
    assert record - 17 >= flight_size_bound(config)


def test_tickets_do_not_tell_the_name_length() -> None:
    """A NewSessionTicket carries the (inner) name inside the sealed state:
    padded to TICKET_BUCKET bytes, names of different lengths look alike."""
    key = bytes(32)

    def ticket(name: str) -> bytes:
        state = TicketState(0x1301, bytes(32), 1, 2, 3, name, "h2")
        sealed = seal_ticket(key, bytes(12), state)
        assert open_ticket(key, sealed) == state
        return sealed

    assert len(ticket("a.test")) == len(ticket("b" * 200 + ".test"))
    assert (len(ticket("a.test")) - 12 - 16) % TICKET_BUCKET == 0
