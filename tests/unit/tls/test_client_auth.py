"""Client certificate authentication (RFC 8446 §4.3.2, §4.4.2, §4.4.2.4, §4.4.3).

The server asks with CertificateRequest when ``ServerConfig.client_ca`` is
set (never in a PSK handshake), validates the chain with
``cryptography.x509.verification``'s client policy, checks the client's
CertificateVerify (client context string) and reports the chain on its
HandshakeComplete. With ECH all of it runs in the inner handshake.
Post-handshake authentication is not implemented.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

import ech
from ech.errors import (
    CertificateExpired,
    CertificateRequired,
    DecryptError,
    IllegalParameter,
    MissingExtension,
    UnexpectedMessage,
    UnknownCA,
    UnsupportedCertificate,
    UnsupportedExtension,
)
from ech.events import ECHStatus, HandshakeComplete
from ech.pki import KeyType, TestCA
from ech.server.connection import ServerState
from ech.server.handshake import ServerHandshake
from ech.tls import extensions as ext
from ech.tls.enums import (
    AlertDescription,
    ContentType,
    ExtensionType,
    HandshakeType,
    SignatureScheme,
)
from ech.tls.events import ConnectionClosed
from ech.tls.extensions import Extension
from ech.tls.handshake import Epoch
from ech.tls.messages import (
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
)
from ech.tls.signatures import CLIENT_CONTEXT, SERVER_CONTEXT, sign
from tests.helpers import (
    Pair,
    expect_encrypted_alert,
    handshake,
    make_pair,
    split_handshake,
)
from tests.unit.ech import ech_helpers as eh

S = SignatureScheme
E = ExtensionType
T = HandshakeType


@pytest.fixture(scope="module")
def client_leaf(ca: TestCA) -> ech.CertifiedKey:
    return ca.issue("client.test", usage="client")


def _configs(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    client_certificate: ech.CertifiedKey | None,
    *,
    required: bool = True,
) -> tuple[ech.ClientConfig, ech.ServerConfig]:
    cc = dataclasses.replace(client_config, client_certificate=client_certificate)
    sc = dataclasses.replace(
        server_config, client_ca=(ca.certificate,), require_client_certificate=required
    )
    return cc, sc


def _done(events: list[ech.Event]) -> HandshakeComplete:
    (done,) = [e for e in events if isinstance(e, HandshakeComplete)]
    return done


def _client_flight(pair: Pair) -> bytes:
    """Deliver ClientHello and the server's flight; the client's answer."""
    pair.to_server()
    pair.to_client()
    return pair.client.data_to_send()


def _edit_client(pair: Pair, msg_type: int, edit: Callable[[bytes], bytes]) -> None:
    def hook(_epoch: Epoch, message: bytes) -> bytes:
        ((sent_type, body),) = split_handshake(message)
        if sent_type != msg_type:
            return message
        new_body = edit(body)
        return bytes((msg_type,)) + len(new_body).to_bytes(3, "big") + new_body

    pair.client.outgoing_message_hook = hook


# the happy paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key_type", ["p256", "p384", "p521", "ed25519", "ed448", "rsa2048"]
)
def test_client_certificate_is_verified_and_reported(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    key_type: KeyType,
) -> None:
    leaf = ca.issue("client.test", key_type=key_type, usage="client")
    cc, sc = _configs(client_config, server_config, ca, leaf)
    client, server, client_events, server_events = handshake(cc, sc)
    done = _done(server_events)
    assert done.client_certificate_chain[0] == leaf.chain[0]
    assert done.client_certificate_subject == "CN=client.test"
    assert _done(client_events).client_certificate_chain == ()
    assert server.handshake.client_certificate_chain[0] == leaf.chain[0]
    assert server.state is ServerState.CONNECTED
    client.send(b"authenticated")
    assert server.receive_data(client.data_to_send()) == [
        ech.DataReceived(b"authenticated")
    ]


def test_client_chain_through_an_intermediate(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    intermediate = ca.intermediate()
    leaf = intermediate.issue("client.test", usage="client")
    chained = ech.CertifiedKey(
        (*leaf.chain, intermediate.certificate), leaf.private_key
    )
    cc, sc = _configs(client_config, server_config, ca, chained)
    _, _, _, server_events = handshake(cc, sc)
    chain = _done(server_events).client_certificate_chain
    assert chain[0] == leaf.chain[0]
    assert chain[-1] == ca.certificate  # the validated path ends at the anchor


def test_optional_client_certificate_absent(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    """§4.4.2.4: without a certificate the server "MAY ... continue the
    handshake without client authentication"."""
    cc, sc = _configs(client_config, server_config, ca, None, required=False)
    _, server, _, server_events = handshake(cc, sc)
    assert _done(server_events).client_certificate_chain == ()
    assert _done(server_events).client_certificate_subject is None
    assert server.handshake.client_certificate == Certificate(b"", ())


def test_certificate_request_is_never_sent_with_a_psk(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    client_leaf: ech.CertifiedKey,
) -> None:
    """§4.3.2: "Servers which are authenticating with a PSK MUST NOT send the
    CertificateRequest message in the main handshake"; the ticket carries
    the identity the full handshake proved (§4.6.1)."""
    cc, sc = _configs(client_config, server_config, ca, client_leaf)
    first, _, _, _ = handshake(cc, sc)
    (ticket,) = first.session_tickets
    pair = make_pair(cc, sc, session=ticket)
    seen: list[int] = []

    def spy(epoch: Epoch, message: bytes) -> bytes:
        seen.append(message[0])
        return message

    pair.server.outgoing_message_hook = spy
    pair.pump()
    done = _done(pair.server_events)
    assert done.resumed
    assert T.CERTIFICATE_REQUEST not in seen
    assert done.client_certificate_subject == "CN=client.test"


def test_required_client_certificate_is_not_resumed_from_an_anonymous_ticket(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    cc, optional = _configs(client_config, server_config, ca, None, required=False)
    first, _, _, _ = handshake(cc, optional)
    (ticket,) = first.session_tickets
    leaf = ca.issue("client.test", usage="client")
    cc2, required = _configs(client_config, optional, ca, leaf)
    _, _, _, server_events = handshake(cc2, required, session=ticket)
    done = _done(server_events)
    assert not done.resumed
    assert done.client_certificate_subject == "CN=client.test"


class _AskForEd25519(ServerHandshake):
    def certificate_request(self) -> CertificateRequest | None:
        algorithms = ext.encode_u16_vector([S.ED25519])
        return CertificateRequest(b"", (Extension(E.SIGNATURE_ALGORITHMS, algorithms),))


class _AskForEd25519Server(ech.ServerConnection):
    handshake_class = _AskForEd25519


@pytest.mark.parametrize(("key_type", "sends"), [("ed25519", True), ("p256", False)])
def test_client_picks_a_scheme_from_the_request_or_sends_nothing(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    key_type: KeyType,
    sends: bool,
) -> None:
    """§4.4.3: the CertificateVerify scheme "MUST be one of those present"
    in the request; a key that fits none is not sent (empty Certificate)."""
    leaf = ca.issue("client.test", key_type=key_type, usage="client")
    cc, sc = _configs(client_config, server_config, ca, leaf, required=False)
    pair = make_pair(cc, sc, server_cls=_AskForEd25519Server)
    pair.pump()
    chain = _done(pair.server_events).client_certificate_chain
    assert (chain[0] == leaf.chain[0]) if sends else chain == ()


# the server refuses -------------------------------------------------------------------


def _refused(
    cc: ech.ClientConfig, sc: ech.ServerConfig, alert: type[ech.Alert]
) -> None:
    pair = make_pair(cc, sc)
    flight = _client_flight(pair)
    expect_encrypted_alert(pair.server, flight, alert, pair.client)


def test_required_client_certificate_absent_is_certificate_required(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    """§4.4.2.4 and alert 116 (§6.2: "sent by servers when a client
    certificate is desired but none was provided")."""
    _refused(*_configs(client_config, server_config, ca, None), CertificateRequired)


def test_client_certificate_from_an_unknown_ca_is_unknown_ca(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    leaf = TestCA.create("stranger").issue("client.test", usage="client")
    _refused(*_configs(client_config, server_config, ca, leaf), UnknownCA)


def test_expired_client_certificate_is_certificate_expired(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    client_leaf: ech.CertifiedKey,
) -> None:
    cc, sc = _configs(client_config, server_config, ca, client_leaf)
    later = time.time() + 200 * 86400  # the leaf is valid for 90 days
    sc = dataclasses.replace(sc, now=lambda: later)
    cc = dataclasses.replace(cc, verify_certificates=False)
    _refused(cc, sc, CertificateExpired)


def test_server_only_certificate_is_unsupported_certificate(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    """A leaf whose extendedKeyUsage lacks clientAuth (RFC 5280 §4.2.1.12)."""
    leaf = ca.issue("client.test", usage="server")
    _refused(*_configs(client_config, server_config, ca, leaf), UnsupportedCertificate)


def test_certificate_verify_that_does_not_verify_is_decrypt_error(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    client_leaf: ech.CertifiedKey,
) -> None:
    pair = make_pair(*_configs(client_config, server_config, ca, client_leaf))

    def corrupt(body: bytes) -> bytes:
        cv = CertificateVerify.parse(body)
        signature = bytearray(cv.signature)
        signature[-1] ^= 1
        return CertificateVerify(cv.algorithm, bytes(signature)).encode()

    _edit_client(pair, T.CERTIFICATE_VERIFY, corrupt)
    expect_encrypted_alert(pair.server, _client_flight(pair), DecryptError, pair.client)


def test_certificate_verify_must_use_the_client_context_string(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    client_leaf: ech.CertifiedKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """§4.4.3: the client signs "TLS 1.3, client CertificateVerify"; the same
    transcript signed under the server's string must fail (decrypt_error)."""
    signed: list[bytes] = []

    def server_string(key: PrivateKeyTypes, scheme: int, content: bytes) -> bytes:
        signed.append(content)
        assert content.startswith(b" " * 64 + CLIENT_CONTEXT + b"\x00")
        return sign(key, scheme, content.replace(CLIENT_CONTEXT, SERVER_CONTEXT, 1))

    monkeypatch.setattr("ech.client.handshake.sign", server_string)
    pair = make_pair(*_configs(client_config, server_config, ca, client_leaf))
    expect_encrypted_alert(pair.server, _client_flight(pair), DecryptError, pair.client)
    assert len(signed) == 1


def test_certificate_verify_with_a_scheme_not_requested_is_illegal_parameter(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig, ca: TestCA
) -> None:
    leaf = ca.issue("client.test", key_type="ed25519", usage="client")
    cc, sc = _configs(client_config, server_config, ca, leaf)
    pair = make_pair(cc, sc, server_cls=_AskForEd25519Server)

    def relabel(body: bytes) -> bytes:
        cv = CertificateVerify.parse(body)
        return CertificateVerify(S.ED448, cv.signature).encode()

    _edit_client(pair, T.CERTIFICATE_VERIFY, relabel)
    expect_encrypted_alert(
        pair.server, _client_flight(pair), IllegalParameter, pair.client
    )


def test_client_certificate_with_another_context_is_illegal_parameter(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    client_leaf: ech.CertifiedKey,
) -> None:
    pair = make_pair(*_configs(client_config, server_config, ca, client_leaf))

    def recontext(body: bytes) -> bytes:
        certificate = Certificate.parse(body)
        return Certificate(b"\x01", certificate.certificate_list).encode()

    _edit_client(pair, T.CERTIFICATE, recontext)
    expect_encrypted_alert(
        pair.server, _client_flight(pair), IllegalParameter, pair.client
    )


def test_unrequested_certificate_entry_extension_is_unsupported_extension(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    ca: TestCA,
    client_leaf: ech.CertifiedKey,
) -> None:
    """§4.4.2: client Certificate extensions "MUST correspond to extensions
    in the CertificateRequest message"."""
    pair = make_pair(*_configs(client_config, server_config, ca, client_leaf))

    def add_extension(body: bytes) -> bytes:
        certificate = Certificate.parse(body)
        first, *rest = certificate.certificate_list
        entry = CertificateEntry(first.cert_data, (Extension(E.STATUS_REQUEST, b""),))
        return Certificate(b"", (entry, *rest)).encode()

    _edit_client(pair, T.CERTIFICATE, add_extension)
    expect_encrypted_alert(
        pair.server, _client_flight(pair), UnsupportedExtension, pair.client
    )


# the client refuses -------------------------------------------------------------------


class _BadRequest(ServerHandshake):
    request: CertificateRequest

    def certificate_request(self) -> CertificateRequest | None:
        return self.request


def _bad_request_server(request: CertificateRequest) -> type[ech.ServerConnection]:
    handshake_class = type("H", (_BadRequest,), {"request": request})
    return type("Server", (ech.ServerConnection,), {"handshake_class": handshake_class})


@pytest.mark.parametrize(
    ("request_", "alert"),
    [
        (
            CertificateRequest(
                b"\x07",
                (
                    Extension(
                        E.SIGNATURE_ALGORITHMS, ext.encode_u16_vector([S.ED25519])
                    ),
                ),
            ),
            IllegalParameter,
        ),
        (CertificateRequest(b"", (Extension(0x7A7A, b""),)), MissingExtension),
    ],
    ids=["context-in-handshake", "no-signature-algorithms"],
)
def test_client_refuses_a_malformed_certificate_request(
    client_config: ech.ClientConfig,
    server_config: ech.ServerConfig,
    request_: CertificateRequest,
    alert: type[ech.Alert],
) -> None:
    """§4.3.2: the context "SHALL be zero length unless used for the
    post-handshake authentication exchanges"; signature_algorithms "MUST be
    specified"."""
    pair = make_pair(
        client_config, server_config, server_cls=_bad_request_server(request_)
    )
    pair.to_server()
    expect_encrypted_alert(pair.client, pair.server.data_to_send(), alert, pair.server)


def test_post_handshake_certificate_request_is_unexpected_message(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """We never offer post_handshake_auth (§4.2.6), so a post-handshake
    CertificateRequest (§4.6.2) is unexpected_message."""
    client, server, _, _ = handshake(client_config, server_config)
    request = CertificateRequest(
        b"\x01",
        (Extension(E.SIGNATURE_ALGORITHMS, ext.encode_u16_vector([S.ED25519])),),
    )
    server.inject_record(ContentType.HANDSHAKE, request.framed())
    expect_encrypted_alert(client, server.data_to_send(), UnexpectedMessage, server)


# with ECH ---------------------------------------------------------------------------


def test_client_certificate_in_the_inner_handshake() -> None:
    """RFC 9849: CertificateRequest and the client's certificate flow in the
    inner handshake, encrypted like the rest of it."""
    key = eh.ech_key()
    pki = eh.pki()
    client_leaf = pki.ca.issue("client.test", usage="client")
    cc = eh.client_config(client_certificate=client_leaf)
    sc = eh.server_config(
        key, client_ca=(pki.ca.certificate,), require_client_certificate=True
    )
    pair = eh.ech_pair(cc, sc, eh.config_list(key))
    pair.pump()
    done = _done(pair.server_events)
    assert done.ech_status is ECHStatus.ACCEPTED
    assert done.server_name == eh.INNER_NAME
    assert done.client_certificate_subject == "CN=client.test"


@pytest.mark.requirement("ECH-65")
def test_client_certificate_never_sent_when_ech_is_rejected() -> None:
    """RFC 9849 §6.1.7 (ECH-65): "If the server sends a
    CertificateRequest message, the client MUST respond with an empty
    Certificate message" on the outer handshake."""
    key, other = eh.ech_key(), eh.ech_key()
    pki = eh.pki()
    client_leaf = pki.ca.issue("client.test", usage="client")
    cc = eh.client_config(client_certificate=client_leaf)
    sc = eh.server_config(key, client_ca=(pki.ca.certificate,))
    pair = eh.ech_pair(cc, sc, eh.config_list(other))
    eh.pump_to_end(pair)
    assert pair.client.ech_status is ECHStatus.REJECTED
    assert pair.server.handshake.client_certificate == Certificate(b"", ())
    assert pair.server.handshake.client_certificate_chain == ()
    assert ConnectionClosed(AlertDescription.ECH_REQUIRED) in pair.server_events


def test_certificate_request_in_a_psk_handshake_is_unexpected_message(
    client_config: ech.ClientConfig, server_config: ech.ServerConfig
) -> None:
    """§4.3.2: "Servers which are authenticating with a PSK MUST NOT send the
    CertificateRequest message in the main handshake"; the client, expecting
    Finished after EncryptedExtensions (§A.1), refuses one."""
    first, _, _, _ = handshake(client_config, server_config)
    (ticket,) = first.session_tickets
    pair = make_pair(client_config, server_config, session=ticket)
    request = CertificateRequest(
        b"", (Extension(E.SIGNATURE_ALGORITHMS, ext.encode_u16_vector([S.ED25519])),)
    )

    def add_request(_epoch: Epoch, message: bytes) -> bytes:
        if message[0] == T.ENCRYPTED_EXTENSIONS:
            return message + request.framed()
        return message

    pair.server.outgoing_message_hook = add_request
    pair.to_server()
    expect_encrypted_alert(
        pair.client, pair.server.data_to_send(), UnexpectedMessage, pair.server
    )
