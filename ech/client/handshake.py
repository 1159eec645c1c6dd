"""The TLS 1.3 client handshake with ECH (RFC 8446 §4 and §A.1, RFC 9849 §6).

:class:`ClientHandshake` takes the server's handshake messages and answers
with outputs (:mod:`ech.tls.handshake`); it never sees a record or packet.
Each state keeps its own data, as rustls's typestates do:

* :class:`_WaitServerHello`: what our ClientHello offered, kept across a
  HelloRetryRequest (key shares, the session, the ECH offer, GREASE);
* :class:`_WaitFlight`: the keys made at ServerHello and what the server's
  encrypted flight has shown so far (WAIT_EE to WAIT_FINISHED);
* :class:`_Connected`: after our Finished, for NewSessionTicket.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from ech.client.config import ClientConfig
from ech.client.ech import (
    ECHOffer,
    grease_extension,
    inner_marker,
    select_config,
    with_extension_before_psk,
)
from ech.config import ECHConfigList
from ech.confirmation import (
    accept_confirmation,
    confirmation_matches,
    hrr_accept_confirmation,
)
from ech.errors import (
    BadCertificate,
    DecodeError,
    DecryptError,
    IllegalParameter,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersion,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ech.events import ECHRejected, ECHStatus, HandshakeComplete, SessionTicketReceived
from ech.extension import (
    CONFIRMATION_LENGTH,
    parse_hrr_confirmation,
    parse_retry_configs,
)
from ech.tls import extensions as ext
from ech.tls.certificates import parse_leaf, verify_server_chain
from ech.tls.enums import (
    SSL30,
    TLS13,
    AlertDescription,
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    PskKeyExchangeMode,
)
from ech.tls.events import EarlyDataStatus
from ech.tls.extensions import Extension, OfferedPsks, PskIdentity
from ech.tls.groups import KeyShare
from ech.tls.handshake import (
    Abort,
    Direction,
    Epoch,
    Handshake,
    SendChangeCipherSpec,
)
from ech.tls.key_schedule import (
    EarlySecret,
    HandshakeSecret,
    finished_verify_data,
    hash_bytes,
    resumption_psk,
    verify_finished,
)
from ech.tls.messages import (
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    NewSessionTicket,
    ServerHello,
)
from ech.tls.quic import QuicOptions
from ech.tls.session import SessionTicket
from ech.tls.signatures import (
    CLIENT_CONTEXT,
    SERVER_CONTEXT,
    sign,
    signed_content,
    verify,
)
from ech.tls.suites import SUITES, SuiteParams, check_quic_cipher_suites
from ech.tls.transcript import Transcript
from ech.tls.wire import frame_handshake

E = ExtensionType

#: Extensions a ServerHello may carry (RFC 8446 §4.2 table).
_SERVER_HELLO_EXTENSIONS = {E.KEY_SHARE, E.PRE_SHARED_KEY, E.SUPPORTED_VERSIONS}
_HRR_EXTENSIONS = {
    E.KEY_SHARE,
    E.COOKIE,
    E.SUPPORTED_VERSIONS,
    E.ENCRYPTED_CLIENT_HELLO,
}
#: Extensions that must never appear in EncryptedExtensions (RFC 8446 §4.2).
_NOT_IN_EE = {
    E.KEY_SHARE,
    E.PRE_SHARED_KEY,
    E.SUPPORTED_VERSIONS,
    E.PSK_KEY_EXCHANGE_MODES,
    E.COOKIE,
    E.SIGNATURE_ALGORITHMS,
    E.SIGNATURE_ALGORITHMS_CERT,
    E.CERTIFICATE_AUTHORITIES,
    E.STATUS_REQUEST,
    E.SIGNED_CERTIFICATE_TIMESTAMP,
    E.PADDING,
    E.POST_HANDSHAKE_AUTH,
}


class ClientState(enum.Enum):
    """RFC 8446 §A.1 client states."""

    START = "start"
    WAIT_SH = "wait_sh"
    WAIT_EE = "wait_ee"
    WAIT_CERT_CR = "wait_cert_cr"
    WAIT_CERT = "wait_cert"
    WAIT_CV = "wait_cv"
    WAIT_FINISHED = "wait_finished"
    CONNECTED = "connected"
    #: ECH was rejected and the connection aborted with ech_required.
    REJECTED = "rejected"


@dataclass
class _WaitServerHello:
    """WAIT_SH: our ClientHello is out; what it offered."""

    hello: ClientHello
    key_shares: dict[int, KeyShare]
    session: SessionTicket | None
    ech: ECHOffer | None
    ech_grease: Extension | None = None
    hello_retry: bool = False
    ccs_sent: bool = False
    #: The ClientHello the 0-RTT keys derive from (ClientHelloInner with ECH).
    early_hello: bytes = b""


@dataclass
class _WaitFlight:
    """WAIT_EE to WAIT_FINISHED: the keys made at ServerHello, and the flight."""

    expect: ClientState
    suite: SuiteParams
    #: The hello that counts: ClientHelloInner when ECH was accepted.
    hello: ClientHello
    ech: ECHOffer | None
    handshake_secret: HandshakeSecret
    client_secret: bytes
    server_secret: bytes
    psk_accepted: bool
    hello_retry: bool
    #: We are still writing 0-RTT data: the handshake write key comes with
    #: our second flight (RFC 8446 §4.5, §D.4).
    writing_early_data: bool = False
    certificate_request: CertificateRequest | None = None
    #: The server's leaf, once its chain validated.
    peer_certificate: x509.Certificate | None = None
    #: retry_configs, trusted only once the outer handshake is authenticated.
    retry_configs: ECHConfigList | None = None


@dataclass
class _Connected:
    """After our Finished: NewSessionTicket may come."""

    suite: SuiteParams


_Stage = _WaitServerHello | _WaitFlight | _Connected | None


class ClientHandshake(Handshake):
    """One TLS 1.3 client handshake, optionally offering ECH.

    Args:
        config: what to offer and whom to trust.
        server_name: the name to ask for (SNI) and to verify the certificate
            against; an IP address is verified but not sent as SNI.
        session: a ticket from an earlier connection to resume with.
        ech_configs: the server's ECHConfigList (from DNS, or retry_configs).
            With a usable config, ``server_name`` travels encrypted in
            ClientHelloInner and ClientHelloOuter names the config's
            public_name; without one, GREASE ECH is sent (RFC 9849 §6.2).
        quic: run over QUIC (RFC 9001 §8): send our transport parameters,
            require the server's and ALPN, never compatibility mode, only
            the AES-GCM and ChaCha20 suites (§5.3), no 0-RTT.
        early_data: offer 0-RTT data (RFC 8446 §4.2.10) when ``session``
            allows it (its max_early_data_size); the carrier writes the data
            under the early traffic key, and ``early_data_status`` tells
            what the server did with it. With ECH the early data belongs to
            ClientHelloInner's PSK, and ClientHelloOuter carries early_data
            too (RFC 9849 §6.1, ECH-46).
    """

    def __init__(
        self,
        config: ClientConfig,
        server_name: str | None,
        *,
        session: SessionTicket | None = None,
        ech_configs: ECHConfigList | None = None,
        quic: QuicOptions | None = None,
        early_data: bool = False,
    ) -> None:
        super().__init__()
        if config.verify_certificates and not server_name:
            raise ValueError("server_name is required to verify the certificate")
        if early_data and quic is not None:
            raise ValueError("0-RTT is not supported over QUIC")
        if quic is not None and not config.alpn_protocols:
            raise ValueError("QUIC needs ALPN protocols to offer (RFC 9001 §8.1)")
        self.config = config
        self.server_name = server_name
        self.quic = quic
        #: What we offer: over QUIC, only what QUIC packet protection can
        #: use (RFC 9001 §5.3: never CCM_8).
        self.cipher_suites: tuple[int, ...] = (
            tuple(config.cipher_suites)
            if quic is None
            else check_quic_cipher_suites(config.cipher_suites)
        )
        # RFC 9001 §8.4: QUIC has no middleboxes to be compatible with.
        self.compatibility_mode = config.compatibility_mode and quic is None
        #: The server's quic_transport_parameters, over QUIC.
        self.peer_transport_parameters: bytes | None = None
        self._session = session if self._session_usable(session) else None
        #: Whether our ClientHello offers 0-RTT data (RFC 8446 §4.2.10): asked
        #: for, and the ticket allows it.
        self.early_data_offered = bool(
            early_data
            and self._session is not None
            and self._session.max_early_data_size > 0
        )
        self.early_data_status = EarlyDataStatus.NOT_OFFERED
        self._stage: _Stage = None
        self._started = False
        self._transcript = Transcript()
        self.cipher_suite: CipherSuite | None = None
        self.group: NamedGroup | None = None
        self.alpn_protocol: str | None = None
        self.session_tickets: list[SessionTicket] = []
        self._ech_config = select_config(ech_configs) if ech_configs else None
        self.ech_status = ECHStatus.NOT_OFFERED
        if self._ech_config is not None:
            self.ech_status = ECHStatus.OFFERED
        elif ech_configs is not None or config.ech_grease:
            self.ech_status = ECHStatus.GREASE  # ECH-7, ECH-34
        #: The server's retry_configs after a rejection, once authenticated.
        self.retry_configs: ECHConfigList | None = None
        #: The server's certificate chain (DER, leaf first), once checked;
        #: what ``ssl.SSLSocket.getpeercert`` reports.
        self.peer_certificates: tuple[bytes, ...] = ()

    @property
    def session(self) -> SessionTicket | None:
        """The ticket offered for resumption (None if unusable or absent)."""
        return self._session

    @property
    def state(self) -> ClientState:
        """Where the handshake is (RFC 8446 §A.1)."""
        stage = self._stage
        if isinstance(stage, _WaitServerHello):
            return ClientState.WAIT_SH
        if isinstance(stage, _WaitFlight):
            return stage.expect
        if isinstance(stage, _Connected):
            return ClientState.CONNECTED
        return ClientState.REJECTED if self._started else ClientState.START

    # the first ClientHello ------------------------------------------------------

    def start(self) -> None:
        """Queue the first ClientHello."""
        if self._started:
            raise RuntimeError("start() called twice")
        self._started = True
        config = self.config
        session_id = config.random(32) if self.compatibility_mode else b""
        key_shares = {g: config.key_share_factory(g) for g in config.key_share_groups}
        offer = (
            ECHOffer.start(self._ech_config, config.random, config.ech_seal_tamper)
            if self._ech_config is not None
            else None
        )
        hello = ClientHello(
            random=config.random(32),
            legacy_session_id=session_id,
            cipher_suites=self.cipher_suites,
            extensions=self._hello_extensions(
                key_shares, cookie=None, early_data=self.early_data_offered
            ),
        )
        waiting = _WaitServerHello(hello, key_shares, self._session, offer)
        self._send_client_hello(waiting, hello)
        self._stage = waiting
        if self.early_data_offered:
            self._start_early_data(waiting)

    def _start_early_data(self, waiting: _WaitServerHello) -> None:
        """The 0-RTT write key, right after ClientHello (RFC 8446 §2.3, §7.1).

        client_early_traffic_secret = Derive-Secret(Early Secret of the
        ticket's PSK, "c e traffic", ClientHello): the hello that carries the
        PSK, ClientHelloInner with ECH. In compatibility mode the
        change_cipher_spec comes first: "If offering early data, the record
        is placed immediately after the first ClientHello" (§D.4).
        """
        session = waiting.session
        if session is None:
            raise RuntimeError("internal error: 0-RTT without a session")
        suite = SUITES[session.cipher_suite]
        if self.compatibility_mode:
            self._emit(SendChangeCipherSpec())
            waiting.ccs_sent = True
        early = EarlySecret.from_psk(suite.hash, session.psk)
        hello_hash = hash_bytes(suite.hash, waiting.early_hello)
        self._install(
            Direction.WRITE,
            Epoch.EARLY_DATA,
            suite,
            early.client_early_traffic_secret(hello_hash),
        )

    def _session_usable(self, session: SessionTicket | None) -> bool:
        return (
            session is not None
            and session.server_name == self.server_name
            and session.cipher_suite in self.cipher_suites
            and session.is_valid(self.config.now())
        )

    def _sni(self) -> str | None:
        name = self.server_name
        if name is None or not ext.may_be_ip_address(name):
            return name
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name
        return None  # RFC 6066 §3: literal IP addresses are not sent.

    def _hello_extensions(
        self,
        key_shares: dict[int, KeyShare],
        cookie: bytes | None,
        *,
        early_data: bool = False,
    ) -> tuple[Extension, ...]:
        out: list[Extension] = []
        sni = self._sni()
        if sni is not None:
            out.append(Extension(E.SERVER_NAME, ext.encode_server_name(sni)))
        out.extend(self.config.offer_extensions)
        shares = [
            ext.KeyShareEntry(group, share.public)
            for group, share in key_shares.items()
        ]
        out.append(Extension(E.KEY_SHARE, ext.encode_client_key_shares(shares)))
        if self.quic is not None:
            parameters = self.quic.transport_parameters()
            out.append(Extension(E.QUIC_TRANSPORT_PARAMETERS, parameters))
        if cookie is not None:
            out.append(Extension(E.COOKIE, ext.encode_cookie(cookie)))
        if early_data:
            out.append(Extension(E.EARLY_DATA, b""))  # RFC 8446 §4.2.10
        return tuple(out)

    def _send_client_hello(self, waiting: _WaitServerHello, hello: ClientHello) -> None:
        """Add ECH (or GREASE) and the PSK to ``hello``; send it (RFC 9849 §6.1)."""
        if self.config.client_hello_hook is not None:
            hello = self.config.client_hello_hook(hello)
        offer = waiting.ech
        if offer is not None:
            hello = with_extension_before_psk(hello, inner_marker())
        elif self.ech_status is ECHStatus.GREASE:
            if waiting.ech_grease is None:  # the same one after HRR (ECH-70)
                # Sized like a real offer's inner hello, PSK included (ECH-69, ECH-99).
                sized = (
                    self._add_psk(waiting, hello)
                    if waiting.session is not None
                    else hello
                )
                waiting.ech_grease = grease_extension(sized, self.config.random)
            hello = with_extension_before_psk(hello, waiting.ech_grease)
        if waiting.session is not None:
            hello = self._add_psk(waiting, hello)
        waiting.early_hello = hello.framed()
        if offer is not None:
            offer.inner_transcript.add(waiting.early_hello)
            hello = offer.seal(hello, self.config.random)
        waiting.hello = hello
        self.client_random = hello.random
        self._transcript.add(self._send(hello, Epoch.INITIAL))

    def _add_psk(self, waiting: _WaitServerHello, hello: ClientHello) -> ClientHello:
        """Append pre_shared_key with its binder (RFC 8446 §4.2.11.2)."""
        session = waiting.session
        if session is None:
            raise RuntimeError("internal error: no session to resume")
        suite = SUITES[session.cipher_suite]
        algorithm = suite.hash
        identity = PskIdentity(
            session.ticket, session.obfuscated_age(self.config.now())
        )
        placeholder = OfferedPsks((identity,), (bytes(algorithm.digest_size),))
        hello = hello.without_extension(E.PRE_SHARED_KEY).with_extension(
            Extension(E.PRE_SHARED_KEY, placeholder.encode())
        )
        raw = hello.framed()
        # The binder covers the hello up to, not including, the binders list.
        truncated = raw[: len(raw) - len(placeholder.encode_binders())]
        # With ECH the PSK belongs to the inner handshake (RFC 9849 §6.1).
        base = waiting.ech.inner_transcript if waiting.ech else self._transcript
        transcript = base.copy()
        if not waiting.hello_retry:
            transcript.set_algorithm(algorithm)
        transcript.add(truncated)
        binder_key = EarlySecret.from_psk(algorithm, session.psk).binder_key()
        binder = finished_verify_data(algorithm, binder_key, transcript.digest())
        offered = OfferedPsks((identity,), (binder,))
        return hello.with_extension(Extension(E.PRE_SHARED_KEY, offered.encode()))

    # dispatch -------------------------------------------------------------------

    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        """Process one server message (RFC 8446 §A.1); see :class:`Handshake`."""
        stage = self._stage
        raw = frame_handshake(msg_type, body)
        if isinstance(stage, _WaitServerHello):
            if msg_type == HandshakeType.SERVER_HELLO and epoch is Epoch.INITIAL:
                self._on_server_hello(stage, ServerHello.parse(body), raw)
                return
        elif isinstance(stage, _WaitFlight):
            if epoch is Epoch.HANDSHAKE and self._on_flight(stage, msg_type, body, raw):
                return
        elif (
            isinstance(stage, _Connected)
            and msg_type == HandshakeType.NEW_SESSION_TICKET
            and epoch is Epoch.APPLICATION
        ):
            self._on_new_session_ticket(stage, NewSessionTicket.parse(body))
            return
        raise UnexpectedMessage(
            f"{HandshakeType(msg_type)} in state {self.state.value} at {epoch.name}"
        )

    def _on_flight(
        self, stage: _WaitFlight, msg_type: int, body: bytes, raw: bytes
    ) -> bool:
        """The server's encrypted flight, in order; False if out of order."""
        expect = stage.expect
        if expect is ClientState.WAIT_EE:
            if msg_type == HandshakeType.ENCRYPTED_EXTENSIONS:
                self._on_encrypted_extensions(
                    stage, EncryptedExtensions.parse(body), raw
                )
                return True
        elif expect in (ClientState.WAIT_CERT_CR, ClientState.WAIT_CERT):
            if (
                expect is ClientState.WAIT_CERT_CR
                and msg_type == HandshakeType.CERTIFICATE_REQUEST
            ):
                self._on_certificate_request(stage, CertificateRequest.parse(body), raw)
                return True
            if msg_type == HandshakeType.CERTIFICATE:
                self._on_certificate(stage, Certificate.parse(body), raw)
                return True
        elif expect is ClientState.WAIT_CV:
            if msg_type == HandshakeType.CERTIFICATE_VERIFY:
                self._on_certificate_verify(stage, CertificateVerify.parse(body), raw)
                return True
        elif msg_type == HandshakeType.FINISHED:
            self._on_finished(stage, Finished.parse(body), raw)
            return True
        return False

    # ServerHello and HelloRetryRequest -------------------------------------------

    def _check_server_hello_common(
        self, waiting: _WaitServerHello, sh: ServerHello, allowed: set[ExtensionType]
    ) -> SuiteParams:
        hello = waiting.hello
        if sh.legacy_version <= SSL30:
            # RFC 8446 §D.5: "Any endpoint receiving a Hello message with ...
            # ServerHello.legacy_version set to 0x0300 MUST abort the handshake
            # with a protocol_version alert."
            raise ProtocolVersion("ServerHello.legacy_version is SSL 3.0 or older")
        ext.check_unique(sh.extensions)
        versions = sh.extension(E.SUPPORTED_VERSIONS)
        if versions is None:
            raise ProtocolVersion("server does not negotiate TLS 1.3")
        if ext.decode_u16(versions) != TLS13:
            raise IllegalParameter("server selected a version we did not offer")
        if sh.legacy_session_id_echo != hello.legacy_session_id:
            raise IllegalParameter("legacy_session_id_echo does not match")
        if sh.legacy_compression_method != 0:
            raise IllegalParameter("non-zero legacy_compression_method")
        if sh.cipher_suite not in hello.cipher_suites or sh.cipher_suite not in SUITES:
            raise IllegalParameter("server selected a cipher suite we did not offer")
        if self.cipher_suite is not None and sh.cipher_suite != self.cipher_suite:
            raise IllegalParameter("ServerHello cipher suite differs from the HRR's")
        offered = {e.type for e in hello.extensions}
        for extension in sh.extensions:
            if extension.type not in offered and extension.type != E.COOKIE:
                raise UnsupportedExtension(
                    f"unrequested extension {extension.type:#06x}"
                )
            if extension.type not in allowed:
                raise IllegalParameter(
                    f"extension {extension.type:#06x} not allowed here"
                )
        return SUITES[sh.cipher_suite]

    def _on_server_hello(
        self, waiting: _WaitServerHello, sh: ServerHello, raw: bytes
    ) -> None:
        if sh.is_hello_retry_request:
            self._on_hello_retry_request(waiting, sh, raw)
            return
        suite = self._check_server_hello_common(waiting, sh, _SERVER_HELLO_EXTENSIONS)
        algorithm = suite.hash
        hello = waiting.hello
        if waiting.ech is not None:
            hello = self._decide_ech(waiting.ech, sh, suite, hello)
        psk: bytes | None = None
        selected = sh.extension(E.PRE_SHARED_KEY)
        if selected is not None:
            session = waiting.session
            if self.ech_status is ECHStatus.REJECTED:
                # The outer hello only had a GREASE PSK (ECH-49).
                raise IllegalParameter("PSK selected although ECH was rejected")
            if session is None or ext.decode_u16(selected) != 0:
                raise IllegalParameter("server selected a PSK we did not offer")
            if SUITES[session.cipher_suite].hash.name != algorithm.name:
                raise IllegalParameter("server selected a suite the PSK cannot use")
            psk = session.psk
        shared_secret, group = self._server_key_exchange(waiting, sh, suite, psk)
        self._suite = suite
        self.cipher_suite = CipherSuite(sh.cipher_suite)
        self.group = NamedGroup(group) if group is not None else None
        if not waiting.hello_retry:
            self._transcript.set_algorithm(algorithm)
        self._transcript.add(raw)
        hs = EarlySecret.from_psk(algorithm, psk).handshake_secret(shared_secret)
        hello_hash = self._transcript.digest()
        flight = _WaitFlight(
            expect=ClientState.WAIT_EE,
            suite=suite,
            hello=hello,
            ech=waiting.ech,
            handshake_secret=hs,
            client_secret=hs.client_handshake_traffic_secret(hello_hash),
            server_secret=hs.server_handshake_traffic_secret(hello_hash),
            psk_accepted=psk is not None,
            hello_retry=waiting.hello_retry,
            writing_early_data=self.early_data_offered and not waiting.hello_retry,
        )
        self._install(Direction.READ, Epoch.HANDSHAKE, suite, flight.server_secret)
        if self.compatibility_mode and not waiting.ccs_sent:
            self._emit(SendChangeCipherSpec())
        if not flight.writing_early_data:
            # With 0-RTT, early data may go on until our second flight.
            self._install(Direction.WRITE, Epoch.HANDSHAKE, suite, flight.client_secret)
        self._stage = flight

    def _server_key_exchange(
        self,
        waiting: _WaitServerHello,
        sh: ServerHello,
        suite: SuiteParams,
        psk: bytes | None,
    ) -> tuple[bytes, int | None]:
        """The (EC)DHE shared secret and group, or zeros with psk_ke.

        RFC 8446 §4.2.9: the server must pick a mode we listed; psk_ke has
        no key_share in ServerHello and an all-zero (EC)DHE input (§7.1).

        Raises:
            MissingExtension: no key_share where one is needed.
            IllegalParameter: a mode we did not offer, or a share for a
                group we did not send.
        """
        share_data = sh.extension(E.KEY_SHARE)
        modes = self.config.psk_key_exchange_modes
        if share_data is None:
            if psk is None or PskKeyExchangeMode.PSK_KE not in modes:
                raise MissingExtension("ServerHello without key_share")
            return bytes(suite.hash.digest_size), None
        if psk is not None and PskKeyExchangeMode.PSK_DHE_KE not in modes:
            raise IllegalParameter("psk_dhe_ke selected, but we offered psk_ke only")
        entry = ext.decode_server_key_share(share_data)
        share = waiting.key_shares.get(entry.group)
        if share is None:
            raise IllegalParameter("server key share for a group we did not send")
        return share.exchange(entry.key_exchange), entry.group

    def _decide_ech(
        self, offer: ECHOffer, sh: ServerHello, suite: SuiteParams, outer: ClientHello
    ) -> ClientHello:
        """Accepted iff ServerHello.random ends in accept_confirmation (§6.1.4).

        Returns the hello the handshake goes on with: ClientHelloInner if
        accepted, else ClientHelloOuter.
        """
        inner_hello = offer.inner_hello
        if inner_hello is None:
            raise RuntimeError("internal error: no ClientHelloInner")
        offer.inner_transcript.set_algorithm(suite.hash)
        expected = accept_confirmation(
            suite.hash, inner_hello.random, offer.inner_transcript, sh
        )
        received = sh.random[32 - CONFIRMATION_LENGTH :]
        accepted = offer.hrr_accepted is not False and confirmation_matches(
            expected, received
        )
        if offer.hrr_accepted and not accepted:
            raise IllegalParameter("ECH accepted in HRR but not in ServerHello")
        if not accepted:
            self.ech_status = ECHStatus.REJECTED
            return outer
        self.ech_status = ECHStatus.ACCEPTED
        self._transcript = offer.inner_transcript
        return inner_hello

    def _on_hello_retry_request(
        self, waiting: _WaitServerHello, hrr: ServerHello, raw: bytes
    ) -> None:
        if waiting.hello_retry:
            raise UnexpectedMessage("second HelloRetryRequest")
        suite = self._check_server_hello_common(waiting, hrr, _HRR_EXTENSIONS)
        selected_group: int | None = None
        group_data = hrr.extension(E.KEY_SHARE)
        if group_data is not None:
            selected_group = ext.decode_u16(group_data)
            if (
                selected_group not in self.config.groups
                or selected_group in waiting.key_shares
            ):
                raise IllegalParameter("HRR selected a group we cannot or did send")
        cookie_data = hrr.extension(E.COOKIE)
        cookie = ext.decode_cookie(cookie_data) if cookie_data is not None else None
        if selected_group is None and cookie is None:
            raise IllegalParameter("HRR would not change the ClientHello")
        waiting.hello_retry = True
        if self.early_data_offered:
            # "A client MUST NOT include the early_data extension in its
            # followup ClientHello" (§4.2.10): the 0-RTT data is lost.
            self.early_data_status = EarlyDataStatus.REJECTED
        self.cipher_suite = CipherSuite(hrr.cipher_suite)
        self._transcript.set_algorithm(suite.hash)
        self._transcript.rewrite_for_hello_retry()
        self._transcript.add(raw)
        self._check_hrr_ech(waiting.ech, hrr, raw, suite)
        if selected_group is not None:
            waiting.key_shares = {
                selected_group: self.config.key_share_factory(selected_group)
            }
        if waiting.session is not None and (
            SUITES[waiting.session.cipher_suite].hash.name != suite.hash.name
        ):
            waiting.session = None  # the PSK cannot be used with this suite
        # With ECH, ClientHelloInner2 follows from ClientHelloInner1 (§6.1.5).
        base = waiting.ech.inner_hello if waiting.ech else None
        first = base if base is not None else waiting.hello
        second = ClientHello(
            random=first.random,
            legacy_session_id=first.legacy_session_id,
            cipher_suites=first.cipher_suites,
            extensions=self._hello_extensions(waiting.key_shares, cookie),
            legacy_version=first.legacy_version,
        )
        if self.compatibility_mode and not waiting.ccs_sent:
            self._emit(SendChangeCipherSpec())
            waiting.ccs_sent = True
        self._send_client_hello(waiting, second)

    def _check_hrr_ech(
        self, offer: ECHOffer | None, hrr: ServerHello, raw: bytes, suite: SuiteParams
    ) -> None:
        """Read the HRR's ECH confirmation (RFC 9849 §6.1.4, ECH-54, ECH-56)."""
        data = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
        received = parse_hrr_confirmation(data) if data is not None else None
        if offer is None:
            return  # GREASE: syntax checked, value ignored (ECH-71)
        inner_hello = offer.inner_hello
        if inner_hello is None:
            raise RuntimeError("internal error: no ClientHelloInner")
        transcript = offer.inner_transcript
        transcript.set_algorithm(suite.hash)
        transcript.rewrite_for_hello_retry()
        if received is None:
            offer.hrr_accepted = False
        else:
            expected = hrr_accept_confirmation(
                suite.hash, inner_hello.random, transcript, hrr
            )
            offer.hrr_accepted = confirmation_matches(expected, received)
        transcript.add(raw)

    # the server's encrypted flight -------------------------------------------------

    def _on_encrypted_extensions(
        self, stage: _WaitFlight, ee: EncryptedExtensions, raw: bytes
    ) -> None:
        ext.check_unique(ee.extensions)
        offered = {e.type for e in stage.hello.extensions}
        for extension in ee.extensions:
            if extension.type not in offered:
                raise UnsupportedExtension(
                    f"unrequested extension {extension.type:#06x}"
                )
            if extension.type in _NOT_IN_EE:
                raise IllegalParameter(
                    f"extension {extension.type:#06x} not allowed in EE"
                )
        alpn = ee.extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
        if alpn is not None:
            names = ext.decode_alpn(alpn)
            if (
                len(names) != 1
                or names[0].decode("latin-1") not in self.config.alpn_protocols
            ):
                raise IllegalParameter(
                    "server selected an ALPN protocol we did not offer"
                )
            self.alpn_protocol = names[0].decode("latin-1")
        sni = ee.extension(E.SERVER_NAME)
        if sni is not None:
            ext.decode_empty(sni)
        if self.quic is not None:
            self._check_quic_extensions(ee)
        self._check_early_data_answer(stage, ee)
        ech_data = ee.extension(E.ENCRYPTED_CLIENT_HELLO)
        if ech_data is not None:
            if self.ech_status is ECHStatus.ACCEPTED:
                raise UnsupportedExtension("retry_configs after ECH was accepted")
            retry_configs = parse_retry_configs(ech_data)  # ECH-61, ECH-71
            if self.ech_status is ECHStatus.REJECTED:
                # Trusted only once the outer handshake is authenticated (ECH-60).
                stage.retry_configs = retry_configs
        self._transcript.add(raw)
        stage.expect = (
            ClientState.WAIT_FINISHED
            if stage.psk_accepted
            else ClientState.WAIT_CERT_CR
        )

    def _check_early_data_answer(
        self, stage: _WaitFlight, ee: EncryptedExtensions
    ) -> None:
        """Did the server accept our 0-RTT data (RFC 8446 §4.2.10)?

        It did if EncryptedExtensions carries early_data (unsolicited ones
        are refused above as unsupported_extension). "If the server has
        supplied an early_data extension, the client MUST verify that the
        server's selected_identity is 0"; the cipher suite and ALPN protocol
        must also be the ticket's, as the server "MUST verify" them.

        Raises:
            DecodeError: the extension has a body.
            IllegalParameter: accepted without our PSK, or with another
                suite or ALPN protocol than the ticket's.
        """
        data = ee.extension(E.EARLY_DATA)
        if not self.early_data_offered or stage.hello_retry:
            return
        if data is None:
            self.early_data_status = EarlyDataStatus.REJECTED
            return
        ext.decode_empty(data)
        session = self._session
        if (
            not stage.psk_accepted
            or session is None
            or session.cipher_suite != stage.suite.suite
            or (session.alpn_protocol or None) != self.alpn_protocol
        ):
            raise IllegalParameter("0-RTT accepted without the ticket's parameters")
        self.early_data_status = EarlyDataStatus.ACCEPTED

    def _check_quic_extensions(self, ee: EncryptedExtensions) -> None:
        """ALPN and transport parameters are required over QUIC (RFC 9001 §8)."""
        quic = self.quic
        if quic is None:
            return
        if self.alpn_protocol is None:
            raise NoApplicationProtocol("QUIC server selected no ALPN (RFC 9001 §8.1)")
        parameters = ee.extension(E.QUIC_TRANSPORT_PARAMETERS)
        if parameters is None:
            raise MissingExtension("no quic_transport_parameters (RFC 9001 §8.2)")
        self.peer_transport_parameters = parameters
        if quic.on_peer_transport_parameters is not None:
            quic.on_peer_transport_parameters(parameters, self.alpn_protocol)

    def _on_certificate_request(
        self, stage: _WaitFlight, request: CertificateRequest, raw: bytes
    ) -> None:
        """RFC 8446 §4.3.2 (in the main handshake; never with a PSK).

        Raises:
            IllegalParameter: a non-empty context ("SHALL be zero length
                unless used for the post-handshake authentication
                exchanges"), or a repeated extension.
            MissingExtension: no signature_algorithms ("MUST be specified").
        """
        if request.certificate_request_context:
            raise IllegalParameter("CertificateRequest context in the handshake")
        ext.check_unique(request.extensions)
        algorithms = request.extension(E.SIGNATURE_ALGORITHMS)
        if algorithms is None:
            raise MissingExtension("CertificateRequest without signature_algorithms")
        ext.decode_u16_list(algorithms)
        authorities = request.extension(E.CERTIFICATE_AUTHORITIES)
        if authorities is not None:
            ext.decode_certificate_authorities(authorities)
        stage.certificate_request = request
        self._transcript.add(raw)
        stage.expect = ClientState.WAIT_CERT

    def _send_client_certificate(self, request: CertificateRequest) -> None:
        """Certificate and, when we have a fitting key, CertificateVerify.

        RFC 8446 §4.4.2: the context echoes the request's. The scheme is the
        first of the request's signature_algorithms our key signs with
        (§4.4.3 "MUST be one of those present"); the chain is sent whatever
        certificate_authorities says, and the server judges it. No key, no
        fitting scheme, or ECH rejected (RFC 9849 §6.1.7, ECH-65):
        an empty Certificate.
        """
        context = request.certificate_request_context
        certified = self.config.client_certificate
        scheme: int | None = None
        if certified is not None and self.ech_status is not ECHStatus.REJECTED:
            data = request.extension(E.SIGNATURE_ALGORITHMS)
            offered = ext.decode_u16_list(data) if data is not None else ()
            scheme = next(
                (s for s in offered if s in certified.signature_schemes), None
            )
        if certified is None or scheme is None:
            self._transcript.add(self._send(Certificate(context, ()), Epoch.HANDSHAKE))
            return
        message = Certificate(
            context, tuple(CertificateEntry(der) for der in certified.chain_der)
        )
        self._transcript.add(self._send(message, Epoch.HANDSHAKE))
        content = signed_content(CLIENT_CONTEXT, self._transcript.digest())
        signature = sign(certified.private_key, scheme, content)
        self._transcript.add(
            self._send(CertificateVerify(scheme, signature), Epoch.HANDSHAKE)
        )

    def _on_certificate(
        self, stage: _WaitFlight, certificate: Certificate, raw: bytes
    ) -> None:
        if certificate.certificate_request_context:
            raise IllegalParameter("server Certificate with a request context")
        if not certificate.certificate_list:
            raise DecodeError("server sent an empty Certificate")
        for entry in certificate.certificate_list:
            for extension in entry.extensions:
                raise UnsupportedExtension(
                    f"unrequested certificate extension {extension.type:#06x}"
                )
        chain = [entry.cert_data for entry in certificate.certificate_list]
        if self.config.verify_certificates:
            leaf = verify_server_chain(
                chain,
                self._verification_name(stage),
                self.config.trusted_certificates(),
                self.config.now(),
            )
        else:
            leaf = parse_leaf(chain[0])
        try:
            leaf.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise BadCertificate("certificate public key does not parse") from None
        stage.peer_certificate = leaf
        self.peer_certificates = tuple(chain)
        self._transcript.add(raw)
        stage.expect = ClientState.WAIT_CV

    def _verification_name(self, stage: _WaitFlight) -> str:
        """The name the certificate must carry: public_name if ECH was rejected."""
        if self.ech_status is ECHStatus.REJECTED and stage.ech is not None:
            return stage.ech.public_name  # RFC 9849 §6.1.7, ECH-65
        if self.server_name is None:
            raise RuntimeError("internal error: verifying without a server name")
        return self.server_name

    def _on_certificate_verify(
        self, stage: _WaitFlight, cv: CertificateVerify, raw: bytes
    ) -> None:
        if cv.algorithm not in self.config.signature_algorithms:
            raise IllegalParameter("CertificateVerify with a scheme we did not offer")
        if stage.peer_certificate is None:
            raise RuntimeError("internal error: no server certificate")
        content = signed_content(SERVER_CONTEXT, self._transcript.digest())
        verify(stage.peer_certificate, cv.algorithm, cv.signature, content)
        self._transcript.add(raw)
        stage.expect = ClientState.WAIT_FINISHED

    def _on_finished(self, stage: _WaitFlight, finished: Finished, raw: bytes) -> None:
        suite = stage.suite
        algorithm = suite.hash
        if len(finished.verify_data) != algorithm.digest_size:
            raise DecodeError("Finished has the wrong length")
        if not verify_finished(
            algorithm,
            stage.server_secret,
            self._transcript.digest(),
            finished.verify_data,
        ):
            raise DecryptError("server Finished does not verify")
        self._transcript.add(raw)
        master = stage.handshake_secret.master_secret()
        server_finished_hash = self._transcript.digest()
        client_ap = master.client_application_traffic_secret(server_finished_hash)
        server_ap = master.server_application_traffic_secret(server_finished_hash)
        self._master = master
        self._server_finished_hash = server_finished_hash
        self._install(Direction.READ, Epoch.APPLICATION, suite, server_ap)
        if stage.writing_early_data:
            if self.early_data_status is EarlyDataStatus.ACCEPTED:
                # RFC 8446 §4.5: sent under the 0-RTT key, then the handshake
                # key; it is part of the transcript (§4.4.1).
                self._transcript.add(self._send(EndOfEarlyData(), Epoch.EARLY_DATA))
            stage.writing_early_data = False
            self._install(Direction.WRITE, Epoch.HANDSHAKE, suite, stage.client_secret)
        if stage.certificate_request is not None:
            self._send_client_certificate(stage.certificate_request)
        verify_data = finished_verify_data(
            algorithm, stage.client_secret, self._transcript.digest()
        )
        self._transcript.add(self._send(Finished(verify_data), Epoch.HANDSHAKE))
        self._install(Direction.WRITE, Epoch.APPLICATION, suite, client_ap)
        if self.ech_status is ECHStatus.REJECTED and stage.ech is not None:
            # RFC 9849 §6.1.6: authenticated for public_name, then abort with
            # ech_required; never report success, drop tickets (ECH-63, ECH-66).
            self.retry_configs = stage.retry_configs
            self._stage = None
            self._emit(Abort(AlertDescription.ECH_REQUIRED))
            self._emit(ECHRejected(self.retry_configs, stage.ech.public_name))
            return
        self._client_finished_hash = self._transcript.digest()
        self._stage = _Connected(suite)
        cipher_suite = self.cipher_suite
        if cipher_suite is None:
            raise RuntimeError("internal error: no cipher suite")
        self._emit(
            HandshakeComplete(
                cipher_suite=cipher_suite,
                group=self.group,
                alpn_protocol=self.alpn_protocol,
                server_name=self.server_name,
                resumed=stage.psk_accepted,
                hello_retry=stage.hello_retry,
                ech_status=self.ech_status,
                early_data=self.early_data_status,
                outer_server_name=stage.ech.public_name if stage.ech else self._sni(),
            )
        )

    # after the handshake ----------------------------------------------------------

    def _on_new_session_ticket(self, stage: _Connected, nst: NewSessionTicket) -> None:
        suite = stage.suite
        if nst.ticket_lifetime > 604800:
            raise IllegalParameter("ticket lifetime over 7 days")
        ext.check_unique(nst.extensions)
        max_early = 0
        early = nst.extension(E.EARLY_DATA)
        if early is not None:
            max_early = ext.decode_u32(early)
        if nst.ticket_lifetime == 0:
            return
        ticket = SessionTicket(
            ticket=nst.ticket,
            psk=resumption_psk(
                suite.hash, self.resumption_master_secret, nst.ticket_nonce
            ),
            cipher_suite=suite.suite,
            server_name=self.server_name,
            alpn_protocol=self.alpn_protocol,
            ticket_age_add=nst.ticket_age_add,
            lifetime=nst.ticket_lifetime,
            received_at=self.config.now(),
            max_early_data_size=max_early,
        )
        self.session_tickets.append(ticket)
        self._emit(SessionTicketReceived(ticket))


__all__ = ["ClientHandshake", "ClientState"]
