"""The TLS 1.3 server handshake with ECH (RFC 8446 §4 and §A.2, RFC 9849 §7).

:class:`ServerHandshake` takes the client's handshake messages and answers
with outputs (:mod:`ech.tls.handshake`); it never sees a record or packet.
ECH is decided before anything else (RFC 9849 §7.1). The server's flight is
built in named steps, read top-down as Go's ``serverHandshakeStateTLS13``:
:meth:`~ServerHandshake._send_server_hello`,
:meth:`~ServerHandshake._send_encrypted_extensions`,
:meth:`~ServerHandshake._send_certificate`, :meth:`~ServerHandshake._send_finished`.
Each state keeps its own data:

* :class:`_WaitClientHello`: WAIT_CH, or WAIT_CH2 with what the
  HelloRetryRequest fixed;
* :class:`_WaitClientFinished`: what the client's second flight needs
  (WAIT_EOED with 0-RTT accepted, WAIT_CERT and WAIT_CV with a
  CertificateRequest, WAIT_FINISHED);
* :class:`_Connected`: after it, for tickets.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ech.confirmation import (
    accept_confirmation,
    hello_retry_with_confirmation,
    hrr_accept_confirmation,
    random_with_confirmation,
    server_hello_with_confirmation,
    server_hello_with_confirmation_zeroed,
)
from ech.errors import (
    CertificateRequired,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersion,
    UnexpectedMessage,
    UnrecognizedName,
    UnsupportedExtension,
)
from ech.events import ECHStatus, HandshakeComplete
from ech.extension import (
    CONFIRMATION_LENGTH,
    encode_retry_configs,
    parse_client_hello_extension,
)
from ech.server.config import ServerConfig
from ech.server.ech import (
    ECHAccepted,
    ECHRejectReason,
    open_client_hello,
    open_second_client_hello,
    rejection_reason,
)
from ech.server.events import ForwardToBackend
from ech.server.tickets import TicketState, open_ticket, seal_ticket
from ech.tls import extensions as ext
from ech.tls.certificates import CertifiedKey, verify_client_chain
from ech.tls.enums import (
    SSL30,
    TLS13,
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    PskKeyExchangeMode,
)
from ech.tls.events import EarlyDataStatus
from ech.tls.extensions import Extension, KeyShareEntry, OfferedPsks, PskIdentity
from ech.tls.groups import SUPPORTED_GROUPS, check_share, respond_to_key_share
from ech.tls.handshake import (
    Direction,
    Epoch,
    Handshake,
    SendChangeCipherSpec,
    SkipEarlyData,
)
from ech.tls.key_schedule import (
    EarlySecret,
    HandshakeSecret,
    finished_verify_data,
    hmac_bytes,
    resumption_psk,
    verify_finished,
)
from ech.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    NewSessionTicket,
    ServerHello,
)
from ech.tls.quic import QuicOptions, QuicProtocolViolation
from ech.tls.signatures import (
    CERTIFICATE_SIGNATURE_SCHEMES,
    CLIENT_CONTEXT,
    SERVER_CONTEXT,
    SUPPORTED_SIGNATURE_SCHEMES,
    signed_content,
    verify,
)
from ech.tls.suites import SUITES, SuiteParams, check_quic_cipher_suites
from ech.tls.transcript import Transcript
from ech.tls.wire import frame_handshake

E = ExtensionType


def _check_legacy_version(legacy_version: int) -> None:
    """RFC 8446 §D.5: SSL 3.0 and older are refused outright.

    "Any endpoint receiving a Hello message with ClientHello.legacy_version
    or ServerHello.legacy_version set to 0x0300 MUST abort the handshake
    with a protocol_version alert"; lower values name versions older still.

    Raises:
        ProtocolVersion: ``legacy_version`` is 0x0300 or lower.
    """
    if legacy_version <= SSL30:
        raise ProtocolVersion(
            f"legacy_version {legacy_version:#06x} (SSL 3.0 or older)"
        )


def _host_name(server_name: bytes, *, inner: bool) -> str:
    """The host_name of a server_name extension (RFC 6066 §3).

    The name in ClientHelloInner must be a valid DNS host name
    (:func:`ech.tls.extensions.check_host_name`): it comes from an ECH
    client, and it is what the server routes on. A cleartext hello's name
    is only required to be ASCII: real clients send what RFC 6066 forbids
    (GnuTLS's ``kdig @127.0.0.1`` sends the literal address), and refusing
    them would gain nothing, since the name only selects a certificate.

    Raises:
        DecodeError: the extension is malformed.
        IllegalParameter: the name is not ASCII, or (inner) not a host name.
    """
    name = ext.decode_server_name(server_name)
    if inner:
        ext.check_host_name(name)
    return name


def certificate_request_for(config: ServerConfig) -> CertificateRequest | None:
    """The CertificateRequest ``config`` sends in full handshakes, or None.

    Sent when ``ServerConfig.client_ca`` names CAs: an empty
    certificate_request_context ("SHALL be zero length unless used for the
    post-handshake authentication exchanges", RFC 8446 §4.3.2), the schemes
    we verify CertificateVerify with (signature_algorithms, which "MUST be
    specified"), the ones we accept inside chains
    (signature_algorithms_cert) and the CAs' names (certificate_authorities,
    §4.2.4), so a client holding several certificates can choose. Never sent
    with a PSK (the caller's rule). With ECH it travels in the inner
    handshake like the rest of the flight.
    """
    if not config.client_ca:
        return None
    return CertificateRequest(
        b"",
        (
            Extension(
                E.SIGNATURE_ALGORITHMS,
                ext.encode_u16_vector(SUPPORTED_SIGNATURE_SCHEMES),
            ),
            Extension(
                E.SIGNATURE_ALGORITHMS_CERT,
                ext.encode_u16_vector(CERTIFICATE_SIGNATURE_SCHEMES),
            ),
            Extension(
                E.CERTIFICATE_AUTHORITIES,
                ext.encode_certificate_authorities(
                    [ca.subject.public_bytes() for ca in config.client_ca]
                ),
            ),
        ),
    )


class NameRequiresECH(UnrecognizedName):
    """``ServerConfig.require_ech``: this name is served only with ECH accepted."""


class ServerState(enum.Enum):
    """RFC 8446 §A.2 server states (the sending states are transient)."""

    WAIT_CH = "wait_ch"
    WAIT_CH2 = "wait_ch2"
    #: 0-RTT accepted: early data, then EndOfEarlyData (RFC 8446 §4.5).
    WAIT_EOED = "wait_eoed"
    #: Our CertificateRequest is out: the client's Certificate comes first.
    WAIT_CERT = "wait_cert"
    #: The client sent certificates: its CertificateVerify comes next.
    WAIT_CV = "wait_cv"
    WAIT_FINISHED = "wait_finished"
    CONNECTED = "connected"
    #: Split mode: the hello went to a backend; see :mod:`ech.server.split`.
    FORWARDED = "forwarded"


@dataclass(frozen=True, slots=True)
class _Retry:
    """What the first ClientHello fixed, kept across a HelloRetryRequest."""

    suite: SuiteParams
    group: int
    cookie: bytes | None


@dataclass
class _WaitClientHello:
    """WAIT_CH, or WAIT_CH2 when ``retry`` is set."""

    retry: _Retry | None = None


@dataclass(frozen=True, slots=True)
class _Hello:
    """What one acceptable ClientHello settled: the flight is built from it."""

    client_hello: ClientHello
    suite: SuiteParams
    #: None with psk_ke: no (EC)DHE.
    group: int | None
    client_share: bytes | None
    psk: bytes | None
    first: bool
    #: The client offered 0-RTT: whether we read it.
    early_data: EarlyDataStatus = EarlyDataStatus.NOT_OFFERED


@dataclass(frozen=True, slots=True)
class _Psk:
    """The ticket a ClientHello offered that we will resume (RFC 8446 §4.2.11)."""

    psk: bytes = field(repr=False)
    state: TicketState
    identity: PskIdentity
    binder: bytes = field(repr=False)
    mode: int


@dataclass(frozen=True, slots=True)
class _HandshakeKeys:
    """What ServerHello made (RFC 8446 §7.1): the secret and both traffic keys."""

    secret: HandshakeSecret
    client: bytes
    server: bytes


@dataclass
class _WaitClientFinished:
    """WAIT_CERT, WAIT_CV or WAIT_FINISHED: what the client's flight needs."""

    suite: SuiteParams
    client_secret: bytes
    client_application_secret: bytes
    expect: ServerState
    #: Our CertificateRequest, when we sent one.
    request: CertificateRequest | None = None
    #: The client's validated chain, leaf first, until its CertificateVerify.
    client_chain: tuple[x509.Certificate, ...] = ()
    #: What follows EndOfEarlyData when 0-RTT was accepted.
    after_early: ServerState = ServerState.WAIT_FINISHED


@dataclass
class _Connected:
    """After the client's Finished: tickets may be sent."""

    suite: SuiteParams


class _Forwarded:
    """Split mode: a backend completes this handshake."""


_Stage = _WaitClientHello | _WaitClientFinished | _Connected | _Forwarded


class ServerHandshake(Handshake):
    """One TLS 1.3 server handshake, client-facing or backend (RFC 9849 §7).

    Args:
        config: certificates, keys and preferences.
        quic: run over QUIC (RFC 9001 §8): require the client's transport
            parameters and ALPN, send ours, refuse compatibility mode.
    """

    def __init__(
        self, config: ServerConfig, *, quic: QuicOptions | None = None
    ) -> None:
        super().__init__()
        if quic is not None and not config.alpn_protocols:
            raise ValueError("QUIC needs ALPN protocols to serve (RFC 9001 §8.1)")
        self.config = config
        self.quic = quic
        #: What we choose from: over QUIC, only what QUIC packet protection
        #: can use (RFC 9001 §5.3: never CCM_8).
        self.cipher_suites: tuple[int, ...] = (
            tuple(config.cipher_suites)
            if quic is None
            else check_quic_cipher_suites(config.cipher_suites)
        )
        #: The client's quic_transport_parameters, over QUIC.
        self.peer_transport_parameters: bytes | None = None
        self._stage: _Stage = _WaitClientHello()
        self._transcript = Transcript()
        self.server_name: str | None = None
        self.cipher_suite: CipherSuite | None = None
        self.group: NamedGroup | None = None
        self.alpn_protocol: str | None = None
        self.resumed = False
        self.hello_retry = False
        #: The ClientHello the handshake went on with (ClientHelloInner if
        #: ECH was accepted).
        self.client_hello: ClientHello | None = None
        self.ech_status = ECHStatus.NOT_OFFERED
        #: Why an offered ECH was not accepted (for logs and metrics only).
        self.ech_reason: ECHRejectReason | None = None
        self.outer_server_name: str | None = None
        #: What became of the client's 0-RTT data (RFC 8446 §4.2.10).
        self.early_data = EarlyDataStatus.NOT_OFFERED
        self._client_hello_hash = b""
        #: The client's answer to our CertificateRequest, if we sent one.
        self.client_certificate: Certificate | None = None
        #: The client's authenticated chain, leaf first (RFC 8446 §4.4.2.4):
        #: validated and proven by CertificateVerify; on a resumed
        #: connection, the leaf the ticket's handshake authenticated.
        self.client_certificate_chain: tuple[x509.Certificate, ...] = ()
        self._ech: ECHAccepted | None = None

    @property
    def state(self) -> ServerState:
        """Where the handshake is (RFC 8446 §A.2)."""
        stage = self._stage
        if isinstance(stage, _WaitClientHello):
            return ServerState.WAIT_CH if stage.retry is None else ServerState.WAIT_CH2
        if isinstance(stage, _WaitClientFinished):
            return stage.expect
        if isinstance(stage, _Connected):
            return ServerState.CONNECTED
        return ServerState.FORWARDED

    # dispatch -----------------------------------------------------------------

    def handle_message(self, epoch: Epoch, msg_type: int, body: bytes) -> None:
        """Process one client message (RFC 8446 §A.2); see :class:`Handshake`."""
        stage = self._stage
        raw = frame_handshake(msg_type, body)
        if isinstance(stage, _WaitClientHello):
            if msg_type == HandshakeType.CLIENT_HELLO and epoch is Epoch.INITIAL:
                self._on_client_hello(stage, ClientHello.parse(body), raw)
                return
        elif (
            isinstance(stage, _WaitClientFinished)
            and stage.expect is ServerState.WAIT_EOED
        ):
            if (
                msg_type == HandshakeType.END_OF_EARLY_DATA
                and epoch is Epoch.EARLY_DATA
            ):
                self._on_end_of_early_data(stage, EndOfEarlyData.parse(body), raw)
                return
        elif isinstance(stage, _WaitClientFinished) and epoch is Epoch.HANDSHAKE:
            expect = stage.expect
            if expect is ServerState.WAIT_CERT:
                if msg_type == HandshakeType.CERTIFICATE:
                    self._on_client_certificate(stage, Certificate.parse(body), raw)
                    return
            elif expect is ServerState.WAIT_CV:
                if msg_type == HandshakeType.CERTIFICATE_VERIFY:
                    self._on_client_certificate_verify(
                        stage, CertificateVerify.parse(body), raw
                    )
                    return
            elif msg_type == HandshakeType.FINISHED:
                self._on_finished(stage, Finished.parse(body), raw)
                return
        raise UnexpectedMessage(
            f"{HandshakeType(msg_type)} in state {self.state.value} at {epoch.name}"
        )

    # ClientHello ----------------------------------------------------------------

    def _on_client_hello(
        self, stage: _WaitClientHello, ch: ClientHello, raw: bytes
    ) -> None:
        _check_legacy_version(ch.legacy_version)
        ext.check_unique(ch.extensions)
        retry = stage.retry
        if retry is None:
            self.client_random = ch.random
        # RFC 9849 §7.1: decide ECH before negotiating anything (ECH-75).
        inner = self._process_ech(ch, first=retry is None)
        if inner is not None:
            ch = inner
            raw = ch.framed()
            _check_legacy_version(ch.legacy_version)
            ext.check_unique(ch.extensions)
            if self._forward(ch, raw, first=retry is None):
                return
        self.client_hello = ch
        if self.quic is not None and ch.legacy_session_id:
            # RFC 9001 §8.4: no middlebox compatibility mode over QUIC.
            raise QuicProtocolViolation("ClientHello with a legacy_session_id")
        if ch.legacy_compression_methods != b"\x00":
            raise IllegalParameter("legacy_compression_methods must be [null]")
        versions = ch.extension(E.SUPPORTED_VERSIONS)
        if versions is None or TLS13 not in ext.decode_client_versions(versions):
            raise ProtocolVersion("client does not offer TLS 1.3")
        if (
            ch.has_extension(E.PRE_SHARED_KEY)
            and ch.extensions[-1].type != E.PRE_SHARED_KEY
        ):
            raise IllegalParameter("pre_shared_key is not the last extension")
        suite = self._select_suite(ch, retry)
        group: int | None = None
        client_share: bytes | None = None
        psk_ke = self._psk_mode(ch) == PskKeyExchangeMode.PSK_KE
        if not psk_ke:
            # (EC)DHE whatever the PSK: a HelloRetryRequest comes first.
            group, client_share = self._select_group(ch, retry)
            if client_share is None:
                self._send_hello_retry_request(stage, ch, raw, suite, group)
                return
        self._check_retry_consistency(ch, retry)
        sni = ch.extension(E.SERVER_NAME)
        accepted = self.ech_status is ECHStatus.ACCEPTED
        self.server_name = _host_name(sni, inner=accepted) if sni is not None else None
        self._check_require_ech()
        self.alpn_protocol = self._select_alpn(ch)
        if self.quic is not None:
            self._check_quic_extensions(ch, self.quic)
        self._transcript.set_algorithm(suite.hash)
        psk = self._choose_psk(ch, raw, suite)
        if psk_ke and psk is None:
            # psk_ke preferred but the ticket is not taken: a full handshake.
            group, client_share = self._select_group(ch, retry)
            if client_share is None:
                self._send_hello_retry_request(stage, ch, raw, suite, group)
                return
        # With psk_ke and the ticket taken: no (EC)DHE at all (RFC 8446 §4.2.9).
        if psk is not None:
            self._resume(psk)
        self._suite = suite
        self.cipher_suite = suite.suite
        self.group = NamedGroup(group) if group is not None else None
        early = self._accept_early_data(ch, suite, psk, first=retry is None)
        if retry is None:  # after HRR it stays rejected
            self.early_data = early
        self._transcript.add(raw)
        if early is EarlyDataStatus.ACCEPTED:
            self._client_hello_hash = self._transcript.digest()
        self._send_server_flight(
            _Hello(
                ch,
                suite,
                group,
                client_share,
                psk.psk if psk is not None else None,
                first=retry is None,
                early_data=early,
            )
        )

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        """Apply ECH to a ClientHello; return ClientHelloInner if accepted."""
        if first:
            sni = ch.extension(E.SERVER_NAME)
            self.outer_server_name = _host_name(sni, inner=False) if sni else None
        data = ch.extension(E.ENCRYPTED_CLIENT_HELLO)
        if not first:
            if self._ech is not None:
                return open_second_client_hello(ch, self._ech)
            return None  # rejected or absent on CH1: no decryption (ECH-84)
        if data is None:
            return None
        offer = parse_client_hello_extension(data)
        if offer is None:
            if not self.config.ech_backend:
                raise IllegalParameter("inner ECH extension from the network (ECH-73)")
            self.ech_status = ECHStatus.ACCEPTED  # we are the backend (§7.2)
            return None
        config = self.config
        if config.ech_backend and not config.ech_keys:
            # A split-mode backend only ever sees inner hellos (§7, ECH-73).
            raise IllegalParameter("outer ECH extension sent to a backend")
        self.ech_status = ECHStatus.REJECTED
        try:
            opened = open_client_hello(
                ch,
                offer,
                config.ech_key_index,
                all_keys=config.ech_keys,
                trial_decryption=config.ech_trial_decryption,
            )
        except (DecodeError, IllegalParameter):
            # Decrypted, so not a rejection: the inner hello itself was bad
            # (RFC 9849 §7.1, Appendix A), and the handshake ends with it.
            self.ech_status = ECHStatus.OFFERED
            self.ech_reason = ECHRejectReason.MALFORMED_INNER
            raise
        if opened is None:
            self.ech_reason = rejection_reason(
                offer, config.ech_key_index, has_keys=bool(config.ech_keys)
            )
            return None
        self.ech_status = ECHStatus.ACCEPTED
        inner, self._ech = opened
        return inner

    def _forward(self, inner: ClientHello, raw: bytes, *, first: bool) -> bool:
        """Split mode: hand an accepted inner hello to its backend (§3.1, §7.1).

        Only the first ClientHello is routed; after a backend's HRR the
        relay (:class:`ech.server.split.SplitRelay`) decrypts the second.
        """
        if not first or self._ech is None or not self.config.backends:
            return False
        sni = inner.extension(E.SERVER_NAME)
        if sni is None:
            return False
        name = _host_name(sni, inner=True)
        backend = self.config.backends.get(name.lower())
        if backend is None:
            return False  # served here: shared mode for this name
        self.server_name = name
        self.client_hello = inner
        self._stage = _Forwarded()
        # The carrier adds the client bytes it has not parsed yet.
        self._emit(
            ForwardToBackend(
                backend=backend,
                server_name=name,
                outer_server_name=self.outer_server_name,
                inner_hello=raw,
                accepted=self._ech,
                pending=b"",
            )
        )
        return True

    def _check_require_ech(self) -> None:
        """Refuse a protected name reached without ECH, before our flight exists."""
        policy, name = self.config.require_ech, self.server_name
        if policy is None or name is None or self.ech_status is ECHStatus.ACCEPTED:
            return
        if policy.protects(name, self.config):
            raise NameRequiresECH(f"{name} requires ECH")

    def _select_suite(self, ch: ClientHello, retry: _Retry | None) -> SuiteParams:
        if retry is not None:
            # RFC 8446 §4.1.4: the same suite as in the HelloRetryRequest.
            if retry.suite.suite not in ch.cipher_suites:
                raise IllegalParameter("second ClientHello dropped the HRR's suite")
            return retry.suite
        for suite in self.cipher_suites:
            if suite in ch.cipher_suites and suite in SUITES:
                return SUITES[suite]
        raise HandshakeFailure("no cipher suite in common")

    def _select_group(
        self, ch: ClientHello, retry: _Retry | None
    ) -> tuple[int, bytes | None]:
        """Our group and the client's share for it (None: HelloRetryRequest)."""
        groups_data = ch.extension(E.SUPPORTED_GROUPS)
        shares_data = ch.extension(E.KEY_SHARE)
        if groups_data is None or shares_data is None:
            # We support only psk_dhe_ke and certificates with (EC)DHE (§9.2).
            raise MissingExtension("supported_groups and key_share are required")
        client_groups = ext.decode_u16_list(groups_data)
        shares: dict[int, bytes] = {}
        for entry in ext.decode_client_key_shares(shares_data):
            # RFC 8446 §4.2.8: "Clients MUST NOT offer any KeyShareEntry values
            # for groups not listed in the client's supported_groups extension.
            # Servers MAY check for violations of these rules and abort the
            # handshake with an illegal_parameter alert": we check, and each
            # share's length for its group (unknown groups are ignored).
            if entry.group not in client_groups or entry.group in shares:
                raise IllegalParameter("key share not in supported_groups, or repeated")
            check_share(entry.group, entry.key_exchange)
            shares[entry.group] = entry.key_exchange
        if retry is not None:
            if list(shares) != [retry.group]:
                raise IllegalParameter("second ClientHello lacks the requested share")
            return retry.group, shares[retry.group]
        ours = [g for g in self.config.groups if g in SUPPORTED_GROUPS]
        for group in ours:
            if group in shares:
                return group, shares[group]
        for group in ours:
            if group in client_groups:
                return group, None
        raise HandshakeFailure("no key exchange group in common")

    def _send_hello_retry_request(
        self,
        stage: _WaitClientHello,
        ch: ClientHello,
        raw: bytes,
        suite: SuiteParams,
        group: int,
    ) -> None:
        if stage.retry is not None:
            raise IllegalParameter("second ClientHello still has no usable key share")
        self._transcript.set_algorithm(suite.hash)
        self._transcript.add(raw)
        extensions = [Extension(E.KEY_SHARE, ext.encode_u16(group))]
        # A cookie binds the retry to ClientHello1; a stateless server could
        # rebuild the transcript from it (RFC 8446 §4.2.2). We keep state, so
        # it is optional, and left out when the client offered ECH: a cleartext
        # cookie can tell backends apart (RFC 9849 §10.8), and Go 1.27's client
        # references it from ClientHelloInner2 without copying it into
        # ClientHelloOuter2, which then fails reconstruction.
        if self.config.hello_retry_cookie and self.ech_status is ECHStatus.NOT_OFFERED:
            cookie = hmac_bytes(
                suite.hash, self.config.cookie_key, self._transcript.digest()
            )
            extensions.append(Extension(E.COOKIE, ext.encode_cookie(cookie)))
        extensions.append(Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(TLS13)))
        self._transcript.rewrite_for_hello_retry()
        hrr = ServerHello(
            random=HELLO_RETRY_REQUEST_RANDOM,
            legacy_session_id_echo=ch.legacy_session_id,
            cipher_suite=suite.suite,
            extensions=tuple(extensions),
        )
        if self.config.server_hello_hook is not None:
            hrr = self.config.server_hello_hook(hrr)
        if self.ech_status is ECHStatus.ACCEPTED:
            confirmation = hrr_accept_confirmation(
                suite.hash, ch.random, self._transcript, hrr
            )
            if self.config.ech_confirmation_hook is not None:
                confirmation = self.config.ech_confirmation_hook(hrr, confirmation)
            hrr = hello_retry_with_confirmation(hrr, confirmation)  # §7.2.1
        elif self.ech_status is ECHStatus.REJECTED:
            # Random bytes, so rejection looks like acceptance (§7.1, ECH-81).
            hrr = hello_retry_with_confirmation(
                hrr, self.config.random(CONFIRMATION_LENGTH)
            )
        self._transcript.add(self._send(hrr, Epoch.INITIAL))
        if ch.legacy_session_id:
            self._emit(SendChangeCipherSpec())  # RFC 8446 §D.4
        if ch.has_extension(E.EARLY_DATA) and self.quic is None:
            # "Request that the client send another ClientHello ... The
            # server then ignores early data by skipping all records with an
            # external content type of application_data" (§4.2.10).
            self.early_data = EarlyDataStatus.REJECTED
            self._emit(SkipEarlyData(self._early_data_skip_budget(), trial=False))
        # Expect back the cookie actually sent (a hook may have changed it).
        sent_cookie = hrr.extension(E.COOKIE)
        cookie_sent = ext.decode_cookie(sent_cookie) if sent_cookie else None
        stage.retry = _Retry(suite, group, cookie_sent)
        self.hello_retry = True

    def _check_retry_consistency(self, ch: ClientHello, retry: _Retry | None) -> None:
        if retry is None:
            return
        cookie = ch.extension(E.COOKIE)
        if retry.cookie is None:
            if cookie is not None:
                raise IllegalParameter("second ClientHello with an unasked cookie")
        elif cookie is None:
            raise MissingExtension("second ClientHello without the cookie")
        elif not hmac.compare_digest(ext.decode_cookie(cookie), retry.cookie):
            raise IllegalParameter("second ClientHello with a wrong cookie")
        if ch.has_extension(E.EARLY_DATA):
            raise IllegalParameter("early_data after HelloRetryRequest")

    def _select_alpn(self, ch: ClientHello) -> str | None:
        data = ch.extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION)
        if data is None or not self.config.alpn_protocols:
            return None
        offered = ext.decode_alpn(data)
        for name in self.config.alpn_protocols:
            if name.encode() in offered:
                return name
        raise NoApplicationProtocol("no ALPN protocol in common")  # RFC 7301 §3.2

    def _check_quic_extensions(self, ch: ClientHello, quic: QuicOptions) -> None:
        """ALPN and transport parameters are required over QUIC (RFC 9001 §8)."""
        if self.alpn_protocol is None:
            raise NoApplicationProtocol("QUIC client offered no ALPN (RFC 9001 §8.1)")
        parameters = ch.extension(E.QUIC_TRANSPORT_PARAMETERS)
        if parameters is None:
            raise MissingExtension("no quic_transport_parameters (RFC 9001 §8.2)")
        self.peer_transport_parameters = parameters
        if quic.on_peer_transport_parameters is not None:
            quic.on_peer_transport_parameters(parameters, self.alpn_protocol)

    def _select_certificate(self, ch: ClientHello) -> tuple[CertifiedKey, int]:
        """A certificate for the name, and the scheme of its CertificateVerify.

        The scheme must be in signature_algorithms (RFC 8446 §4.2.3); among
        those, a chain "signed only via the indicated supported algorithms"
        of signature_algorithms_cert (or signature_algorithms) is preferred,
        but when none is, "the server SHOULD continue the handshake by
        sending the client a certificate chain of its choice" (§4.4.2.2).
        Unknown schemes in either list are ignored.
        """
        algorithms = ch.extension(E.SIGNATURE_ALGORITHMS)
        if algorithms is None:
            raise MissingExtension("signature_algorithms is required")
        offered = ext.decode_u16_list(algorithms)
        cert_algorithms = ch.extension(E.SIGNATURE_ALGORITHMS_CERT)
        for_chains = (
            set(ext.decode_u16_list(cert_algorithms))
            if cert_algorithms is not None
            else set(offered)
        )
        named = [
            c
            for c in self.config.certificates
            if self.server_name and c.matches(self.server_name)
        ]
        candidates = (*named, *self.config.certificates)
        fitting = [
            (candidate, scheme)
            for candidate in candidates
            for scheme in candidate.signature_schemes
            if scheme in offered
        ]
        for candidate, scheme in fitting:
            if candidate.chain_signed_with(for_chains):
                return candidate, scheme
        if fitting:
            return fitting[0]
        raise HandshakeFailure("no certificate fits the client's signature_algorithms")

    # PSK resumption ----------------------------------------------------------------

    def _choose_psk(
        self, ch: ClientHello, raw: bytes, suite: SuiteParams
    ) -> _Psk | None:
        """The offered ticket we resume, if any, and the key exchange mode.

        Only the first identity is considered (selected_identity 0, as 0-RTT
        requires). The mode is the first of ``ServerConfig.
        psk_key_exchange_modes`` that the client lists (RFC 8446 §4.2.9:
        "Servers MUST NOT select a key exchange mode that is not listed by
        the client"). Nothing changes until :meth:`_resume`: a
        HelloRetryRequest may still come, after which the second ClientHello
        is judged afresh.

        Raises:
            MissingExtension: pre_shared_key without psk_key_exchange_modes.
            DecryptError: the binder does not verify (§4.2.11.2).
        """
        data = ch.extension(E.PRE_SHARED_KEY)
        if data is None:
            return None
        modes_data = ch.extension(E.PSK_KEY_EXCHANGE_MODES)
        if modes_data is None:
            raise MissingExtension("pre_shared_key without psk_key_exchange_modes")
        offered = OfferedPsks.parse(data)
        mode = self._psk_mode(ch)
        if mode is None or not self.config.session_tickets:
            return None
        identity = offered.identities[0]
        state = open_ticket(self.config.ticket_key, identity.identity)
        if state is None:
            return None
        if SUITES.get(state.cipher_suite) is None or (
            SUITES[state.cipher_suite].hash.name != suite.hash.name
        ):
            return None
        now_ms = int(self.config.now() * 1000)
        if not 0 <= now_ms - state.issued_at_ms < state.lifetime * 1000:
            return None
        if state.server_name != (self.server_name or ""):
            return None
        if self.config.require_client_certificate and not state.client_certificate:
            return None  # authenticate the client with a full handshake
        truncated = raw[: len(raw) - len(offered.encode_binders())]
        transcript = self._transcript.copy()
        transcript.add(truncated)
        binder_key = EarlySecret.from_psk(suite.hash, state.psk).binder_key()
        if not verify_finished(
            suite.hash, binder_key, transcript.digest(), offered.binders[0]
        ):
            raise DecryptError("PSK binder does not verify")
        return _Psk(state.psk, state, identity, offered.binders[0], mode)

    def _psk_mode(self, ch: ClientHello) -> int | None:
        """Our first psk_key_exchange_modes entry the client lists (§4.2.9)."""
        data = ch.extension(E.PSK_KEY_EXCHANGE_MODES)
        if data is None or not ch.has_extension(E.PRE_SHARED_KEY):
            return None
        client_modes = ext.decode_psk_modes(data)
        return next(
            (m for m in self.config.psk_key_exchange_modes if m in client_modes), None
        )

    def _resume(self, psk: _Psk) -> None:
        """Take the ticket: a resumed connection keeps the original's client."""
        self.resumed = True
        if psk.state.client_certificate:
            # The ticket's handshake authenticated this client.
            self.client_certificate_chain = (
                x509.load_der_x509_certificate(psk.state.client_certificate),
            )

    def _accept_early_data(
        self, ch: ClientHello, suite: SuiteParams, psk: _Psk | None, *, first: bool
    ) -> EarlyDataStatus:
        """Whether to read the client's 0-RTT data (RFC 8446 §4.2.10).

        "In order to accept early data, the server MUST have accepted a PSK
        cipher suite and selected the first key offered in the client's
        pre_shared_key extension. In addition, it MUST verify that the
        following values are the same as those associated with the selected
        PSK: the TLS version number, the selected cipher suite, the selected
        ALPN protocol, if any." The ticket must allow early data, its age
        must be fresh and the ClientHello new (§8.2, §8.3,
        :class:`~ech.server.anti_replay.AntiReplay`). Over QUIC, never.
        With ECH rejected there is no PSK (the outer one is GREASE), so the
        early data, meant for the hidden name, is declined too.

        Raises:
            DecodeError: an early_data extension with a body.
        """
        data = ch.extension(E.EARLY_DATA)
        if data is None:
            return EarlyDataStatus.NOT_OFFERED
        ext.decode_empty(data)
        config = self.config
        if (
            not first
            or self.quic is not None
            or psk is None
            or config.max_early_data_size == 0
            or psk.state.max_early_data_size == 0
            or psk.state.cipher_suite != suite.suite
            or psk.state.alpn_protocol != (self.alpn_protocol or "")
        ):
            return EarlyDataStatus.REJECTED
        now = config.now()
        client_age_ms = (
            psk.identity.obfuscated_ticket_age - psk.state.ticket_age_add
        ) % (1 << 32)
        server_age_ms = int(now * 1000) - psk.state.issued_at_ms
        if not config.anti_replay.admit(psk.binder, client_age_ms, server_age_ms, now):
            return EarlyDataStatus.REJECTED
        return EarlyDataStatus.ACCEPTED

    # the server's flight, step by step ----------------------------------------------

    def _send_server_flight(self, hello: _Hello) -> None:
        """ServerHello, then EE, [CertificateRequest], [Certificate, CV], Finished."""
        certified = (
            None
            if hello.psk is not None
            else self._select_certificate(hello.client_hello)
        )
        keys = self._send_server_hello(hello)
        self._send_encrypted_extensions(hello.client_hello, hello.early_data)
        # A PSK handshake never asks for a certificate (RFC 8446 §4.3.2).
        request = self.certificate_request() if certified is not None else None
        if request is not None:
            self._transcript.add(self._send(request, Epoch.HANDSHAKE))
        if certified is not None:
            self._send_certificate(*certified)
        self._send_finished(
            keys,
            hello.suite,
            request,
            early_data=hello.early_data is EarlyDataStatus.ACCEPTED,
        )

    def _send_server_hello(self, hello: _Hello) -> _HandshakeKeys:
        """ServerHello (with ECH's confirmation), then the handshake keys."""
        ch, suite, group = hello.client_hello, hello.suite, hello.group
        # Extension order as in RFC 8448's traces; any order is valid.
        extensions: list[Extension] = []
        if hello.psk is not None:
            extensions.append(Extension(E.PRE_SHARED_KEY, ext.encode_u16(0)))
        if group is not None and hello.client_share is not None:
            server_share, shared_secret = self._key_exchange(group, hello.client_share)
            key_share = KeyShareEntry(group, server_share)
            extensions.append(
                Extension(E.KEY_SHARE, ext.encode_server_key_share(key_share))
            )
        else:
            # psk_ke: "If a given secret is not available, then the 0-value
            # consisting of a string of Hash.length bytes set to zeros is
            # used" (RFC 8446 §7.1).
            shared_secret = bytes(suite.hash.digest_size)
        extensions.append(Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(TLS13)))
        # RFC 9849 §7.2: the last 8 bytes of random confirm ECH acceptance.
        # Zeroed from the start, the ServerHello is encoded once, for the
        # confirmation's transcript, and the 8 bytes spliced in after.
        accepted = self.ech_status is ECHStatus.ACCEPTED
        random = self.config.random(32)
        sh = ServerHello(
            random=random_with_confirmation(random) if accepted else random,
            legacy_session_id_echo=ch.legacy_session_id,
            cipher_suite=suite.suite,
            extensions=tuple(extensions),
        )
        if self.config.server_hello_hook is not None:
            sh = self.config.server_hello_hook(sh)
        if accepted:
            sh = server_hello_with_confirmation_zeroed(sh)  # after any hook
            confirmation = accept_confirmation(
                suite.hash, ch.random, self._transcript, sh
            )
            if self.config.ech_confirmation_hook is not None:
                confirmation = self.config.ech_confirmation_hook(sh, confirmation)
            sh = server_hello_with_confirmation(sh, confirmation)
        self._transcript.add(self._send(sh, Epoch.INITIAL))
        if ch.legacy_session_id and hello.first:
            self._emit(SendChangeCipherSpec())  # RFC 8446 §D.4

        hs = EarlySecret.from_psk(suite.hash, hello.psk).handshake_secret(shared_secret)
        hello_hash = self._transcript.digest()
        keys = _HandshakeKeys(
            hs,
            hs.client_handshake_traffic_secret(hello_hash),
            hs.server_handshake_traffic_secret(hello_hash),
        )
        self._install(Direction.WRITE, Epoch.HANDSHAKE, suite, keys.server)
        if hello.early_data is EarlyDataStatus.ACCEPTED and hello.psk is not None:
            # Read the 0-RTT data until EndOfEarlyData (RFC 8446 §4.5, §7.1).
            early = EarlySecret.from_psk(suite.hash, hello.psk)
            self.early_data_limit = self.config.max_early_data_size
            self._install(
                Direction.READ,
                Epoch.EARLY_DATA,
                suite,
                early.client_early_traffic_secret(self._client_hello_hash),
            )
        else:
            self._install(Direction.READ, Epoch.HANDSHAKE, suite, keys.client)
            if hello.early_data is EarlyDataStatus.REJECTED and self.quic is None:
                self._emit(SkipEarlyData(self._early_data_skip_budget(), trial=True))
        return keys

    def _early_data_skip_budget(self) -> int:
        return max(self.config.max_early_data_size, self.config.early_data_skip_limit)

    def _key_exchange(self, group: int, client_share: bytes) -> tuple[bytes, bytes]:
        """Our share and the shared secret (a KEM group encapsulates)."""
        if group == NamedGroup.X25519MLKEM768:
            return respond_to_key_share(group, client_share)
        share = self.config.key_share_factory(group)
        return share.public, share.exchange(client_share)

    def _send_encrypted_extensions(
        self, ch: ClientHello, early_data: EarlyDataStatus
    ) -> None:
        extensions = self._encrypted_extensions(ch)
        if early_data is EarlyDataStatus.ACCEPTED:
            # RFC 8446 §4.2.10: "Return its own early_data extension in
            # EncryptedExtensions, indicating that it intends to process the
            # early data."
            extensions.append(Extension(E.EARLY_DATA, b""))
        ee = EncryptedExtensions(tuple(extensions))
        if self.config.encrypted_extensions_hook is not None:
            ee = self.config.encrypted_extensions_hook(ee)
        self._transcript.add(self._send(ee, Epoch.HANDSHAKE))

    def _encrypted_extensions(self, ch: ClientHello) -> list[Extension]:
        out: list[Extension] = []
        if self.server_name is not None and any(
            c.matches(self.server_name) for c in self.config.certificates
        ):
            out.append(Extension(E.SERVER_NAME, b""))  # RFC 6066 §3
        if self.alpn_protocol is not None:
            out.append(
                Extension(
                    E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
                    ext.encode_alpn([self.alpn_protocol.encode()]),
                )
            )
        if self.quic is not None:
            parameters = self.quic.transport_parameters()
            out.append(Extension(E.QUIC_TRANSPORT_PARAMETERS, parameters))
        retry_configs = self.config.retry_configs
        if self.ech_status is ECHStatus.REJECTED and retry_configs is not None:
            # RFC 9849 §7.1: a server with ECH configs sends them (ECH-81, ECH-84).
            out.append(
                Extension(E.ENCRYPTED_CLIENT_HELLO, encode_retry_configs(retry_configs))
            )
        return out

    def certificate_request(self) -> CertificateRequest | None:
        """The CertificateRequest of a full handshake, or None (RFC 8446 §4.3.2).

        See :func:`certificate_request_for`; a subclass may override it.
        """
        return certificate_request_for(self.config)

    def _send_certificate(self, certified: CertifiedKey, scheme: int) -> None:
        """Certificate and CertificateVerify (RFC 8446 §4.4.2, §4.4.3)."""
        self._send_raw(certified.certificate_message, Epoch.HANDSHAKE)
        self._transcript.add(certified.certificate_message)
        content = signed_content(SERVER_CONTEXT, self._transcript.digest())
        signature = self.config.signer(certified.private_key, scheme, content)
        self._transcript.add(
            self._send(CertificateVerify(scheme, signature), Epoch.HANDSHAKE)
        )

    def _send_finished(
        self,
        keys: _HandshakeKeys,
        suite: SuiteParams,
        request: CertificateRequest | None,
        *,
        early_data: bool = False,
    ) -> None:
        """Our Finished, then the 1-RTT write keys; wait for the client's."""
        verify_data = finished_verify_data(
            suite.hash, keys.server, self._transcript.digest()
        )
        self._transcript.add(self._send(Finished(verify_data), Epoch.HANDSHAKE))
        master = keys.secret.master_secret()
        finished_hash = self._transcript.digest()
        self._master = master
        self._server_finished_hash = finished_hash
        self._install(
            Direction.WRITE,
            Epoch.APPLICATION,
            suite,
            master.server_application_traffic_secret(finished_hash),
        )
        after_early = (
            ServerState.WAIT_CERT if request is not None else ServerState.WAIT_FINISHED
        )
        self._stage = _WaitClientFinished(
            suite,
            keys.client,
            master.client_application_traffic_secret(finished_hash),
            ServerState.WAIT_EOED if early_data else after_early,
            request,
            after_early=after_early,
        )

    # the client's flight -----------------------------------------------------------

    def _on_end_of_early_data(
        self, stage: _WaitClientFinished, eoed: EndOfEarlyData, raw: bytes
    ) -> None:
        """RFC 8446 §4.5: the end of 0-RTT data; the handshake keys follow.

        Being the only handshake message allowed at the 0-RTT epoch (anything
        else there is unexpected_message, as any data after it is), it is
        also in the transcript of the client's Finished (§4.4.1).
        """
        self._transcript.add(raw)
        self._install(Direction.READ, Epoch.HANDSHAKE, stage.suite, stage.client_secret)
        stage.expect = stage.after_early

    def _on_client_certificate(
        self, stage: _WaitClientFinished, certificate: Certificate, raw: bytes
    ) -> None:
        """The answer to our CertificateRequest (RFC 8446 §4.4.2, §4.4.2.4).

        Raises:
            IllegalParameter: the context is not our request's.
            UnsupportedExtension: a CertificateEntry carries an extension
                our request did not ask for (§4.4.2).
            CertificateRequired: no certificate, and one is required.
            BadCertificate, UnknownCA, CertificateExpired,
                UnsupportedCertificate: the chain does not validate
                against ``ServerConfig.client_ca`` (§4.4.2.4, §6.2).
        """
        request = stage.request
        if request is None:
            raise RuntimeError("internal error: a Certificate nobody asked for")
        if certificate.certificate_request_context != (
            request.certificate_request_context
        ):
            raise IllegalParameter("client Certificate with another request context")
        for entry in certificate.certificate_list:
            for extension in entry.extensions:
                # "Extensions in the Certificate message from the client MUST
                # correspond to extensions in the CertificateRequest message."
                raise UnsupportedExtension(
                    f"unrequested certificate extension {extension.type:#06x}"
                )
        self.client_certificate = certificate
        self._transcript.add(raw)
        if not certificate.certificate_list:
            if self.config.require_client_certificate:
                # §4.4.2.4: "the server MAY at its discretion either continue
                # the handshake without client authentication or abort the
                # handshake with a certificate_required alert".
                raise CertificateRequired("the client sent no certificate")
            stage.expect = ServerState.WAIT_FINISHED
            return
        stage.client_chain = verify_client_chain(
            [entry.cert_data for entry in certificate.certificate_list],
            self.config.client_ca,
            self.config.now(),
        )
        stage.expect = ServerState.WAIT_CV

    def _on_client_certificate_verify(
        self, stage: _WaitClientFinished, cv: CertificateVerify, raw: bytes
    ) -> None:
        """The client's proof of its key (RFC 8446 §4.4.3, client context).

        Raises:
            IllegalParameter: a scheme our request did not offer, or one not
                fit for CertificateVerify or for the key.
            DecryptError: the signature does not verify.
        """
        request = stage.request
        offered = request.extension(E.SIGNATURE_ALGORITHMS) if request else None
        if offered is None or cv.algorithm not in ext.decode_u16_list(offered):
            # §4.4.3: "the signature algorithm MUST be one of those present in
            # the supported_signature_algorithms field" of our request.
            raise IllegalParameter("client CertificateVerify with a scheme not offered")
        content = signed_content(CLIENT_CONTEXT, self._transcript.digest())
        verify(stage.client_chain[0], cv.algorithm, cv.signature, content)
        self._transcript.add(raw)
        self.client_certificate_chain = stage.client_chain
        stage.expect = ServerState.WAIT_FINISHED

    def _on_finished(
        self, stage: _WaitClientFinished, finished: Finished, raw: bytes
    ) -> None:
        suite = stage.suite
        if len(finished.verify_data) != suite.hash.digest_size:
            raise DecodeError("Finished has the wrong length")
        expected = finished_verify_data(
            suite.hash, stage.client_secret, self._transcript.digest()
        )
        if not hmac.compare_digest(finished.verify_data, expected):
            raise DecryptError("client Finished does not verify")
        self._transcript.add(raw)
        self._install(
            Direction.READ, Epoch.APPLICATION, suite, stage.client_application_secret
        )
        self._client_finished_hash = self._transcript.digest()
        self._stage = _Connected(suite)
        # Nothing after the client's Finished is hashed, and the HPKE context
        # only ever opens a second ClientHello (§7.1.1): an idle connection
        # keeps neither.
        self._transcript = Transcript()
        self._ech = None
        cipher_suite = self.cipher_suite
        if cipher_suite is None:
            raise RuntimeError("internal error: no cipher suite")
        self._emit(
            HandshakeComplete(
                cipher_suite=cipher_suite,
                group=self.group,
                alpn_protocol=self.alpn_protocol,
                server_name=self.server_name,
                resumed=self.resumed,
                hello_retry=self.hello_retry,
                ech_status=self.ech_status,
                early_data=self.early_data,
                outer_server_name=self.outer_server_name,
                client_certificate_chain=self.client_certificate_chain,
            )
        )
        if self.config.session_tickets:
            for _ in range(self.config.tickets_per_connection):
                self.send_session_ticket()

    # after the handshake ------------------------------------------------------------

    def _ticket_max_early_data(self) -> int:
        """What tickets advertise: 0-RTT is out of scope over QUIC."""
        return self.config.max_early_data_size if self.quic is None else 0

    def _ticket_extensions(self) -> list[Extension]:
        """RFC 8446 §4.6.1: early_data with max_early_data_size, if any."""
        size = self._ticket_max_early_data()
        if not size:
            return []
        return [Extension(E.EARLY_DATA, size.to_bytes(4, "big"))]

    def _client_leaf_der(self) -> bytes:
        chain = self.client_certificate_chain
        return chain[0].public_bytes(serialization.Encoding.DER) if chain else b""

    def send_session_ticket(self) -> None:
        """Issue one more ticket (RFC 8446 §4.6.1)."""
        stage = self._stage
        if not isinstance(stage, _Connected):
            raise RuntimeError("tickets are sent after the handshake")
        suite = stage.suite
        nonce = self.config.random(8)
        age_add = int.from_bytes(self.config.random(4), "big")
        psk = resumption_psk(suite.hash, self.resumption_master_secret, nonce)
        state = TicketState(
            cipher_suite=suite.suite,
            psk=psk,
            issued_at_ms=int(self.config.now() * 1000),
            ticket_age_add=age_add,
            lifetime=self.config.ticket_lifetime,
            server_name=self.server_name or "",
            alpn_protocol=self.alpn_protocol or "",
            client_certificate=self._client_leaf_der(),
            max_early_data_size=self._ticket_max_early_data(),
        )
        ticket = seal_ticket(self.config.ticket_key, self.config.random(12), state)
        self._send(
            NewSessionTicket(
                self.config.ticket_lifetime,
                age_add,
                nonce,
                ticket,
                tuple(self._ticket_extensions()),
            ),
            Epoch.APPLICATION,
        )


__all__ = [
    "NameRequiresECH",
    "ServerHandshake",
    "ServerState",
    "certificate_request_for",
]
