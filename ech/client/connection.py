"""The sans-IO TLS 1.3 client (RFC 8446 §4, state machine of §A.1)."""

from __future__ import annotations

import enum
import ipaddress

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
)

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
from ech.tls.connection import Connection, required
from ech.tls.enums import (
    TLS13,
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    PskKeyExchangeMode,
)
from ech.tls.extensions import Extension, OfferedPsks, PskIdentity
from ech.tls.groups import KeyShare
from ech.tls.key_schedule import (
    EarlySecret,
    HandshakeSecret,
    finished_verify_data,
    resumption_psk,
    verify_finished,
)
from ech.tls.messages import (
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    NewSessionTicket,
    ServerHello,
)
from ech.tls.records import frame_handshake
from ech.tls.session import SessionTicket
from ech.tls.signatures import SERVER_CONTEXT, signed_content, verify
from ech.tls.suites import SUITES, SuiteParams
from ech.tls.transcript import Transcript

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


class ClientConnection(Connection):
    """One TLS 1.3 client connection. Performs no I/O.

    Call :meth:`start`, then pump bytes between :meth:`data_to_send` and
    :meth:`receive_data` until a :class:`~ech.events.HandshakeComplete`.

    Args:
        config: what to offer and whom to trust.
        server_name: the name to ask for (SNI) and to verify the certificate
            against; an IP address is verified but not sent as SNI.
        session: a ticket from an earlier connection to resume with.
        ech_configs: the server's ECHConfigList (from DNS, or retry_configs).
            With a usable config, ``server_name`` travels encrypted in
            ClientHelloInner and ClientHelloOuter names the config's
            public_name; without one, GREASE ECH is sent (RFC 9849 §6.2).
    """

    def __init__(
        self,
        config: ClientConfig,
        server_name: str | None,
        *,
        session: SessionTicket | None = None,
        ech_configs: ECHConfigList | None = None,
    ) -> None:
        super().__init__(config.record_padding)
        if config.verify_certificates and not server_name:
            raise ValueError("server_name is required to verify the certificate")
        self.config = config
        self.server_name = server_name
        self.state = ClientState.START
        self._transcript = Transcript()
        self._key_shares: dict[int, KeyShare] = {}
        self._session = session if self._session_usable(session) else None
        self._hello: ClientHello | None = None
        self._hello_retry = False
        self._ccs_sent = False
        self._psk_accepted = False
        self._handshake_secret: HandshakeSecret | None = None
        self._client_hs_secret = b""
        self._server_hs_secret = b""
        self._certificate_request: CertificateRequest | None = None
        self._peer_key: CertificateIssuerPublicKeyTypes | None = None
        self.cipher_suite: CipherSuite | None = None
        self.group: NamedGroup | None = None
        self.alpn_protocol: str | None = None
        self.session_tickets: list[SessionTicket] = []
        self._ech_config = select_config(ech_configs) if ech_configs else None
        self._ech: ECHOffer | None = None
        self._ech_grease: Extension | None = None
        self.ech_status = ECHStatus.NOT_OFFERED
        if self._ech_config is not None:
            self.ech_status = ECHStatus.OFFERED
        elif ech_configs is not None or config.ech_grease:
            self.ech_status = ECHStatus.GREASE  # checklist #7, #34
        #: The server's retry_configs after a rejection, once authenticated.
        self.retry_configs: ECHConfigList | None = None
        self._pending_retry_configs: ECHConfigList | None = None

    # handshake start -----------------------------------------------------------

    def start(self) -> None:
        """Queue the first ClientHello."""
        if self.state is not ClientState.START:
            raise RuntimeError("start() called twice")
        session_id = self.config.random(32) if self.config.compatibility_mode else b""
        for group in self.config.key_share_groups:
            self._key_shares[group] = self.config.key_share_factory(group)
        if self._ech_config is not None:
            self._ech = ECHOffer.start(self._ech_config, self.config.random)
        hello = ClientHello(
            random=self.config.random(32),
            legacy_session_id=session_id,
            cipher_suites=tuple(self.config.cipher_suites),
            extensions=self._hello_extensions(cookie=None),
        )
        self._send_client_hello(hello)
        self.state = ClientState.WAIT_SH

    def _session_usable(self, session: SessionTicket | None) -> bool:
        return (
            session is not None
            and session.server_name == self.server_name
            and session.cipher_suite in self.config.cipher_suites
            and session.is_valid(self.config.now())
        )

    def _sni(self) -> str | None:
        name = self.server_name
        if name is None:
            return None
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name
        return None  # RFC 6066 §3: literal IP addresses are not sent.

    def _hello_extensions(self, cookie: bytes | None) -> tuple[Extension, ...]:
        config = self.config
        out: list[Extension] = []
        sni = self._sni()
        if sni is not None:
            out.append(Extension(E.SERVER_NAME, ext.encode_server_name(sni)))
        out.append(Extension(E.SUPPORTED_GROUPS, ext.encode_u16_vector(config.groups)))
        out.append(
            Extension(
                E.SIGNATURE_ALGORITHMS,
                ext.encode_u16_vector(config.signature_algorithms),
            )
        )
        if config.alpn_protocols:
            names = [p.encode() for p in config.alpn_protocols]
            out.append(
                Extension(
                    E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.encode_alpn(names)
                )
            )
        out.append(Extension(E.SUPPORTED_VERSIONS, ext.encode_client_versions([TLS13])))
        out.append(
            Extension(
                E.PSK_KEY_EXCHANGE_MODES,
                ext.encode_psk_modes([PskKeyExchangeMode.PSK_DHE_KE]),
            )
        )
        shares = [
            ext.KeyShareEntry(group, share.public)
            for group, share in self._key_shares.items()
        ]
        out.append(Extension(E.KEY_SHARE, ext.encode_client_key_shares(shares)))
        if cookie is not None:
            out.append(Extension(E.COOKIE, ext.encode_cookie(cookie)))
        return tuple(out)

    def _send_client_hello(self, hello: ClientHello) -> None:
        if self.config.client_hello_hook is not None:
            hello = self.config.client_hello_hook(hello)
        offer = self._ech
        if offer is not None:
            hello = with_extension_before_psk(hello, inner_marker())
        elif self.ech_status is ECHStatus.GREASE:
            if self._ech_grease is None:  # the same one after HRR (checklist #70)
                # Sized like a real offer's inner hello, PSK included (#69, #99).
                sized = self._add_psk(hello) if self._session is not None else hello
                self._ech_grease = grease_extension(sized, self.config.random)
            hello = with_extension_before_psk(hello, self._ech_grease)
        if self._session is not None:
            hello = self._add_psk(hello)
        if offer is not None:
            offer.inner_transcript.add(frame_handshake(hello.msg_type, hello.encode()))
            hello = offer.seal(hello, self.config.random)
        self._hello = hello
        raw = frame_handshake(hello.msg_type, hello.encode())
        self._records.write(ContentType.HANDSHAKE, raw)
        self._transcript.add(raw)

    def _add_psk(self, hello: ClientHello) -> ClientHello:
        """Append pre_shared_key with its binder (RFC 8446 §4.2.11.2)."""
        session = required(self._session, "session")
        suite = SUITES[session.cipher_suite]
        algorithm = suite.hash
        identity = PskIdentity(
            session.ticket, session.obfuscated_age(self.config.now())
        )
        placeholder = OfferedPsks((identity,), (bytes(algorithm.digest_size),))
        hello = hello.without_extension(E.PRE_SHARED_KEY).with_extension(
            Extension(E.PRE_SHARED_KEY, placeholder.encode())
        )
        raw = frame_handshake(hello.msg_type, hello.encode())
        # The binder covers the hello up to, not including, the binders list.
        truncated = raw[: len(raw) - len(placeholder.encode_binders())]
        # With ECH the PSK belongs to the inner handshake (RFC 9849 §6.1).
        base = self._ech.inner_transcript if self._ech else self._transcript
        transcript = base.copy()
        if not self._hello_retry:
            transcript.set_algorithm(algorithm)
        transcript.add(truncated)
        binder_key = EarlySecret.from_psk(algorithm, session.psk).binder_key()
        binder = finished_verify_data(algorithm, binder_key, transcript.digest())
        offered = OfferedPsks((identity,), (binder,))
        return hello.with_extension(Extension(E.PRE_SHARED_KEY, offered.encode()))

    # dispatch -------------------------------------------------------------------

    def _handle_handshake(self, msg_type: int, body: bytes, raw: bytes) -> None:
        state = self.state
        if state is ClientState.WAIT_SH and msg_type == HandshakeType.SERVER_HELLO:
            self._on_server_hello(ServerHello.parse(body), raw)
        elif (
            state is ClientState.WAIT_EE
            and msg_type == HandshakeType.ENCRYPTED_EXTENSIONS
        ):
            self._on_encrypted_extensions(EncryptedExtensions.parse(body), raw)
        elif (
            state is ClientState.WAIT_CERT_CR
            and msg_type == HandshakeType.CERTIFICATE_REQUEST
        ):
            self._certificate_request = CertificateRequest.parse(body)
            self._transcript.add(raw)
            self.state = ClientState.WAIT_CERT
        elif (
            state in (ClientState.WAIT_CERT_CR, ClientState.WAIT_CERT)
            and msg_type == HandshakeType.CERTIFICATE
        ):
            self._on_certificate(Certificate.parse(body), raw)
        elif (
            state is ClientState.WAIT_CV
            and msg_type == HandshakeType.CERTIFICATE_VERIFY
        ):
            self._on_certificate_verify(CertificateVerify.parse(body), raw)
        elif state is ClientState.WAIT_FINISHED and msg_type == HandshakeType.FINISHED:
            self._on_finished(Finished.parse(body), raw)
        else:
            raise UnexpectedMessage(f"{HandshakeType(msg_type)} in state {state.value}")

    def _handle_post_handshake(self, msg_type: int, body: bytes) -> None:
        if msg_type == HandshakeType.NEW_SESSION_TICKET:
            self._on_new_session_ticket(NewSessionTicket.parse(body))
        else:
            super()._handle_post_handshake(msg_type, body)

    # ServerHello and HelloRetryRequest -------------------------------------------

    def _check_server_hello_common(
        self, sh: ServerHello, allowed: set[ExtensionType]
    ) -> SuiteParams:
        hello = required(self._hello, "ClientHello")
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

    def _on_server_hello(self, sh: ServerHello, raw: bytes) -> None:
        if sh.is_hello_retry_request:
            self._on_hello_retry_request(sh, raw)
            return
        suite = self._check_server_hello_common(sh, _SERVER_HELLO_EXTENSIONS)
        algorithm = suite.hash
        if self.ech_status is ECHStatus.OFFERED:
            self._decide_ech(sh, suite)
        psk: bytes | None = None
        selected = sh.extension(E.PRE_SHARED_KEY)
        if selected is not None:
            session = self._session
            if self.ech_status is ECHStatus.REJECTED:
                # The outer hello only had a GREASE PSK (checklist #49).
                raise IllegalParameter("PSK selected although ECH was rejected")
            if session is None or ext.decode_u16(selected) != 0:
                raise IllegalParameter("server selected a PSK we did not offer")
            if SUITES[session.cipher_suite].hash.name != algorithm.name:
                raise IllegalParameter("server selected a suite the PSK cannot use")
            psk = session.psk
            self._psk_accepted = True
        share_data = sh.extension(E.KEY_SHARE)
        if share_data is None:
            raise MissingExtension("ServerHello without key_share")
        entry = ext.decode_server_key_share(share_data)
        share = self._key_shares.get(entry.group)
        if share is None:
            raise IllegalParameter("server key share for a group we did not send")
        shared_secret = share.exchange(entry.key_exchange)
        self._suite = suite
        self.cipher_suite = CipherSuite(sh.cipher_suite)
        self.group = NamedGroup(entry.group)
        if not self._hello_retry:
            self._transcript.set_algorithm(algorithm)
        self._transcript.add(raw)
        hs = EarlySecret.from_psk(algorithm, psk).handshake_secret(shared_secret)
        self._handshake_secret = hs
        hello_hash = self._transcript.digest()
        self._client_hs_secret = hs.client_handshake_traffic_secret(hello_hash)
        self._server_hs_secret = hs.server_handshake_traffic_secret(hello_hash)
        self._set_read_secret(self._server_hs_secret)
        if self.config.compatibility_mode and not self._ccs_sent:
            self._records.write_change_cipher_spec()
            self._ccs_sent = True
        self._set_write_secret(self._client_hs_secret)
        self._ccs_allowed = True
        self.state = ClientState.WAIT_EE

    def _decide_ech(self, sh: ServerHello, suite: SuiteParams) -> None:
        """Accepted iff ServerHello.random ends in accept_confirmation (§6.1.4)."""
        offer = required(self._ech, "ECH offer")
        inner_hello = required(offer.inner_hello, "ClientHelloInner")
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
        if accepted:
            self.ech_status = ECHStatus.ACCEPTED
            self._transcript = offer.inner_transcript
            self._hello = inner_hello
        else:
            self.ech_status = ECHStatus.REJECTED

    def _on_hello_retry_request(self, hrr: ServerHello, raw: bytes) -> None:
        if self._hello_retry:
            raise UnexpectedMessage("second HelloRetryRequest")
        suite = self._check_server_hello_common(hrr, _HRR_EXTENSIONS)
        hello = required(self._hello, "ClientHello")
        selected_group: int | None = None
        group_data = hrr.extension(E.KEY_SHARE)
        if group_data is not None:
            selected_group = ext.decode_u16(group_data)
            if (
                selected_group not in self.config.groups
                or selected_group in self._key_shares
            ):
                raise IllegalParameter("HRR selected a group we cannot or did send")
        cookie_data = hrr.extension(E.COOKIE)
        cookie = ext.decode_cookie(cookie_data) if cookie_data is not None else None
        if selected_group is None and cookie is None:
            raise IllegalParameter("HRR would not change the ClientHello")
        self._hello_retry = True
        self._ccs_allowed = True
        self.cipher_suite = CipherSuite(hrr.cipher_suite)
        self._transcript.set_algorithm(suite.hash)
        self._transcript.rewrite_for_hello_retry()
        self._transcript.add(raw)
        self._check_hrr_ech(hrr, raw, suite)
        if selected_group is not None:
            self._key_shares = {
                selected_group: self.config.key_share_factory(selected_group)
            }
        if self._session is not None and (
            SUITES[self._session.cipher_suite].hash.name != suite.hash.name
        ):
            self._session = None  # the PSK cannot be used with this suite
        # With ECH, ClientHelloInner2 follows from ClientHelloInner1 (§6.1.5).
        base = self._ech.inner_hello if self._ech else None
        first = base if base is not None else hello
        second = ClientHello(
            random=first.random,
            legacy_session_id=first.legacy_session_id,
            cipher_suites=first.cipher_suites,
            extensions=self._hello_extensions(cookie),
            legacy_version=first.legacy_version,
        )
        if self.config.compatibility_mode and not self._ccs_sent:
            self._records.write_change_cipher_spec()
            self._ccs_sent = True
        self._send_client_hello(second)
        self.state = ClientState.WAIT_SH

    def _check_hrr_ech(self, hrr: ServerHello, raw: bytes, suite: SuiteParams) -> None:
        """Read the HRR's ECH confirmation (RFC 9849 §6.1.4, checklist #54, #56)."""
        data = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
        received = parse_hrr_confirmation(data) if data is not None else None
        offer = self._ech
        if offer is None:
            return  # GREASE: syntax checked, value ignored (checklist #71)
        inner_hello = required(offer.inner_hello, "ClientHelloInner")
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

    def _on_encrypted_extensions(self, ee: EncryptedExtensions, raw: bytes) -> None:
        hello = required(self._hello, "ClientHello")
        ext.check_unique(ee.extensions)
        offered = {e.type for e in hello.extensions}
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
        ech_data = ee.extension(E.ENCRYPTED_CLIENT_HELLO)
        if ech_data is not None:
            if self.ech_status is ECHStatus.ACCEPTED:
                raise UnsupportedExtension("retry_configs after ECH was accepted")
            retry_configs = parse_retry_configs(ech_data)  # checklist #61, #71
            if self.ech_status is ECHStatus.REJECTED:
                # Trusted only once the outer handshake is authenticated (#60).
                self._pending_retry_configs = retry_configs
        self._transcript.add(raw)
        self.state = (
            ClientState.WAIT_FINISHED
            if self._psk_accepted
            else ClientState.WAIT_CERT_CR
        )

    def _on_certificate(self, certificate: Certificate, raw: bytes) -> None:
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
                self._verification_name(),
                self.config.trusted_certificates(),
                self.config.now(),
            )
        else:
            leaf = parse_leaf(chain[0])
        try:
            self._peer_key = leaf.public_key()  # type: ignore[assignment]  # TLS keys only
        except (ValueError, UnsupportedAlgorithm):
            raise BadCertificate("certificate public key does not parse") from None
        self._transcript.add(raw)
        self.state = ClientState.WAIT_CV

    def _verification_name(self) -> str:
        """The name the certificate must carry: public_name if ECH was rejected."""
        if self.ech_status is ECHStatus.REJECTED and self._ech is not None:
            return self._ech.public_name  # RFC 9849 §6.1.7, checklist #65
        return required(self.server_name, "server_name")

    def _on_certificate_verify(self, cv: CertificateVerify, raw: bytes) -> None:
        if cv.algorithm not in self.config.signature_algorithms:
            raise IllegalParameter("CertificateVerify with a scheme we did not offer")
        content = signed_content(SERVER_CONTEXT, self._transcript.digest())
        if self._peer_key is None:
            raise RuntimeError("internal error: no server public key")
        verify(self._peer_key, cv.algorithm, cv.signature, content)
        self._transcript.add(raw)
        self.state = ClientState.WAIT_FINISHED

    def _on_finished(self, finished: Finished, raw: bytes) -> None:
        suite = required(self._suite, "cipher suite")
        hs = required(self._handshake_secret, "handshake secret")
        algorithm = suite.hash
        if len(finished.verify_data) != algorithm.digest_size:
            raise DecodeError("Finished has the wrong length")
        if not verify_finished(
            algorithm,
            self._server_hs_secret,
            self._transcript.digest(),
            finished.verify_data,
        ):
            raise DecryptError("server Finished does not verify")
        self._transcript.add(raw)
        master = hs.master_secret()
        server_finished_hash = self._transcript.digest()
        client_ap = master.client_application_traffic_secret(server_finished_hash)
        server_ap = master.server_application_traffic_secret(server_finished_hash)
        self._master = master
        self._server_finished_hash = server_finished_hash
        self._set_read_secret(server_ap)
        if self._certificate_request is not None:
            empty = Certificate(
                self._certificate_request.certificate_request_context, ()
            )
            self._transcript.add(self._send_handshake(empty))
        verify_data = finished_verify_data(
            algorithm, self._client_hs_secret, self._transcript.digest()
        )
        self._transcript.add(self._send_handshake(Finished(verify_data)))
        self._set_write_secret(client_ap)
        self._client_finished_hash = self._transcript.digest()
        if self.ech_status is ECHStatus.REJECTED and self._ech is not None:
            # RFC 9849 §6.1.6: authenticated for public_name, then abort with
            # ech_required; never report success, drop tickets (#63, #66).
            self.retry_configs = self._pending_retry_configs
            self._fail(AlertDescription.ECH_REQUIRED)
            self._events.append(ECHRejected(self.retry_configs, self._ech.public_name))
            return
        self.state = ClientState.CONNECTED
        self._connected(
            HandshakeComplete(
                cipher_suite=required(self.cipher_suite, "cipher suite"),
                group=self.group,
                alpn_protocol=self.alpn_protocol,
                server_name=self.server_name,
                resumed=self._psk_accepted,
                hello_retry=self._hello_retry,
                ech_status=self.ech_status,
                outer_server_name=self._ech.public_name if self._ech else self._sni(),
            )
        )

    # after the handshake ----------------------------------------------------------

    def _on_new_session_ticket(self, nst: NewSessionTicket) -> None:
        suite = required(self._suite, "cipher suite")
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
                suite.hash, self._resumption_master_secret, nst.ticket_nonce
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
        self._events.append(SessionTicketReceived(ticket))
