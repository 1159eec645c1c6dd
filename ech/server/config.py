"""Server configuration: certificates, preferences, ticket keys."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ech.config import ECHConfigList
from ech.keys import ECHKey
from ech.server.anti_replay import AntiReplay
from ech.server.ech import index_keys
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import NamedGroup, PskKeyExchangeMode
from ech.tls.groups import KeyShare, generate_key_share
from ech.tls.messages import EncryptedExtensions, ServerHello
from ech.tls.records import PaddingPolicy
from ech.tls.signatures import sign
from ech.tls.suites import DEFAULT_CIPHER_SUITES, check_cipher_suites

#: The groups served unless configured otherwise. x448, secp521r1 and the
#: RFC 7919 finite-field groups are implemented but opt-in (``groups=``):
#: a client that offers them beside these is answered with these, and the
#: interop suites rely on a P-521-only share drawing a HelloRetryRequest.
DEFAULT_SERVER_GROUPS: tuple[int, ...] = (
    NamedGroup.X25519MLKEM768,
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
)


@dataclass(frozen=True)
class ServerConfig:
    """Settings shared by all connections of one server.

    Attributes:
        certificates: chains with keys; chosen by SNI, the first is default.
        alpn_protocols: ALPN names we speak, in preference order.
        cipher_suites: suites in our preference order. Over QUIC only
            AES-GCM and ChaCha20-Poly1305 are chosen (RFC 9001 §5.3).
        allow_ccm_8: let ``cipher_suites`` name TLS_AES_128_CCM_8_SHA256,
            whose 8-byte tag RFC 8446 §B.4 leaves to constrained devices.
        groups: key exchange groups in our preference order. A group the
            client sent a share for wins over a better one it did not, so
            HelloRetryRequest happens only when no share fits.
        session_tickets: issue tickets for PSK resumption (psk_dhe_ke).
        tickets_per_connection: tickets sent after each full handshake.
        ticket_lifetime: seconds a ticket stays valid (at most 7 days).
        ticket_key: AES-256-GCM key sealing our stateless tickets.
        hello_retry_cookie: send a cookie in HelloRetryRequest (RFC 8446
            §4.2.2). Never sent when the client offered ECH (see
            ``ServerConnection._send_hello_retry_request``).
        cookie_key: HMAC key for HelloRetryRequest cookies.
        random: injectable randomness.
        now: injectable clock.
        key_share_factory: makes our (EC)DHE share for a group, injectable.
        signer: signs CertificateVerify; injectable for trace replay.
        server_hello_hook: rewrites ServerHello before it is sent; for
            tests and trace replay.
        encrypted_extensions_hook: the same for EncryptedExtensions.
        ech_confirmation_hook: rewrites the 8-byte ECH acceptance
            confirmation (RFC 9849 §7.2, §7.2.1) before it goes into the
            ServerHello or HelloRetryRequest given; the transcript takes what
            is sent. For conformance probes and tests (a client must treat a
            wrong confirmation as a rejection, §6.1.4).
        record_padding: TLSInnerPlaintext padding policy (RFC 8446 §5.4).
        ech_keys: ECH keys we decrypt ClientHelloOuter with (RFC 9849 §7.1).
        ech_retry_configs: configs sent as retry_configs when ECH is not
            accepted; None sends every key's config.
        ech_trial_decryption: try every key rather than only those whose
            config_id matches (for clients that randomize config_id; §7.1).
        ech_backend: act as a split-mode backend: answer an inner-form ECH
            extension with acceptance confirmations (§7.2). Otherwise an inner
            extension from the network is illegal_parameter (§7).
        backends: split mode (§3.1): inner names (lower case) served by a
            backend at ``(host, port)``; an accepted hello for one of them is
            forwarded there, not completed here.
        max_client_hello: longest handshake message a client may send, its
            ClientHello above all; longer ones are refused with decode_error
            as soon as their header arrives.
        require_ech: names that must not be reached without ECH accepted
            (:class:`RequireECH`), or None.
        client_ca: CA certificates a client certificate must chain to
            (:func:`ech.tls.certificates.load_trust_store` reads a PEM file).
            When set, every full handshake sends CertificateRequest (RFC 8446
            §4.3.2; never one resumed with a PSK, whose ticket carries the
            client's leaf) and the chain is validated with
            ``cryptography.x509.verification``'s client policy (clientAuth
            extendedKeyUsage when present). The authenticated chain is on
            the server's ``HandshakeComplete.client_certificate_chain``.
            Post-handshake authentication (§4.6.2) is not implemented.
        psk_key_exchange_modes: the resumption modes we accept, in our
            preference (RFC 8446 §4.2.9): the first that the client lists is
            used. psk_dhe_ke keeps forward secrecy; psk_ke (a resumption
            without (EC)DHE) is only chosen when listed here.
        max_early_data_size: 0-RTT data accepted per connection (RFC 8446
            §4.2.10, §4.6.1), advertised in every ticket; 0 (the default)
            issues tickets without early data. Over QUIC never used (0-RTT
            is out of scope there). Early data arrives as
            :class:`~ech.events.EarlyDataReceived` and may be a replay from
            another server (RFC 8446 §8): accept it only for requests that
            are safe to repeat.
        early_data_skip_limit: how much declined 0-RTT data is skipped
            (RFC 8446 §4.2.10) when it exceeds ``max_early_data_size``: a
            client-facing server that rejects ECH passes over early data
            meant for the hidden name (RFC 9849 §6.1, ECH-46).
        anti_replay: the ClientHello record of RFC 8446 §8.2 shared by all
            connections made with this configuration
            (:class:`~ech.server.anti_replay.AntiReplay`: why recording,
            the freshness window, the memory bound).
        ech_flight_padding: when ECH is accepted, pad the encrypted flight
            (EncryptedExtensions to Finished) to the longest this
            configuration can send, so its length does not tell which
            certificate the hidden name selected (RFC 9849 §6.1.3, §10.11;
            :mod:`ech.server.padding` gives the measured overhead).
        require_client_certificate: abort with ``certificate_required``
            (§4.4.2.4) when the client sends no certificate, instead of going
            on unauthenticated; tickets from unauthenticated connections are
            then not resumed. Needs ``client_ca``.
    """

    certificates: tuple[CertifiedKey, ...]
    alpn_protocols: tuple[str, ...] = ()
    cipher_suites: tuple[int, ...] = DEFAULT_CIPHER_SUITES
    allow_ccm_8: bool = False
    groups: tuple[int, ...] = DEFAULT_SERVER_GROUPS
    session_tickets: bool = True
    tickets_per_connection: int = 1
    ticket_lifetime: int = 7200
    ticket_key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    hello_retry_cookie: bool = True
    cookie_key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    random: Callable[[int], bytes] = os.urandom
    now: Callable[[], float] = time.time
    key_share_factory: Callable[[int], KeyShare] = generate_key_share
    signer: Callable[[PrivateKeyTypes, int, bytes], bytes] = sign
    server_hello_hook: Callable[[ServerHello], ServerHello] | None = None
    encrypted_extensions_hook: (
        Callable[[EncryptedExtensions], EncryptedExtensions] | None
    ) = None
    ech_confirmation_hook: Callable[[ServerHello, bytes], bytes] | None = None
    record_padding: PaddingPolicy | None = None
    ech_keys: tuple[ECHKey, ...] = ()
    ech_retry_configs: ECHConfigList | None = None
    ech_trial_decryption: bool = False
    ech_backend: bool = False
    backends: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    max_client_hello: int = 1 << 16
    require_ech: RequireECH | None = None
    client_ca: tuple[x509.Certificate, ...] = ()
    require_client_certificate: bool = False
    ech_flight_padding: bool = True
    psk_key_exchange_modes: tuple[int, ...] = (PskKeyExchangeMode.PSK_DHE_KE,)
    max_early_data_size: int = 0
    early_data_skip_limit: int = 1 << 14
    anti_replay: AntiReplay = field(
        default_factory=AntiReplay, repr=False, compare=False
    )

    @functools.cached_property
    def ech_key_index(self) -> dict[int, tuple[ECHKey, ...]]:
        """ECH keys by config_id (computed once)."""
        return index_keys(self.ech_keys)

    @functools.cached_property
    def retry_configs(self) -> ECHConfigList | None:
        """What to send as retry_configs: the configured list, else every key's."""
        if self.ech_retry_configs is not None:
            return self.ech_retry_configs
        if not self.ech_keys:
            return None
        return ECHConfigList(tuple(key.config for key in self.ech_keys))

    @functools.cached_property
    def ech_flight_policy(self) -> PaddingPolicy:
        """The record padding of a flight with ECH accepted (computed once).

        See :func:`ech.server.padding.ech_flight_padding`; it depends only on
        this configuration, and every ECH-accepted handshake needs it.
        """
        # Imported here: ech.server.padding reads ServerConfig.
        from ech.server.padding import ech_flight_padding

        return ech_flight_padding(self)

    def __post_init__(self) -> None:
        if not self.certificates:
            raise ValueError("a server needs at least one certificate")
        if not self.cipher_suites or not self.groups:
            raise ValueError("cipher_suites and groups must not be empty")
        check_cipher_suites(self.cipher_suites, allow_ccm_8=self.allow_ccm_8)
        if not 0 < self.ticket_lifetime <= 604800:
            raise ValueError("ticket_lifetime must be within 1 second and 7 days")
        if len(self.ticket_key) != 32:
            raise ValueError("ticket_key must be 32 bytes")
        if not 0 <= self.max_early_data_size < 1 << 32:
            raise ValueError("max_early_data_size must fit a uint32")
        if self.require_client_certificate and not self.client_ca:
            raise ValueError("require_client_certificate needs client_ca")


@dataclass(frozen=True)
class RequireECH:
    """Names a client must reach with ECH accepted (``ech serve --require-ech``).

    A ClientHello whose ECH was not accepted and whose (cleartext) SNI names
    a protected name is refused with ``unrecognized_name`` (RFC 6066 §3:
    "not served here"; it says nothing of ECH) before the server's flight,
    and so its certificate, is built.

    Attributes:
        names: exact names or ``*.`` wildcards (one label); empty means every
            certificate name. A current key's public_name is never
            protected: rejected clients must be able to retry (RFC 9849
            §6.1.6).
    """

    names: tuple[str, ...] = ()

    def protects(self, server_name: str, config: ServerConfig) -> bool:
        """Whether a handshake to ``server_name`` without ECH must be refused."""
        name = server_name.lower().rstrip(".")
        public = {
            key.config.contents.public_name.decode("ascii").lower()
            for key in config.ech_keys
            if key.config.contents is not None
        }
        if name in public:
            return False
        if not self.names:
            return any(c.matches(name) for c in config.certificates)
        for pattern in self.names:
            pattern = pattern.lower().rstrip(".")
            if pattern == name:
                return True
            if pattern.startswith("*.") and name.partition(".")[2] == pattern[2:]:
                return True
        return False
