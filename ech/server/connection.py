"""The sans-IO TLS 1.3 server (RFC 8446 §4, state machine of §A.2)."""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass

from ech.confirmation import (
    accept_confirmation,
    hello_retry_with_confirmation,
    hrr_accept_confirmation,
)
from ech.errors import (
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    NoApplicationProtocol,
    ProtocolVersion,
    UnexpectedMessage,
    UnrecognizedName,
)
from ech.events import ECHStatus, HandshakeComplete
from ech.extension import (
    CONFIRMATION_LENGTH,
    encode_retry_configs,
    parse_client_hello_extension,
)
from ech.server.config import ServerConfig
from ech.server.ech import ECHAccepted, open_client_hello, open_second_client_hello
from ech.server.events import ForwardToBackend
from ech.server.tickets import TicketState, open_ticket, seal_ticket
from ech.tls import extensions as ext
from ech.tls.certificates import CertifiedKey
from ech.tls.connection import Connection, required
from ech.tls.enums import (
    TLS13,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    PskKeyExchangeMode,
)
from ech.tls.extensions import Extension, KeyShareEntry, OfferedPsks
from ech.tls.groups import SUPPORTED_GROUPS, KeyShare, respond_to_key_share
from ech.tls.key_schedule import (
    EarlySecret,
    finished_verify_data,
    hmac_bytes,
    resumption_psk,
    verify_finished,
)
from ech.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    NewSessionTicket,
    ServerHello,
)
from ech.tls.records import frame_handshake
from ech.tls.signatures import SERVER_CONTEXT, signed_content
from ech.tls.suites import SUITES, SuiteParams
from ech.tls.transcript import Transcript

E = ExtensionType


class NameRequiresECH(UnrecognizedName):
    """``ServerConfig.require_ech``: this name is served only with ECH accepted."""


class ServerState(enum.Enum):
    """RFC 8446 §A.2 server states (the sending states are transient)."""

    WAIT_CH = "wait_ch"
    WAIT_CH2 = "wait_ch2"
    WAIT_FINISHED = "wait_finished"
    CONNECTED = "connected"
    #: Split mode: the hello went to a backend; see :mod:`ech.server.split`.
    FORWARDED = "forwarded"


@dataclass(frozen=True, slots=True)
class _Negotiated:
    """What the first ClientHello fixed, kept across a HelloRetryRequest."""

    suite: SuiteParams
    group: int
    cookie: bytes | None


class ServerConnection(Connection):
    """One TLS 1.3 server connection. Performs no I/O."""

    def __init__(self, config: ServerConfig) -> None:
        # A client sends nothing longer than its ClientHello, so one limit
        # bounds what a client can make us buffer.
        super().__init__(config.record_padding, config.max_client_hello)
        self.config = config
        self.state = ServerState.WAIT_CH
        self._transcript = Transcript()
        self._retry: _Negotiated | None = None
        self._client_hs_secret = b""
        self._client_ap_secret = b""
        self._expected_client_finished = b""
        self.server_name: str | None = None
        self.cipher_suite: CipherSuite | None = None
        self.group: NamedGroup | None = None
        self.alpn_protocol: str | None = None
        self.resumed = False
        self.hello_retry = False
        self.client_hello: ClientHello | None = None
        self.ech_status = ECHStatus.NOT_OFFERED
        self.outer_server_name: str | None = None
        self._ech: ECHAccepted | None = None

    # dispatch -----------------------------------------------------------------

    def _handle_handshake(self, msg_type: int, body: bytes, raw: bytes) -> None:
        state = self.state
        if (
            state in (ServerState.WAIT_CH, ServerState.WAIT_CH2)
            and msg_type == HandshakeType.CLIENT_HELLO
        ):
            if self._records.read_protected:
                raise UnexpectedMessage("ClientHello under encryption")
            self._on_client_hello(ClientHello.parse(body), raw)
        elif state is ServerState.WAIT_FINISHED and msg_type == HandshakeType.FINISHED:
            self._on_finished(Finished.parse(body), raw)
        else:
            raise UnexpectedMessage(f"{HandshakeType(msg_type)} in state {state.value}")

    # ClientHello ----------------------------------------------------------------

    def _on_client_hello(self, ch: ClientHello, raw: bytes) -> None:
        ext.check_unique(ch.extensions)
        # RFC 9849 §7.1: decide ECH before negotiating anything (checklist #75).
        inner = self._process_ech(ch)
        if inner is not None:
            ch = inner
            raw = frame_handshake(ch.msg_type, ch.encode())
            ext.check_unique(ch.extensions)
            if self._forward(ch, raw):
                return
        self.client_hello = ch
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
        suite = self._select_suite(ch)
        group, client_share = self._select_group(ch)
        if client_share is None:
            self._send_hello_retry_request(ch, raw, suite, group)
            return
        self._check_retry_consistency(ch)

        sni = ch.extension(E.SERVER_NAME)
        self.server_name = ext.decode_server_name(sni) if sni is not None else None
        self._check_require_ech()
        self.alpn_protocol = self._select_alpn(ch)
        self._suite = suite
        self.cipher_suite = suite.suite
        self.group = NamedGroup(group)
        if self._retry is None:
            self._transcript.set_algorithm(suite.hash)
        psk = self._accept_psk(ch, raw, suite)
        self._transcript.add(raw)
        self._send_server_flight(ch, suite, group, client_share, psk)

    def _send_server_flight(
        self,
        ch: ClientHello,
        suite: SuiteParams,
        group: int,
        client_share: bytes,
        psk: bytes | None,
    ) -> None:
        """ServerHello, then EE, [Certificate, CertificateVerify], Finished."""
        certified: CertifiedKey | None = None
        scheme: int | None = None
        if psk is None:
            certified, scheme = self._select_certificate(ch)

        share = (
            self.config.key_share_factory(group)
            if group != NamedGroup.X25519MLKEM768
            else None
        )
        server_share, shared_secret = self._key_exchange(group, client_share, share)
        # Extension order as in RFC 8448's traces; any order is valid.
        extensions: list[Extension] = []
        if psk is not None:
            extensions.append(Extension(E.PRE_SHARED_KEY, ext.encode_u16(0)))
        key_share = KeyShareEntry(group, server_share)
        extensions.append(
            Extension(E.KEY_SHARE, ext.encode_server_key_share(key_share))
        )
        extensions.append(Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(TLS13)))
        sh = ServerHello(
            random=self.config.random(32),
            legacy_session_id_echo=ch.legacy_session_id,
            cipher_suite=suite.suite,
            extensions=tuple(extensions),
        )
        if self.config.server_hello_hook is not None:
            sh = self.config.server_hello_hook(sh)
        if self.ech_status is ECHStatus.ACCEPTED:
            # RFC 9849 §7.2: the last 8 bytes of random confirm acceptance.
            confirmation = accept_confirmation(
                suite.hash, ch.random, self._transcript, sh
            )
            sh = sh.with_random(sh.random[: 32 - CONFIRMATION_LENGTH] + confirmation)
        self._transcript.add(self._send_handshake(sh))
        if ch.legacy_session_id and self._retry is None:
            self._records.write_change_cipher_spec()  # RFC 8446 §D.4

        algorithm = suite.hash
        hs = EarlySecret.from_psk(algorithm, psk).handshake_secret(shared_secret)
        hello_hash = self._transcript.digest()
        self._client_hs_secret = hs.client_handshake_traffic_secret(hello_hash)
        self._set_write_secret(hs.server_handshake_traffic_secret(hello_hash))
        self._set_read_secret(self._client_hs_secret)
        self._ccs_allowed = True

        ee = EncryptedExtensions(tuple(self._encrypted_extensions(ch)))
        if self.config.encrypted_extensions_hook is not None:
            ee = self.config.encrypted_extensions_hook(ee)
        self._transcript.add(self._send_handshake(ee))
        if certified is not None and scheme is not None:
            self._records.write(ContentType.HANDSHAKE, certified.certificate_message)
            self._transcript.add(certified.certificate_message)
            content = signed_content(SERVER_CONTEXT, self._transcript.digest())
            signature = self.config.signer(certified.private_key, scheme, content)
            self._transcript.add(
                self._send_handshake(CertificateVerify(scheme, signature))
            )
        verify_data = finished_verify_data(
            algorithm, self._write_secret, self._transcript.digest()
        )
        self._transcript.add(self._send_handshake(Finished(verify_data)))

        master = hs.master_secret()
        finished_hash = self._transcript.digest()
        self._client_ap_secret = master.client_application_traffic_secret(finished_hash)
        self._server_finished_hash = finished_hash
        self._set_write_secret(master.server_application_traffic_secret(finished_hash))
        self._expected_client_finished = finished_verify_data(
            algorithm, self._client_hs_secret, finished_hash
        )
        self._master = master
        self.state = ServerState.WAIT_FINISHED

    def _forward(self, inner: ClientHello, raw: bytes) -> bool:
        """Split mode: hand an accepted inner hello to its backend (§3.1, §7.1).

        Only the first ClientHello is routed; after a backend's HRR the
        relay (:class:`ech.server.split.SplitRelay`) decrypts the second.
        """
        if self._retry is not None or self._ech is None or not self.config.backends:
            return False
        sni = inner.extension(E.SERVER_NAME)
        if sni is None:
            return False
        name = ext.decode_server_name(sni)
        backend = self.config.backends.get(name.lower())
        if backend is None:
            return False  # served here: shared mode for this name
        self.server_name = name
        self.client_hello = inner
        self.state = ServerState.FORWARDED
        self._events.append(
            ForwardToBackend(
                backend=backend,
                server_name=name,
                outer_server_name=self.outer_server_name,
                inner_hello=raw,
                accepted=self._ech,
                pending=self._records.take_unparsed(),
            )
        )
        return True

    def _process_ech(self, ch: ClientHello) -> ClientHello | None:
        """Apply ECH to a ClientHello; return ClientHelloInner if accepted."""
        first = self._retry is None
        if first:
            sni = ch.extension(E.SERVER_NAME)
            self.outer_server_name = ext.decode_server_name(sni) if sni else None
        data = ch.extension(E.ENCRYPTED_CLIENT_HELLO)
        if not first:
            if self._ech is not None:
                return open_second_client_hello(ch, self._ech)
            return None  # rejected or absent on CH1: no decryption (#84)
        if data is None:
            return None
        offer = parse_client_hello_extension(data)
        if offer is None:
            if not self.config.ech_backend:
                raise IllegalParameter("inner ECH extension from the network (#73)")
            self.ech_status = ECHStatus.ACCEPTED  # we are the backend (§7.2)
            return None
        config = self.config
        if config.ech_backend and not config.ech_keys:
            # A split-mode backend only ever sees inner hellos (§7, #73).
            raise IllegalParameter("outer ECH extension sent to a backend")
        self.ech_status = ECHStatus.REJECTED
        opened = open_client_hello(
            ch,
            offer,
            config.ech_key_index,
            all_keys=config.ech_keys,
            trial_decryption=config.ech_trial_decryption,
        )
        if opened is None:
            return None
        self.ech_status = ECHStatus.ACCEPTED
        inner, self._ech = opened
        return inner

    def _check_require_ech(self) -> None:
        """Refuse a protected name reached without ECH, before our flight exists."""
        policy, name = self.config.require_ech, self.server_name
        if policy is None or name is None or self.ech_status is ECHStatus.ACCEPTED:
            return
        if policy.protects(name, self.config):
            raise NameRequiresECH(f"{name} requires ECH")

    def _select_suite(self, ch: ClientHello) -> SuiteParams:
        if self._retry is not None:
            # RFC 8446 §4.1.4: the same suite as in the HelloRetryRequest.
            if self._retry.suite.suite not in ch.cipher_suites:
                raise IllegalParameter("second ClientHello dropped the HRR's suite")
            return self._retry.suite
        for suite in self.config.cipher_suites:
            if suite in ch.cipher_suites and suite in SUITES:
                return SUITES[suite]
        raise HandshakeFailure("no cipher suite in common")

    def _select_group(self, ch: ClientHello) -> tuple[int, bytes | None]:
        """Our group and the client's share for it (None: HelloRetryRequest)."""
        groups_data = ch.extension(E.SUPPORTED_GROUPS)
        shares_data = ch.extension(E.KEY_SHARE)
        if groups_data is None or shares_data is None:
            # We support only psk_dhe_ke and certificates with (EC)DHE (§9.2).
            raise MissingExtension("supported_groups and key_share are required")
        client_groups = ext.decode_u16_list(groups_data)
        shares: dict[int, bytes] = {}
        for entry in ext.decode_client_key_shares(shares_data):
            if entry.group not in client_groups or entry.group in shares:
                raise IllegalParameter("key share not in supported_groups, or repeated")
            shares[entry.group] = entry.key_exchange
        if self._retry is not None:
            group = self._retry.group
            if list(shares) != [group]:
                raise IllegalParameter("second ClientHello lacks the requested share")
            return group, shares[group]
        ours = [g for g in self.config.groups if g in SUPPORTED_GROUPS]
        for group in ours:
            if group in shares:
                return group, shares[group]
        for group in ours:
            if group in client_groups:
                return group, None
        raise HandshakeFailure("no key exchange group in common")

    def _key_exchange(
        self, group: int, client_share: bytes, share: KeyShare | None
    ) -> tuple[bytes, bytes]:
        if share is None:
            return respond_to_key_share(group, client_share)
        return share.public, share.exchange(client_share)

    def _send_hello_retry_request(
        self, ch: ClientHello, raw: bytes, suite: SuiteParams, group: int
    ) -> None:
        if self._retry is not None:
            raise IllegalParameter("second ClientHello still has no usable key share")
        self._transcript.set_algorithm(suite.hash)
        self._transcript.add(raw)
        extensions = [Extension(E.KEY_SHARE, ext.encode_u16(group))]
        # The cookie binds the retry to ClientHello1; a stateless server could
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
            hrr = hello_retry_with_confirmation(hrr, confirmation)  # §7.2.1
        elif self.ech_status is ECHStatus.REJECTED:
            # Random bytes, so rejection looks like acceptance (§7.1, #81).
            hrr = hello_retry_with_confirmation(
                hrr, self.config.random(CONFIRMATION_LENGTH)
            )
        self._transcript.add(self._send_handshake(hrr))
        if ch.legacy_session_id:
            self._records.write_change_cipher_spec()  # RFC 8446 §D.4
        # Expect back the cookie actually sent (a hook may have changed it).
        sent_cookie = hrr.extension(E.COOKIE)
        cookie_sent = ext.decode_cookie(sent_cookie) if sent_cookie else None
        self._retry = _Negotiated(suite, group, cookie_sent)
        self.hello_retry = True
        self._ccs_allowed = True
        self.state = ServerState.WAIT_CH2

    def _check_retry_consistency(self, ch: ClientHello) -> None:
        retry = self._retry
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

    def _select_certificate(self, ch: ClientHello) -> tuple[CertifiedKey, int]:
        algorithms = ch.extension(E.SIGNATURE_ALGORITHMS)
        if algorithms is None:
            raise MissingExtension("signature_algorithms is required")
        offered = ext.decode_u16_list(algorithms)
        named = [
            c
            for c in self.config.certificates
            if self.server_name and c.matches(self.server_name)
        ]
        for candidate in (*named, *self.config.certificates):
            for scheme in candidate.signature_schemes:
                if scheme in offered:
                    return candidate, scheme
        raise HandshakeFailure("no certificate fits the client's signature_algorithms")

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
        retry_configs = self.config.retry_configs
        if self.ech_status is ECHStatus.REJECTED and retry_configs is not None:
            # RFC 9849 §7.1: a server with ECH configs sends them (#81, #84).
            out.append(
                Extension(E.ENCRYPTED_CLIENT_HELLO, encode_retry_configs(retry_configs))
            )
        return out

    # PSK resumption ----------------------------------------------------------------

    def _accept_psk(
        self, ch: ClientHello, raw: bytes, suite: SuiteParams
    ) -> bytes | None:
        """Validate the offered tickets; return the PSK of the one we take."""
        data = ch.extension(E.PRE_SHARED_KEY)
        if data is None:
            return None
        modes_data = ch.extension(E.PSK_KEY_EXCHANGE_MODES)
        if modes_data is None:
            raise MissingExtension("pre_shared_key without psk_key_exchange_modes")
        offered = OfferedPsks.parse(data)
        if PskKeyExchangeMode.PSK_DHE_KE not in ext.decode_psk_modes(modes_data):
            return None
        if not self.config.session_tickets:
            return None
        now_ms = int(self.config.now() * 1000)
        for index, identity in enumerate(offered.identities):
            state = open_ticket(self.config.ticket_key, identity.identity)
            if state is None or index != 0:
                continue  # we answer only the first identity (selected_identity 0)
            if SUITES.get(state.cipher_suite) is None or (
                SUITES[state.cipher_suite].hash.name != suite.hash.name
            ):
                continue
            if not 0 <= now_ms - state.issued_at_ms < state.lifetime * 1000:
                continue
            if state.server_name != (self.server_name or ""):
                continue
            truncated = raw[: len(raw) - len(offered.encode_binders())]
            transcript = self._transcript.copy()
            transcript.add(truncated)
            binder_key = EarlySecret.from_psk(suite.hash, state.psk).binder_key()
            if not verify_finished(
                suite.hash, binder_key, transcript.digest(), offered.binders[index]
            ):
                raise DecryptError("PSK binder does not verify")
            self.resumed = True
            return state.psk
        return None

    # client Finished -----------------------------------------------------------------

    def _on_finished(self, finished: Finished, raw: bytes) -> None:
        suite = required(self._suite, "cipher suite")
        if len(finished.verify_data) != suite.hash.digest_size:
            raise DecodeError("Finished has the wrong length")
        if not hmac.compare_digest(
            finished.verify_data, self._expected_client_finished
        ):
            raise DecryptError("client Finished does not verify")
        self._transcript.add(raw)
        self._set_read_secret(self._client_ap_secret)
        self._client_finished_hash = self._transcript.digest()
        self.state = ServerState.CONNECTED
        self._connected(
            HandshakeComplete(
                cipher_suite=required(self.cipher_suite, "cipher suite"),
                group=self.group,
                alpn_protocol=self.alpn_protocol,
                server_name=self.server_name,
                resumed=self.resumed,
                hello_retry=self.hello_retry,
                ech_status=self.ech_status,
                outer_server_name=self.outer_server_name,
            )
        )
        if self.config.session_tickets:
            for _ in range(self.config.tickets_per_connection):
                self.send_session_ticket()

    def send_session_ticket(self) -> None:
        """Issue one more ticket (RFC 8446 §4.6.1)."""
        suite = self._suite
        if self.state is not ServerState.CONNECTED or suite is None:
            raise RuntimeError("tickets are sent after the handshake")
        nonce = self.config.random(8)
        age_add = int.from_bytes(self.config.random(4), "big")
        psk = resumption_psk(suite.hash, self._resumption_master_secret, nonce)
        state = TicketState(
            cipher_suite=suite.suite,
            psk=psk,
            issued_at_ms=int(self.config.now() * 1000),
            ticket_age_add=age_add,
            lifetime=self.config.ticket_lifetime,
            server_name=self.server_name or "",
            alpn_protocol=self.alpn_protocol or "",
        )
        ticket = seal_ticket(self.config.ticket_key, self.config.random(12), state)
        self._send_handshake(
            NewSessionTicket(self.config.ticket_lifetime, age_add, nonce, ticket)
        )
