"""Fuzz targets: one function per parser, each with the exceptions it may raise.

The contract every target enforces (style.md §9, "Errors"; RFC 8446 §6.2):
untrusted bytes either parse, or are refused with one of *our* exceptions,
never anything else. For the TLS and ECH parsers that is an
:class:`ech.errors.Alert` subclass, the alert a peer would be sent. The one
exception is the HTTPS record harness: the record codec there is
dnspython's, which refuses malformed rdata with
:class:`dns.exception.DNSException` (``ech/dns/records.py`` documents it),
and our interpretation refuses a record with
:class:`ech.dns.records.InvalidHTTPSRecord`.

A target may also check what must hold when the bytes *do* parse: every
codec re-encodes what it parsed byte for byte (the ``parse(b).encode() == b``
promise of ``ech.tls.messages``), and a connection that raised an Alert has
queued that alert for the peer. A failed check is an ``AssertionError``,
which no target allows, so the fuzzer reports it as a crash.

The targets import nothing from atheris or hypothesis: ``fuzz.run`` drives
them under atheris, and ``tests/fuzz/`` replays the seed corpora and the
regressions through them in the normal test suite.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase

import ech
from ech.config import ECHConfigList
from ech.dns.records import (
    InvalidHTTPSRecord,
    endpoint_from_rdata,
    endpoints_from_rrset,
)
from ech.errors import Alert
from ech.extension import (
    parse_client_hello_extension,
    parse_hrr_confirmation,
    parse_retry_configs,
)
from ech.inner import decode_client_hello_inner, decode_outer_extensions
from ech.keys import ECHKey, load_ech_key
from ech.pki import TestCA
from ech.server.ech import check_inner
from ech.tls import extensions as ext
from ech.tls.enums import AlertLevel, ContentType, ExtensionType
from ech.tls.extensions import OfferedPsks
from ech.tls.key_schedule import traffic_keys
from ech.tls.messages import MESSAGE_CLASSES, ClientHello
from ech.tls.records import HandshakeReassembler, RecordLayer
from ech.tls.suites import SUITES, SuiteParams
from ech.tls.wire import Reader, record_header

E = ExtensionType
HERE = Path(__file__).resolve().parent

#: The ECH key of the server harness and of the seed ClientHelloOuters. It is
#: a published test key, like BoringSSL's fuzzer-mode key (config_id 42):
#: it protects nothing, and it lets seeds decrypt, so the fuzzer starts deep
#: inside the server's ECH path.
FUZZ_KEY_PATH = HERE / "ech-fuzz-key.pem"


@dataclass(frozen=True)
class Harness:
    """One fuzz target and the exceptions its contract allows."""

    name: str
    target: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]
    doc: str

    def run(self, data: bytes) -> None:
        """Run the target once; allowed exceptions are swallowed, others raise."""
        with contextlib.suppress(*self.allowed):
            self.target(data)


# records ------------------------------------------------------------------------------

_SUITE_IDS = sorted(SUITES)


def records(data: bytes) -> None:
    """The record layer (RFC 8446 §5) and handshake reassembly (§5.1).

    The first byte chooses: plaintext records (its low bits 0), protected
    records under a fixed key of one of the suites (1), or TLSInnerPlaintexts
    (2, RFC 8446 §5.2), each behind a one-byte length, that the harness
    seals with that key, so the fuzzer reaches what follows a valid tag
    (content type, padding, size limits). Handshake payloads go through the
    reassembler, and every whole message through its parser.
    """
    if not data:
        return
    layer = RecordLayer()
    mode = data[0] & 3
    suite = SUITES[_SUITE_IDS[(data[0] >> 2) % len(_SUITE_IDS)]]
    stream = data[1:]
    if mode:
        secret = bytes(suite.hash.digest_size)
        layer.set_read_key(suite, secret)
        if mode >= 2:
            stream = _sealed_records(suite, secret, stream)
    layer.receive(stream)
    reassembler = HandshakeReassembler(1 << 16)
    while (record := layer.next_record()) is not None:
        if record.content_type != ContentType.HANDSHAKE:
            continue
        reassembler.feed(record.payload)
        while (message := reassembler.pop()) is not None:
            msg_type, body, raw = message
            assert raw[4:] == body
            cls = MESSAGE_CLASSES.get(msg_type)
            if cls is not None:
                assert cls.parse(body).encode() == body


def _sealed_records(suite: SuiteParams, secret: bytes, data: bytes) -> bytes:
    """Each length-prefixed chunk of ``data`` sealed as one TLSCiphertext."""
    keys = traffic_keys(suite.hash, secret, suite.key_length)
    aead = suite.aead_factory(keys.key)
    iv = int.from_bytes(keys.iv, "big")
    out = bytearray()
    pos = seq = 0
    while pos < len(data):
        length = data[pos]
        inner = data[pos + 1 : pos + 1 + length]
        pos += 1 + length
        header = record_header(ContentType.APPLICATION_DATA, len(inner) + 16)
        nonce = (iv ^ seq).to_bytes(12, "big")
        out += header + aead.encrypt(nonce, inner, header)
        seq += 1
    return bytes(out)


# the handshake codec ------------------------------------------------------------------

#: Every extension body decoder of ``ech.tls.extensions`` and ``ech.extension``.
EXTENSION_DECODERS: tuple[Callable[[bytes], object], ...] = (
    ext.decode_server_name,
    ext.decode_client_versions,
    ext.decode_u16,
    ext.decode_u16_list,
    ext.decode_client_key_shares,
    ext.decode_server_key_share,
    ext.decode_alpn,
    ext.decode_psk_modes,
    OfferedPsks.parse,
    ext.decode_empty,
    ext.decode_cookie,
    ext.decode_u32,
    ext.decode_padding,
    parse_client_hello_extension,
    parse_hrr_confirmation,
    parse_retry_configs,
    decode_outer_extensions,
)

#: The typed views a server reads from a ClientHello, by extension type.
_CLIENT_HELLO_VIEWS: dict[int, Callable[[bytes], object]] = {
    E.SERVER_NAME: ext.decode_server_name,
    E.SUPPORTED_VERSIONS: ext.decode_client_versions,
    E.SUPPORTED_GROUPS: ext.decode_u16_list,
    E.SIGNATURE_ALGORITHMS: ext.decode_u16_list,
    E.KEY_SHARE: ext.decode_client_key_shares,
    E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION: ext.decode_alpn,
    E.PSK_KEY_EXCHANGE_MODES: ext.decode_psk_modes,
    E.PRE_SHARED_KEY: OfferedPsks.parse,
    E.COOKIE: ext.decode_cookie,
    E.PADDING: ext.decode_padding,
    E.ENCRYPTED_CLIENT_HELLO: parse_client_hello_extension,
    E.ECH_OUTER_EXTENSIONS: decode_outer_extensions,
}

_MESSAGE_TYPES = sorted(MESSAGE_CLASSES)


def handshake_codec(data: bytes) -> None:
    """Every handshake message body (RFC 8446 §4) and extension body (§4.2).

    The first byte picks the parser: a message class (below 128) or an
    extension decoder. A body that parses must re-encode to the same bytes;
    a ClientHello's known extensions are decoded too, as a server would.
    """
    if not data:
        return
    selector, body = data[0], data[1:]
    if selector >= 128:
        EXTENSION_DECODERS[selector % len(EXTENSION_DECODERS)](body)
        return
    cls = MESSAGE_CLASSES[_MESSAGE_TYPES[selector % len(_MESSAGE_TYPES)]]
    message = cls.parse(body)
    assert message.encode() == body, "parse/encode is not the identity"
    if isinstance(message, ClientHello):
        ext.check_unique(message.extensions)
        for extension in message.extensions:
            view = _CLIENT_HELLO_VIEWS.get(extension.type)
            if view is not None:
                view(extension.data)


# ECHConfigList ------------------------------------------------------------------------


def ech_config_list(data: bytes) -> None:
    """ECHConfigList (RFC 9849 §4) and what a client decides from it (§6.1).

    A list that parses re-encodes exactly (its configs keep their raw
    bytes for HPKE ``info``), and deciding whether a config is usable never
    raises, whatever the config says.
    """
    configs = ECHConfigList.parse(data)
    assert configs.encode() == data
    for config in configs.configs:
        assert config.encode() == config.raw
        reason = config.unsupported_reason()
        suite = config.select_suite()
        if reason is None:
            assert suite is not None
            assert config.hpke_info().endswith(config.raw)
            config.public_name  # noqa: B018  # a usable config's name is ASCII
    configs.usable()


# EncodedClientHelloInner (RFC 9849 §5.1, Appendix A) ----------------------------------


def encoded_client_hello_inner(data: bytes) -> None:
    """Reconstruct ClientHelloInner from its encoding and a ClientHelloOuter.

    Input as BoringSSL's ``decode_client_hello_inner`` fuzzer lays it out: a
    u24-prefixed EncodedClientHelloInner, then a ClientHelloOuter body. The
    result must pass the server's ClientHelloInner checks or be refused
    (RFC 9849 §7.1, ECH-29 to ECH-32, ECH-78).
    """
    r = Reader(data)
    encoded = r.opaque(3)
    outer = ClientHello.parse(r.rest())
    inner = decode_client_hello_inner(encoded, outer)
    assert inner.legacy_session_id == outer.legacy_session_id  # ECH-30
    assert not inner.has_extension(E.ECH_OUTER_EXTENSIONS)
    check_inner(inner)
    assert ClientHello.parse(inner.encode()) == inner


# HTTPS records (RFC 9460, RFC 9848) ---------------------------------------------------

_OWNER = dns.name.from_text("_8443._https.example.test.")


def https_record(data: bytes) -> None:
    """HTTPS rdata or a whole DNS response, interpreted as an ECH client does.

    The first byte chooses: even, the rest is one HTTPS rdata; odd, a DNS
    message whose HTTPS answers go through :func:`endpoints_from_rrset`.
    """
    if not data:
        return
    body = data[1:]
    if data[0] & 1:
        message = dns.message.from_wire(body)
        for rrset in message.answer:
            if (
                rrset.rdtype == dns.rdatatype.HTTPS
                and rrset.rdclass == dns.rdataclass.IN
            ):
                endpoints_from_rrset(rrset, port=8443)
        return
    rdata = dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.HTTPS, body, 0, len(body)
    )
    assert isinstance(rdata, dns.rdtypes.svcbbase.SVCBBase)
    rdata.to_text()  # what a RejectedRecord shows
    if rdata.priority != 0:
        endpoint = endpoint_from_rdata(rdata, _OWNER, 8443)
        assert endpoint.priority == rdata.priority


# the server's ClientHello path --------------------------------------------------------


@functools.cache
def fuzz_key() -> ECHKey:
    """The published fuzzing key (:data:`FUZZ_KEY_PATH`)."""
    return load_ech_key(FUZZ_KEY_PATH)


@functools.cache
def _server_config() -> ech.ServerConfig:
    ca = TestCA.create("fuzz CA", key_type="ed25519")
    leaf = ca.issue("example.test", "public.example", key_type="ed25519")
    return ech.ServerConfig(
        certificates=(leaf,),
        ech_keys=(fuzz_key(),),
        alpn_protocols=("h2", "http/1.1"),
    )


def server_client_hello(data: bytes) -> None:
    """The whole server path of a ClientHello: records, ECH, negotiation.

    ``ServerConnection.receive_data`` fed the bytes as a client would send
    them. It returns events or raises an Alert, and then the alert must be
    the last record queued for the peer (RFC 8446 §6.2).
    """
    server = ech.ServerConnection(_server_config())
    try:
        server.receive_data(data)
    except Alert as alert:
        content_type, fragment = _last_record(server.data_to_send())
        if content_type == ContentType.ALERT:
            assert fragment == bytes((AlertLevel.FATAL, alert.description))
        else:  # under handshake keys: level, description, type, AEAD tag
            assert content_type == ContentType.APPLICATION_DATA
            assert len(fragment) == 2 + 1 + 16
        raise
    server.data_to_send()


def _last_record(data: bytes) -> tuple[int, bytes]:
    """``(content_type, fragment)`` of the last record in ``data``."""
    r = Reader(data)
    last: tuple[int, bytes] | None = None
    while r.remaining():
        content_type = r.u8()
        r.u16()
        last = (content_type, r.opaque(2))
    assert last is not None, "no alert queued"
    return last


HARNESSES: dict[str, Harness] = {
    h.name: h
    for h in (
        Harness("records", records, (Alert,), "record layer and reassembly"),
        Harness("handshake_codec", handshake_codec, (Alert,), "messages, extensions"),
        Harness("ech_config_list", ech_config_list, (Alert,), "ECHConfigList"),
        Harness(
            "encoded_client_hello_inner",
            encoded_client_hello_inner,
            (Alert,),
            "EncodedClientHelloInner, Appendix A",
        ),
        Harness(
            "https_record",
            https_record,
            (dns.exception.DNSException, InvalidHTTPSRecord),
            "HTTPS rdata and responses",
        ),
        Harness(
            "server_client_hello",
            server_client_hello,
            (Alert,),
            "ServerConnection fed a ClientHello",
        ),
    )
}
