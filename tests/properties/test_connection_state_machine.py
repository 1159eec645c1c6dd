"""A RuleBasedStateMachine over an in-memory client/server pair (h2 item 5, h11 item 9).

Each run sets up one connection: ECH accepted, rejected, GREASE or not
offered; with or without a HelloRetryRequest; with or without a resumption
ticket. Then hypothesis interleaves, in any order: delivery of any prefix of
the bytes in flight either way (the rest later), application data of any
size (empty, small, several records) from either side, KeyUpdates
(requesting the peer's or not) from either side, and ``close()`` from
either side, during the handshake or after it.

Only the public connection API is used. A model of each side (handshake
complete, failed, close_notify sent, close_notify received) predicts what
each call must do, down to the exception type, and the invariants check:

* what a side received (data, KeyUpdates, close_notify, in order) is a
  prefix of what its peer sent, and all of it once everything is delivered;
* one HandshakeComplete per side, and both sides agree on the ECH outcome
  (RFC 9849 §10.10.4 for GREASE), HelloRetryRequest, resumption, cipher suite
  and outer name; a rejected client gets ECHRejected and aborts with
  ech_required (§6.1.6);
* a KeyUpdate that asked for the peer's is answered (RFC 8446 §4.6.3);
* a side sends nothing after its close_notify (RFC 8446 §6.1);
* after close_notify both ways, both sides are closed: ``send`` and
  ``update_keys`` raise, the end of the stream reports nothing new;
* nothing but the documented exceptions escapes, and between honest peers
  no alert is ever raised, least of all internal_error.

What it found is pinned by the tests at the end, all fixed since:
``close()`` during the handshake did not end it (the next flight followed
the close_notify), the side that closed second stayed "connected", and a
rejected client was revived as closed by a close_notify that came with the
server's flight.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from dataclasses import dataclass, field
from typing import Literal

import hypothesis
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import ech
from ech.config import ECHConfigList
from ech.events import ECHRejected, ECHStatus
from ech.keys import ECHKey
from tests.helpers import Connection, Pair
from tests.unit.ech.ech_helpers import (
    INNER_NAME,
    PUBLIC_NAME,
    client_config,
    config_list,
    ech_key,
    hrr_client_config,
    hrr_server_config,
    server_config,
)

Side = Literal["client", "server"]
SIDES: tuple[Side, ...] = ("client", "server")
Mode = Literal["none", "accept", "reject", "grease"]
MODES: tuple[Mode, ...] = ("none", "accept", "reject", "grease")

#: The ECH status each side reports, by mode: (client, server).
EXPECTED_STATUS: dict[Mode, tuple[ECHStatus, ECHStatus]] = {
    "none": (ECHStatus.NOT_OFFERED, ECHStatus.NOT_OFFERED),
    "accept": (ECHStatus.ACCEPTED, ECHStatus.ACCEPTED),
    # RFC 9849 §10.10.4: a server cannot tell GREASE from a key it lacks.
    "grease": (ECHStatus.GREASE, ECHStatus.REJECTED),
    "reject": (ECHStatus.REJECTED, ECHStatus.REJECTED),
}

Item = tuple[str, bytes | bool | None]
"""What one side sends for the other's application, in order: ``("data",
bytes)`` (consecutive data merged), ``("key_update", requested)`` or
``("close", None)``."""

PAYLOADS = st.one_of(
    st.binary(max_size=64),
    st.integers(16_000, 40_000),  # over 16 KiB: several records
)

SETTLE_ROUNDS = 50


def payload(spec: bytes | int, seed: int) -> bytes:
    """``spec`` itself, or that many seeded pseudo-random bytes."""
    if isinstance(spec, bytes):
        return spec
    return random.Random(seed).randbytes(spec)


def add_item(items: list[Item], item: Item) -> None:
    """Append ``item``, merging data into a preceding data item."""
    kind, value = item
    if kind == "data":
        assert isinstance(value, bytes)
        if not value:
            return
        if items and items[-1][0] == "data":
            previous = items[-1][1]
            assert isinstance(previous, bytes)
            items[-1] = ("data", previous + value)
            return
    items.append(item)


def is_prefix(received: list[Item], sent: list[Item]) -> bool:
    """Whether ``sent`` starts with ``received`` (its last data item may be cut)."""
    if len(received) > len(sent):
        return False
    for index, (got, want) in enumerate(zip(received, sent, strict=False)):
        if got == want:
            continue
        if index != len(received) - 1 or not got[0] == want[0] == "data":
            return False
        got_data, want_data = got[1], want[1]
        assert isinstance(got_data, bytes)
        assert isinstance(want_data, bytes)
        if not want_data.startswith(got_data):
            return False
    return True


# configurations and tickets, made once ----------------------------------------------


@functools.cache
def served_key() -> ECHKey:
    """The server's one ECH key."""
    return ech_key(config_id=7)


@functools.cache
def stale_configs() -> ECHConfigList:
    """A config for the same public_name whose key the server does not hold."""
    return config_list(ech_key(config_id=9))


def ech_configs(mode: Mode) -> ECHConfigList | None:
    """What the client was given: the served config, a stale one, or none."""
    if mode == "accept":
        return config_list(served_key())
    if mode == "reject":
        return stale_configs()
    return None


@functools.cache
def configs(mode: Mode, hrr: bool) -> tuple[ech.ClientConfig, ech.ServerConfig]:
    """The pair's configs; with ``hrr`` the server wants P-256, not X25519."""
    cc = hrr_client_config() if hrr else client_config()
    if mode == "grease":
        cc = dataclasses.replace(cc, ech_grease=True)
    key = served_key()
    sc = hrr_server_config(key) if hrr else server_config(key)
    # One ticket key for every server, so a ticket from setup() resumes.
    return cc, dataclasses.replace(sc, ticket_key=b"\x07" * 32)


@functools.cache
def ticket(mode: Mode, hrr: bool) -> ech.SessionTicket:
    """A ticket from an earlier, complete connection with the same configs."""
    pair = handshake(mode, hrr)
    assert pair.client.session_tickets, "setup: the server sent no ticket"
    return pair.client.session_tickets[0]


def handshake(mode: Mode, hrr: bool) -> Pair:
    """A pair whose handshake ran to its end (tickets delivered)."""
    cc, sc = configs(mode, hrr)
    client = ech.ClientConnection(cc, INNER_NAME, ech_configs=ech_configs(mode))
    client.start()
    pair = Pair(client, ech.ServerConnection(sc), [], [], [])
    pair.pump()
    return pair


# the model -------------------------------------------------------------------------


@dataclass
class Peer:
    """One side: its connection and what the model knows about it."""

    name: Side
    conn: ech.ClientConnection | ech.ServerConnection
    wire: bytearray = field(default_factory=bytearray)
    """Bytes it queued that the peer has not received yet."""
    sent: list[Item] = field(default_factory=list)
    received: list[Item] = field(default_factory=list)
    handshake: ech.HandshakeComplete | None = None
    rejected: ECHRejected | None = None
    fatal_alert: ech.AlertDescription | None = None
    """A fatal alert the peer sent us."""
    tickets: int = 0
    failed: bool = False
    sent_close: bool = False
    close_on_wire: bool = False
    """Its close_notify has been taken from ``data_to_send``."""
    after_close: bytearray = field(default_factory=bytearray)
    """Bytes it queued after its close_notify (RFC 8446 §6.1: there must be none)."""
    received_close: bool = False

    @property
    def complete(self) -> bool:
        """Whether it reported HandshakeComplete."""
        return self.handshake is not None


class ConnectionMachine(RuleBasedStateMachine):
    """Drive one client/server pair through any interleaving of the public API."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: dict[Side, Peer] = {}
        self.mode: Mode = "none"
        self.hrr = False
        self.resume = False
        self.closed_during_handshake = False
        self.seed = 0
        self.steps = 0
        self.close_after = 0
        self.partial = False

    def other(self, side: Side) -> Peer:
        """The peer of ``side``."""
        return self.peers["server" if side == "client" else "client"]

    # setup --------------------------------------------------------------------------

    @initialize(
        mode=st.sampled_from(MODES),
        hrr=st.booleans(),
        resume=st.booleans(),
        handshake_first=st.booleans(),
        close_after=st.integers(0, 40),
    )
    def setup(
        self,
        mode: Mode,
        hrr: bool,
        resume: bool,
        handshake_first: bool,
        close_after: int,
    ) -> None:
        """One pair; with ``handshake_first`` the handshake runs to its end at once.

        Without it, the handshake's flights are at the mercy of the rules too.
        ``close()`` is allowed from step ``close_after`` on, so that runs with
        long exchanges are as likely as runs that close at once.
        """
        self.close_after = close_after
        self.mode, self.hrr = mode, hrr
        # A rejected client cannot resume: the server never sees its inner hello.
        self.resume = resume and mode != "reject"
        cc, sc = configs(mode, hrr)
        session = ticket(mode, hrr) if self.resume else None
        client = ech.ClientConnection(
            cc, INNER_NAME, session=session, ech_configs=ech_configs(mode)
        )
        self.peers = {
            "client": Peer("client", client),
            "server": Peer("server", ech.ServerConnection(sc)),
        }
        client.start()
        self.collect()
        if handshake_first:
            self.settle()

    # moving bytes -------------------------------------------------------------------

    def collect(self) -> None:
        """Take what each side queued into its wire (in order)."""
        for peer in self.peers.values():
            data = peer.conn.data_to_send()
            if data and peer.close_on_wire:
                peer.after_close += data
            peer.wire += data
            peer.close_on_wire = peer.sent_close

    def deliver(self, sender: Peer, size: int) -> None:
        """Feed the first ``size`` bytes of ``sender``'s wire to its peer."""
        receiver = self.other(sender.name)
        chunk = bytes(sender.wire[:size])
        del sender.wire[:size]
        if receiver.failed:
            # Documented: a failed connection refuses everything. A real
            # transport would be gone by now; drop what is still in flight.
            with pytest.raises(ech.ConnectionClosedError):
                receiver.conn.receive_data(chunk)
            sender.wire.clear()
            return
        try:
            events = receiver.conn.receive_data(chunk)
        except ech.Alert as alert:  # a bug: honest peers never trip an alert
            raise AssertionError(
                f"{receiver.name} raised {type(alert).__name__} ({alert}) "
                f"on bytes from an honest {sender.name}"
            ) from alert
        self.absorb(receiver, events)
        self.collect()

    def absorb(self, peer: Peer, events: list[ech.Event]) -> None:
        """Update the model of ``peer`` with the events it reported."""
        for event in events:
            if isinstance(event, ech.HandshakeComplete):
                assert peer.handshake is None, f"second HandshakeComplete: {event}"
                assert not peer.failed, f"HandshakeComplete after failing: {event}"
                peer.handshake = event
            elif isinstance(event, ECHRejected):
                assert peer.name == "client", event
                assert self.mode == "reject", event
                assert peer.rejected is None, event
                assert peer.handshake is None, event
                peer.rejected = event
                peer.failed = True
            elif isinstance(event, ech.DataReceived):
                assert peer.complete, f"data before the handshake: {event}"
                add_item(peer.received, ("data", event.data))
            elif isinstance(event, ech.KeyUpdateReceived):
                assert peer.complete, f"KeyUpdate before the handshake: {event}"
                add_item(peer.received, ("key_update", event.update_requested))
                if event.update_requested and not peer.sent_close:
                    # RFC 8446 §4.6.3: answered with update_not_requested.
                    add_item(peer.sent, ("key_update", False))
            elif isinstance(event, ech.SessionTicketReceived):
                assert peer.name == "client", event
                assert peer.complete, f"ticket before the handshake: {event}"
                peer.tickets += 1
            elif isinstance(event, ech.ConnectionClosed):
                assert not peer.received_close, f"second ConnectionClosed: {event}"
                peer.received_close = True
                if event.alert == ech.AlertDescription.CLOSE_NOTIFY:
                    add_item(peer.received, ("close", None))
                    if not peer.complete:
                        peer.failed = True  # closed before the handshake ended
                else:
                    peer.fatal_alert = event.alert
                    peer.failed = True
            else:
                raise AssertionError(f"unexpected event {event!r}")

    # rules --------------------------------------------------------------------------

    @precondition(lambda self: any(p.wire for p in self.peers.values()))
    @rule(
        side=st.sampled_from(SIDES),
        cut=st.one_of(st.none(), st.integers(1, 1 << 16)),
    )
    def deliver_some(self, side: Side, cut: int | None) -> None:
        """Deliver a prefix (or all) of what ``side`` has in flight."""
        self.steps += 1
        sender = self.peers[side]
        if not sender.wire:
            return
        size = len(sender.wire) if cut is None else 1 + (cut - 1) % len(sender.wire)
        self.partial |= size < len(sender.wire)
        self.deliver(sender, size)

    @rule()
    def settle(self) -> None:
        """Deliver everything both ways until neither side has anything in flight."""
        self.steps += 1
        for _ in range(SETTLE_ROUNDS):
            moving = [p for p in self.peers.values() if p.wire]
            if not moving:
                return
            for sender in moving:
                if sender.wire:
                    self.deliver(sender, len(sender.wire))
        raise AssertionError("the connections never went quiet")

    @rule(side=st.sampled_from(SIDES), spec=PAYLOADS)
    def send(self, side: Side, spec: bytes | int) -> None:
        """Application data from ``side``: refused unless open and connected."""
        self.steps += 1
        peer = self.peers[side]
        self.seed += 1
        data = payload(spec, self.seed)
        if peer.failed:
            with pytest.raises(ech.ConnectionClosedError):
                peer.conn.send(data)
        elif peer.sent_close or not peer.complete:
            with pytest.raises(RuntimeError):
                peer.conn.send(data)
        else:
            peer.conn.send(data)
            add_item(peer.sent, ("data", data))
        self.collect()

    @rule(side=st.sampled_from(SIDES), request_peer=st.booleans())
    def update_keys(self, side: Side, request_peer: bool) -> None:
        """KeyUpdate from ``side``: only on an open, connected connection."""
        self.steps += 1
        peer = self.peers[side]
        if peer.failed or peer.sent_close or not peer.complete:
            with pytest.raises(RuntimeError):
                peer.conn.update_keys(request_peer=request_peer)
        else:
            peer.conn.update_keys(request_peer=request_peer)
            add_item(peer.sent, ("key_update", request_peer))
        self.collect()

    @precondition(lambda self: self.steps >= self.close_after)
    @rule(side=st.sampled_from(SIDES))
    def close(self, side: Side) -> None:
        """close_notify from ``side`` (a no-op when sent already or failed)."""
        self.steps += 1
        peer = self.peers[side]
        peer.conn.close()
        if not peer.failed and not peer.sent_close:
            peer.sent_close = True
            add_item(peer.sent, ("close", None))
            if not (peer.complete and self.other(side).complete):
                self.closed_during_handshake = True
        self.collect()

    # invariants ---------------------------------------------------------------------

    @invariant()
    def received_is_a_prefix_of_sent(self) -> None:
        for peer in self.peers.values():
            sender = self.other(peer.name)
            assert is_prefix(peer.received, sender.sent), (
                f"{peer.name} received {peer.received!r}, "
                f"{sender.name} sent {sender.sent!r}"
            )

    @invariant()
    def nothing_follows_close_notify(self) -> None:
        for peer in self.peers.values():
            assert not peer.after_close, (
                f"{peer.name} queued {len(peer.after_close)} bytes after its "
                "close_notify"
            )

    @invariant()
    def both_sides_agree(self) -> None:
        if not self.peers:
            return
        client, server = self.peers["client"], self.peers["server"]
        want_client, want_server = EXPECTED_STATUS[self.mode]
        for peer, want in ((client, want_client), (server, want_server)):
            if peer.complete:
                assert peer.conn.ech_status is want, (self.mode, peer.conn.ech_status)
        c, s = client.handshake, server.handshake
        if s is not None:
            assert s.ech_status is want_server, (self.mode, s)
            assert s.hello_retry is self.hrr, s
            if self.mode != "reject":
                assert s.resumed is self.resume, s
            name = PUBLIC_NAME if self.mode == "reject" else INNER_NAME
            assert s.server_name == name, s
        if c is not None:
            assert self.mode != "reject", c
            assert c.ech_status is want_client, (self.mode, c)
            assert c.server_name == INNER_NAME, c
            assert c.hello_retry is self.hrr, c
            assert c.resumed is self.resume, c
        if c is not None and s is not None:
            assert (c.cipher_suite, c.group, c.outer_server_name) == (
                s.cipher_suite,
                s.group,
                s.outer_server_name,
            ), (c, s)
        if client.rejected is not None:
            assert client.rejected.public_name == PUBLIC_NAME
            # RFC 9849 §6.1.6: the authenticated retry_configs are the server's.
            retry = client.rejected.retry_configs
            assert retry is not None
            assert retry.encode() == config_list(served_key()).encode()
        if server.fatal_alert is not None:
            # The only fatal alert between honest peers: a rejected client's.
            assert self.mode == "reject", server.fatal_alert
            assert server.fatal_alert == ech.AlertDescription.ECH_REQUIRED
        assert client.fatal_alert is None, client.fatal_alert

    @invariant()
    def closed_both_ways_means_closed(self) -> None:
        if not self.peers:
            return
        client, server = self.peers["client"], self.peers["server"]
        if not all(p.sent_close and p.received_close for p in (client, server)):
            return
        for peer in (client, server):
            if peer.failed:
                continue
            with pytest.raises(RuntimeError):
                peer.conn.send(b"x")
            with pytest.raises(RuntimeError):
                peer.conn.update_keys()
            assert not peer.conn.handshake_complete  # no data may flow
            assert peer.conn.receive_data(b"") == []  # nothing after close_notify

    def teardown(self) -> None:
        if not self.peers:
            return
        client, server = self.peers["client"], self.peers["server"]
        # What was covered (--hypothesis-show-statistics), before settling.
        hypothesis.event(f"steps: {min(self.steps, 40) // 10 * 10}+")
        hypothesis.event(f"mode {self.mode}, hrr {self.hrr}, resume {self.resume}")
        if client.complete and server.complete:
            hypothesis.event("handshake completed")
        for peer in (client, server):
            kinds = {kind for kind, _ in peer.sent}
            for kind in sorted(kinds - {"close"}):
                hypothesis.event(f"{peer.name} sent {kind}")
            if any(isinstance(v, bytes) and len(v) > 16384 for _, v in peer.sent):
                hypothesis.event(f"{peer.name} sent over 16 KiB in a row")
        if self.partial:
            hypothesis.event("partial deliveries")
        if all(p.sent_close and p.received_close for p in (client, server)):
            hypothesis.event("closed both ways")
        self.settle()
        for peer in (client, server):
            sender = self.other(peer.name)
            if not peer.failed:
                assert peer.received == sender.sent, (
                    f"{peer.name} received {peer.received!r} of {sender.sent!r}"
                )
        if self.closed_during_handshake:
            return  # either side may have given up before the end
        if self.mode == "reject":
            # §6.1.6: the client authenticated the outer handshake, then aborted.
            assert client.rejected is not None
            assert client.handshake is None
            if server.complete:
                assert server.fatal_alert == ech.AlertDescription.ECH_REQUIRED
        else:
            assert client.complete
            assert server.complete
            # The server issues its ticket once the client's Finished is in.
            assert client.tickets == 1


# Examples come from the profile (tests/conftest.py): about a second under
# ``dev``, several under ``ci``.
ConnectionMachine.TestCase.settings = settings(settings.default, stateful_step_count=50)
TestConnectionStateMachine = ConnectionMachine.TestCase


# what the machine found -----------------------------------------------------------


def _closing_in_handshake(who: str) -> tuple[Connection, bytes]:
    """One side calls close() mid-handshake; (that side, the peer's next flight)."""
    cc, sc = configs("none", False)
    client = ech.ClientConnection(cc, INNER_NAME)
    server = ech.ServerConnection(sc)
    client.start()
    if who == "client_after_hello":
        client.close()
        server.receive_data(client.data_to_send())  # ClientHello, close_notify
        return client, server.data_to_send()  # ServerHello .. Finished
    if who == "server_before_hello":
        server.close()
        server.data_to_send()  # close_notify
        return server, client.data_to_send()  # ClientHello
    server.receive_data(client.data_to_send())
    server.close()
    client.receive_data(server.data_to_send())  # ServerHello .. Finished, close_notify
    return server, client.data_to_send()  # Finished


@pytest.mark.parametrize(
    "who", ["client_after_hello", "server_after_flight", "server_before_hello"]
)
def test_close_in_handshake_sends_nothing_more(who: str) -> None:
    """close_notify says the sender "will not send any more messages" (§6.1)."""
    closing, peer_flight = _closing_in_handshake(who)
    closing.data_to_send()  # whatever was queued before close_notify went out
    closing.receive_data(peer_flight)
    assert closing.data_to_send() == b""


@pytest.mark.parametrize("first", SIDES)
def test_close_both_ways_closes_both_sides(first: Side) -> None:
    """After close_notify both ways, neither side says data may flow."""
    pair = handshake("none", hrr=False)
    sides: dict[Side, Connection] = {"client": pair.client, "server": pair.server}
    assert pair.client.handshake_complete
    assert pair.server.handshake_complete
    second = sides["server" if first == "client" else "client"]
    sides[first].close()
    second.receive_data(sides[first].data_to_send())
    second.close()
    sides[first].receive_data(second.data_to_send())
    assert not sides[first].handshake_complete
    assert not second.handshake_complete


def test_rejected_client_stays_failed() -> None:
    """A client that aborted with ech_required refuses everything afterwards.

    Found by the machine before the handshake was split from the record layer:
    the records after the server's Finished in the same ``receive_data`` call
    were still processed, and a close_notify among them moved the failed
    client to closed (send raised RuntimeError, receive_data took more).
    """
    cc, sc = configs("reject", False)
    client = ech.ClientConnection(cc, INNER_NAME, ech_configs=stale_configs())
    server = ech.ServerConnection(sc)
    client.start()
    server.receive_data(client.data_to_send())
    client.close()
    server.close()
    events = client.receive_data(server.data_to_send())  # flight, close_notify
    assert isinstance(events[0], ECHRejected)
    with pytest.raises(ech.ConnectionClosedError):
        client.send(b"x")
    with pytest.raises(ech.ConnectionClosedError):
        client.receive_data(b"more")
