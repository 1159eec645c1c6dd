"""Hypothesis strategies for ECH (RFC 9849) and TLS 1.3 (RFC 8446) structures.

Each ``*s()`` function returns a strategy of :class:`~ech.testing.Drawn`
values: the structure, its wire bytes and, for a broken draw, the alert a
receiver sends. Pass ``valid=False`` for broken draws. They are built to be
refused for one named reason each (RFC 9849 §5.1 padding or
``ech_outer_extensions`` rules, RFC 8446 §3 vector limits, out-of-range
enum values, ...), never by luck: truncations cut inside the last vector,
lengths are off by one where nothing can realign them, and so on. So::

    @given(client_hello_outers(config, valid=False))
    def test_parser_refuses(drawn):
        with pytest.raises(MyAlert) as alert:
            their_parser(drawn.wire)
        assert alert.value.code == drawn.alert

In ``ech``'s own suite, valid draws round-trip through our codec and broken
draws are refused with exactly ``drawn.alert`` (``tests/properties/
test_testing_strategies.py``); that is what makes the labels trustworthy.

Strategies:

* :func:`ech_configs`, :func:`ech_config_lists`: RFC 9849 §4.
* :func:`client_hello_inners`: ClientHelloInner, checked by a server after
  decryption (RFC 9849 §7.1).
* :func:`encoded_client_hello_inners`: EncodedClientHelloInner against a
  ClientHelloOuter (RFC 9849 §5.1, Appendix A).
* :func:`client_hello_outers`: ClientHelloOuter with a real HPKE-sealed ECH
  extension for a given config (RFC 9849 §6.1); ``tampered=True`` draws
  authenticated fields changed after sealing.
* :func:`server_hellos`, :func:`hello_retry_requests`: RFC 8446 §4.1.3 and
  §4.1.4, optionally answering a given ClientHello, so a client can be fed
  them.
* :func:`broken_client_hellos` and :func:`broken_client_hello_outers`: the
  mutation combinators the above use, applicable to a hello you built (a
  fuzzer mutating a real client's hello in flight uses them).

The lower-level strategies (``messages``, ``mutations``, ``garbage``, ...)
draw raw messages and byte edits for robustness tests whose only claim is
"an Alert or a value".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import strategies as st

from ech import hpke
from ech.config import (
    ECH_VERSION,
    ECHConfig,
    ECHConfigContents,
    ECHConfigExtension,
    ECHConfigList,
    HpkeSymmetricCipherSuite,
)
from ech.extension import INNER_BODY, ECHClientHelloOuter, parse_client_hello_extension
from ech.inner import compress, encode_outer_extensions
from ech.testing.drawn import (
    Drawn,
    EncodedClientHelloInner,
    SealedClientHello,
    client_hello_wire,
    seal_client_hello,
)
from ech.tls import extensions as ext
from ech.tls.enums import (
    TLS12,
    TLS13,
    AlertDescription,
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    SignatureScheme,
)
from ech.tls.extensions import Extension, KeyShareEntry, OfferedPsks, PskIdentity
from ech.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    KeyUpdate,
    Message,
    NewSessionTicket,
    ServerHello,
)
from ech.tls.wire import Writer, encode_opaque, frame_handshake

E = ExtensionType
A = AlertDescription
DECODE = A.DECODE_ERROR
ILLEGAL = A.ILLEGAL_PARAMETER

# --- raw TLS messages (robustness: "an Alert or a value") ----------------------------

u8s = st.integers(0, 0xFF)
u16s = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFFFFFF)
grease = st.sampled_from([0x0A0A + 0x1010 * i for i in range(16)])
ext_types = st.one_of(st.sampled_from(list(ExtensionType)).map(int), grease, u16s)


def small_bytes(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[bytes]:
    """Short byte strings."""
    return st.binary(min_size=min_size, max_size=max_size)


extensions_st = st.builds(Extension, ext_types, small_bytes())
extension_lists = st.lists(extensions_st, max_size=6).map(tuple)

#: Two or more extensions: at least 8 bytes, the minimum of a ClientHello
#: (RFC 8446 §4.1.2) and more than ServerHello's 6.
hello_extension_lists = st.lists(extensions_st, min_size=2, max_size=6).map(tuple)

client_hellos = st.builds(
    ClientHello,
    random=st.binary(min_size=32, max_size=32),
    legacy_session_id=small_bytes(0, 32),
    cipher_suites=st.lists(u16s, min_size=1, max_size=8).map(tuple),
    extensions=hello_extension_lists,
    legacy_version=u16s,
    legacy_compression_methods=small_bytes(1, 4),
)

server_hello_values = st.builds(
    ServerHello,
    random=st.binary(min_size=32, max_size=32),
    legacy_session_id_echo=small_bytes(0, 32),
    cipher_suite=u16s,
    extensions=hello_extension_lists,
    legacy_version=u16s,
    legacy_compression_method=u8s,
)

encrypted_extensions = st.builds(EncryptedExtensions, extension_lists)

certificate_requests = st.builds(
    CertificateRequest,
    small_bytes(0, 10),
    st.lists(extensions_st, min_size=1, max_size=4).map(tuple),
)

certificate_entries = st.builds(CertificateEntry, small_bytes(1, 60), extension_lists)

certificates = st.builds(
    Certificate,
    small_bytes(0, 10),
    st.lists(certificate_entries, max_size=3).map(tuple),
)

certificate_verifies = st.builds(CertificateVerify, u16s, small_bytes(0, 80))

finisheds = st.builds(Finished, small_bytes(0, 64))

new_session_tickets = st.builds(
    NewSessionTicket,
    u32s,
    u32s,
    small_bytes(0, 16),
    small_bytes(1, 60),
    extension_lists,
)

key_updates = st.builds(KeyUpdate, st.integers(0, 1))

end_of_early_datas = st.just(EndOfEarlyData())

messages: st.SearchStrategy[Message] = st.one_of(
    client_hellos,
    server_hello_values,
    encrypted_extensions,
    certificate_requests,
    certificates,
    certificate_verifies,
    finisheds,
    new_session_tickets,
    key_updates,
    end_of_early_datas,
)

dns_labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
host_names = st.lists(dns_labels, min_size=1, max_size=4).map(".".join)
key_share_entries = st.builds(KeyShareEntry, u16s, small_bytes(1, 70))
alpn_names = st.lists(small_bytes(1, 20), min_size=1, max_size=5)
psk_identities = st.builds(PskIdentity, small_bytes(1, 60), u32s)


@st.composite
def offered_psks(draw: st.DrawFn) -> OfferedPsks:
    """A pre_shared_key body with as many binders as identities."""
    identities = draw(st.lists(psk_identities, min_size=1, max_size=3))
    binders = draw(
        st.lists(
            small_bytes(32, 48), min_size=len(identities), max_size=len(identities)
        )
    )
    return OfferedPsks(tuple(identities), tuple(binders))


#: Every extension body decoder, for robustness properties.
DECODERS: dict[str, Callable[[bytes], object]] = {
    "server_name": ext.decode_server_name,
    "client_versions": ext.decode_client_versions,
    "u16": ext.decode_u16,
    "u16_list": ext.decode_u16_list,
    "client_key_shares": ext.decode_client_key_shares,
    "server_key_share": ext.decode_server_key_share,
    "alpn": ext.decode_alpn,
    "psk_modes": ext.decode_psk_modes,
    "pre_shared_key": OfferedPsks.parse,
    "empty": ext.decode_empty,
    "cookie": ext.decode_cookie,
    "u32": ext.decode_u32,
    "padding": ext.decode_padding,
}


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one to three random edits: flips, cuts, inserts, deletes.

    The draws do not depend on ``len(data)``, so a test may mutate bytes that
    vary between runs (signatures, randoms) without confusing hypothesis.
    Nothing is promised about the result: it may even still parse.
    """
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        # Draw everything every time, so the choice sequence never depends
        # on the data.
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, 1 << 16)) % (len(out) + 1)
        xor = draw(st.integers(1, 255))
        blob = draw(st.binary(min_size=1, max_size=8))
        count = draw(st.integers(1, 8))
        if op == "flip":
            if pos < len(out):
                out[pos] ^= xor
        elif op == "truncate":
            del out[pos:]
        elif op == "insert":
            out[pos:pos] = blob
        else:
            del out[pos : pos + count]
    return bytes(out)


def record(content_type: int, fragment: bytes) -> bytes:
    """A record with legacy version 0x0303 (lengths may exceed the limits)."""
    return (
        bytes((content_type, 3, 3))
        + (len(fragment) & 0xFFFF).to_bytes(2, "big")
        + fragment
    )


handshake_fragments = st.builds(
    lambda t, body: bytes((t,)) + len(body).to_bytes(3, "big") + body,
    st.one_of(st.sampled_from([1, 2, 4, 5, 8, 11, 13, 15, 20, 24, 254]), u8s),
    small_bytes(0, 120),
)

record_streams = st.lists(
    st.builds(
        record,
        st.one_of(st.sampled_from([20, 21, 22, 23]), u8s),
        st.one_of(
            small_bytes(0, 120),
            handshake_fragments,
            st.just(b"\x01"),
            st.just(b"\x02\x28"),
        ),
    ),
    min_size=1,
    max_size=4,
).map(b"".join)

garbage = st.one_of(st.binary(max_size=300), record_streams)

# --- ECHConfig and ECHConfigList (RFC 9849 §4) ---------------------------------------

#: KEMs whose public key length we know, so configs are usable.
_KEMS = (
    hpke.KEM.DHKEM_X25519_HKDF_SHA256,
    hpke.KEM.DHKEM_P256_HKDF_SHA256,
    hpke.KEM.DHKEM_P384_HKDF_SHA384,
    hpke.KEM.DHKEM_X448_HKDF_SHA512,
)
_SUITES = [
    HpkeSymmetricCipherSuite(kdf, aead) for kdf in hpke.KDF for aead in hpke.AEAD
]
hpke_suites = st.one_of(
    st.sampled_from(_SUITES), st.builds(HpkeSymmetricCipherSuite, u16s, u16s)
)
#: Names that pass RFC 9849 §6.1.7's public_name check.
public_names = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
    min_size=1,
    max_size=4,
).map(lambda labels: ".".join([*labels[:-1], "x" + labels[-1]]))


@st.composite
def ech_config_contents(draw: st.DrawFn) -> ECHConfigContents:
    """ECHConfigContents for version 0xfe0d with a key of the KEM's length."""
    kem = draw(st.sampled_from(_KEMS))
    public_key = draw(
        st.binary(
            min_size=hpke.public_key_length(kem), max_size=hpke.public_key_length(kem)
        )
    )
    suites = draw(st.lists(hpke_suites, min_size=1, max_size=4))
    types = draw(st.lists(u16s, max_size=3, unique=True))
    extensions = tuple(
        ECHConfigExtension(t, draw(small_bytes(0, 12)))
        for t in types
        if t != ECH_VERSION
    )
    return ECHConfigContents(
        config_id=draw(u8s),
        kem_id=kem,
        public_key=public_key,
        cipher_suites=tuple(suites),
        maximum_name_length=draw(u8s),
        public_name=draw(public_names).encode("ascii"),
        extensions=extensions,
    )


def _contents_fields(c: ECHConfigContents) -> list[bytes]:
    """ECHConfigContents field by field, so one field can be broken."""
    suites = b"".join(
        s.kdf_id.to_bytes(2, "big") + s.aead_id.to_bytes(2, "big")
        for s in c.cipher_suites
    )
    extensions = b"".join(
        e.type.to_bytes(2, "big") + encode_opaque(2, e.data) for e in c.extensions
    )
    return [
        bytes((c.config_id,)) + c.kem_id.to_bytes(2, "big"),
        encode_opaque(2, c.public_key),
        encode_opaque(2, suites),
        bytes((c.maximum_name_length,)),
        encode_opaque(1, c.public_name),
        encode_opaque(2, extensions),
    ]


def _config_wire(version: int, body: bytes, length_delta: int = 0) -> bytes:
    return (
        version.to_bytes(2, "big")
        + (len(body) + length_delta).to_bytes(2, "big")
        + body
    )


#: The ways :func:`ech_configs` breaks a config; each is a decode_error
#: (RFC 9849 §4's vector limits, RFC 8446 §3: every vector consumed exactly).
CONFIG_BREAKS = (
    "contents truncated",
    "trailing bytes in contents",
    "length one too long",
    "length one too short",
    "empty public_key",
    "cipher_suites not a multiple of 4",
    "empty cipher_suites",
    "empty public_name",
    "extensions length one too long",
)


@st.composite
def ech_configs(draw: st.DrawFn, *, valid: bool = True) -> Drawn[ECHConfig]:
    """One ECHConfig of version 0xfe0d; ``wire`` is its bytes (RFC 9849 §4).

    A valid draw parses back to ``value`` inside an ECHConfigList. It need
    not be *usable* (unknown suites, mandatory extensions): that is the
    client's decision (§6.1), not a parse error. A broken draw is refused
    with decode_error, by :data:`CONFIG_BREAKS`.
    """
    contents = draw(ech_config_contents())
    config = ECHConfig.from_contents(contents)
    if valid:
        return Drawn(config, config.raw)
    how = draw(st.sampled_from(CONFIG_BREAKS))
    fields = _contents_fields(contents)
    body = b"".join(fields)
    delta = 0
    if how == "contents truncated":
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "trailing bytes in contents":
        body += draw(st.binary(min_size=1, max_size=8))
    elif how == "length one too long":
        delta = 1
    elif how == "length one too short":
        delta = -1
    elif how == "empty public_key":
        fields[1] = b"\x00\x00"
    elif how == "cipher_suites not a multiple of 4":
        fields[2] = encode_opaque(
            2, fields[2][2:] + draw(st.binary(min_size=2, max_size=2))
        )
    elif how == "empty cipher_suites":
        fields[2] = b"\x00\x00"
    elif how == "empty public_name":
        fields[4] = b"\x00"
    else:
        fields[5] = (len(fields[5]) - 1).to_bytes(2, "big") + fields[5][2:]
    if how not in ("contents truncated", "trailing bytes in contents"):
        body = b"".join(fields)
    wire = _config_wire(ECH_VERSION, body, delta)
    return Drawn(config, wire, DECODE, how, "RFC 9849 §4, RFC 8446 §3")


@st.composite
def _unknown_version_configs(draw: st.DrawFn) -> ECHConfig:
    """A config of another version: kept, never parsed (RFC 9849 §4)."""
    version = draw(u16s.filter(lambda v: v != ECH_VERSION))
    body = draw(small_bytes(0, 30))
    return ECHConfig(version, None, _config_wire(version, body))


@st.composite
def ech_config_lists(draw: st.DrawFn, *, valid: bool = True) -> Drawn[ECHConfigList]:
    """An ECHConfigList (RFC 9849 §4); ``wire`` has its 2-byte length.

    Valid lists mix 0xfe0d configs with configs of unknown versions (which
    a client skips, §4). Broken ones hold a broken config, are cut, carry a
    trailing byte, or have the list length off by one; each is decode_error
    (RFC 9849 §6.1.6 names it for retry_configs).
    """
    configs = draw(
        st.lists(
            st.one_of(
                ech_configs().map(lambda d: d.value),
                _unknown_version_configs(),
            ),
            min_size=1,
            max_size=4,
        ).filter(lambda cs: any(c.contents is not None for c in cs))
    )
    value = ECHConfigList(tuple(configs))
    wire = value.encode()
    if valid:
        return Drawn(value, wire)
    body = wire[2:]
    how = draw(
        st.sampled_from(
            ["broken config", "truncated", "trailing bytes", "length +1", "length -1"]
        )
    )
    rule = "RFC 9849 §4, §6.1.6"
    if how == "broken config":
        broken = draw(ech_configs(valid=False))
        index = draw(st.integers(0, len(configs)))
        raws = [c.raw for c in configs]
        raws.insert(index, broken.wire)
        return Drawn(
            value, encode_opaque(2, b"".join(raws)), DECODE, broken.mutation, rule
        )
    if how == "truncated":
        return Drawn(
            value, wire[: draw(st.integers(0, len(wire) - 1))], DECODE, how, rule
        )
    if how == "trailing bytes":
        tail = draw(st.binary(min_size=1, max_size=4))
        return Drawn(value, wire + tail, DECODE, how, rule)
    delta = 1 if how == "length +1" else -1
    return Drawn(
        value, (len(body) + delta).to_bytes(2, "big") + body, DECODE, how, rule
    )


# --- ClientHelloInner (RFC 9849 §5, §7.1) --------------------------------------------

#: Extension types our generated hellos use for "anything else".
_PLAIN_TYPES = st.integers(0x1000, 0xFCFF)

_SIG_ALGS = (
    SignatureScheme.ECDSA_SECP256R1_SHA256,
    SignatureScheme.RSA_PSS_RSAE_SHA256,
    SignatureScheme.ED25519,
)


@st.composite
def _key_shares(draw: st.DrawFn) -> bytes:
    """A real X25519 key share, from a drawn private scalar (never low order)."""
    secret = draw(st.binary(min_size=32, max_size=32))
    public = x25519.X25519PrivateKey.from_private_bytes(secret).public_key()
    return ext.encode_client_key_shares(
        [KeyShareEntry(NamedGroup.X25519, public.public_bytes_raw())]
    )


@st.composite
def _inner_extensions(draw: st.DrawFn, server_name: str | None) -> list[Extension]:
    """The extensions of a ClientHelloInner a real server can answer."""
    name = server_name if server_name is not None else draw(host_names)
    versions = [TLS13]
    if draw(st.booleans()):
        versions.insert(draw(st.integers(0, 1)), draw(grease))  # ECH-78
    extensions = [
        Extension(E.SERVER_NAME, ext.encode_server_name(name)),
        Extension(
            E.SUPPORTED_GROUPS,
            ext.encode_u16_vector([NamedGroup.X25519, NamedGroup.SECP256R1]),
        ),
        Extension(E.SIGNATURE_ALGORITHMS, ext.encode_u16_vector(_SIG_ALGS)),
        Extension(E.SUPPORTED_VERSIONS, ext.encode_client_versions(versions)),
        Extension(E.PSK_KEY_EXCHANGE_MODES, ext.encode_psk_modes([1])),
        Extension(E.KEY_SHARE, draw(_key_shares())),
    ]
    if draw(st.booleans()):
        alpn = draw(
            st.lists(st.sampled_from([b"h2", b"http/1.1"]), min_size=1, unique=True)
        )
        extensions.insert(
            3,
            Extension(E.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.encode_alpn(alpn)),
        )
    others = draw(st.lists(_PLAIN_TYPES, max_size=3, unique=True))
    for t in others:
        extensions.insert(
            draw(st.integers(0, len(extensions))),
            Extension(t, draw(small_bytes(0, 16))),
        )
    marker = Extension(E.ENCRYPTED_CLIENT_HELLO, INNER_BODY)
    extensions.insert(draw(st.integers(0, len(extensions))), marker)
    return extensions


@st.composite
def _client_hello_inner_values(
    draw: st.DrawFn, server_name: str | None = None
) -> ClientHello:
    return ClientHello(
        random=draw(st.binary(min_size=32, max_size=32)),
        legacy_session_id=draw(
            st.one_of(st.just(b""), st.binary(min_size=32, max_size=32))
        ),
        cipher_suites=(
            CipherSuite.TLS_AES_128_GCM_SHA256,
            CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        ),
        extensions=tuple(draw(_inner_extensions(server_name))),
    )


#: What :func:`client_hello_inners` breaks beyond the structure (RFC 9849 §7.1,
#: ECH-78), each illegal_parameter.
INNER_BREAKS = (
    "no inner encrypted_client_hello",
    "encrypted_client_hello of type outer",
    "unknown ECHClientHelloType",
    "offers TLS 1.2",
    "no supported_versions",
)


@st.composite
def client_hello_inners(
    draw: st.DrawFn, *, valid: bool = True, server_name: str | None = None
) -> Drawn[ClientHello]:
    """ClientHelloInner (RFC 9849 §5): what a server checks after decrypting.

    ``wire`` is the whole handshake message. Valid: an inner-form ECH
    extension, TLS 1.3 only (GREASE allowed, ECH-78), a real X25519
    key share, unique extension types. Broken: one of :data:`INNER_BREAKS`
    (illegal_parameter, §7.1) or :func:`broken_client_hellos`.
    """
    hello = draw(_client_hello_inner_values(server_name))
    if valid:
        return Drawn(hello, client_hello_wire(hello))
    if draw(st.booleans()):
        # The pre_shared_key position is the server's next check, not one
        # of the ClientHelloInner checks of §7.1 this strategy is about.
        breaks = tuple(b for b in HELLO_BREAKS if b not in _NEGOTIATION_BREAKS)
        return draw(broken_client_hellos(hello, breaks=breaks))
    how = draw(st.sampled_from(INNER_BREAKS))
    marker_type = E.ENCRYPTED_CLIENT_HELLO
    if how == "no inner encrypted_client_hello":
        broken = hello.without_extension(marker_type)
    elif how == "encrypted_client_hello of type outer":
        offer = ECHClientHelloOuter(
            _SUITES[0], draw(u8s), draw(small_bytes(0, 32)), draw(small_bytes(1, 32))
        )
        broken = hello.with_extension(Extension(marker_type, offer.encode()))
    elif how == "unknown ECHClientHelloType":
        broken = hello.with_extension(
            Extension(marker_type, bytes((draw(st.integers(2, 255)),)))
        )
    elif how == "offers TLS 1.2":
        versions = draw(st.permutations([TLS13, TLS12]))
        broken = hello.with_extension(
            Extension(E.SUPPORTED_VERSIONS, ext.encode_client_versions(versions))
        )
    else:
        broken = hello.without_extension(E.SUPPORTED_VERSIONS)
    return Drawn(hello, client_hello_wire(broken), ILLEGAL, how, "RFC 9849 §7.1")


# --- broken ClientHellos, structurally ----------------------------------------------

#: How :func:`broken_client_hellos` breaks a ClientHello's encoding; all are
#: decode_error (RFC 8446 §3, §4.1.2) but the duplicate (illegal_parameter,
#: lenient: RFC 8446 §4.2 binds the sender only) and a pre_shared_key that is
#: not last (illegal_parameter, RFC 8446 §4.2.11).
HELLO_BREAKS = (
    "truncated",
    "trailing bytes",
    "extensions length +1",
    "extensions length -1",
    "last extension length +1",
    "last extension length -1",
    "legacy_session_id of 33 bytes",
    "odd cipher_suites length",
    "empty cipher_suites",
    "empty legacy_compression_methods",
    "duplicated extension",
    "pre_shared_key not last",
    "no extensions (a hello of an earlier TLS)",
)

#: Breaks that only a server's negotiation refuses, not the ClientHelloInner
#: checks of RFC 9849 §7.1.
_NEGOTIATION_BREAKS = frozenset(
    {"pre_shared_key not last", "no extensions (a hello of an earlier TLS)"}
)


def _extensions_offset(fields: Sequence[bytes]) -> int:
    """Where a hello's extension block starts (after legacy_compression_methods)."""
    return sum(len(f) for f in fields[:-1])


def _cut(draw: st.DrawFn, length: int, boundary: int) -> int:
    """A strict prefix length that is not ``boundary``.

    A hello cut right before its extension block is a hello of an earlier
    TLS (RFC 8446 §4.1.2), refused with protocol_version rather than
    decode_error: that break has its own name.
    """
    cut = draw(st.integers(0, length - 1))
    return cut - 1 if cut == boundary else cut


def _hello_fields(hello: ClientHello) -> list[bytes]:
    """ClientHello field by field (RFC 8446 §4.1.2), so one can be broken."""
    w = Writer()
    w.u16(hello.legacy_version)
    head = w.getvalue() + hello.random
    suites = b"".join(s.to_bytes(2, "big") for s in hello.cipher_suites)
    return [
        head,
        encode_opaque(1, hello.legacy_session_id),
        encode_opaque(2, suites),
        encode_opaque(1, hello.legacy_compression_methods),
        _extension_block(hello.extensions),
    ]


def _extension_block(extensions: Sequence[Extension], last_delta: int = 0) -> bytes:
    parts = [e.type.to_bytes(2, "big") + encode_opaque(2, e.data) for e in extensions]
    if last_delta and parts:
        last = extensions[-1]
        length = len(last.data) + last_delta
        parts[-1] = last.type.to_bytes(2, "big") + length.to_bytes(2, "big") + last.data
    return encode_opaque(2, b"".join(parts))


@st.composite
def broken_client_hellos(
    draw: st.DrawFn, hello: ClientHello, *, breaks: Sequence[str] = HELLO_BREAKS
) -> Drawn[ClientHello]:
    """``hello`` broken in one of :data:`HELLO_BREAKS` ways; a handshake message.

    Every break is refused by the first parser that reads the hello, so
    the bytes can be sent as they are: the handshake header always matches
    the body, and nothing realigns after a bad length (only the *last*
    vector or extension gets one).
    """
    how = draw(st.sampled_from(breaks))
    fields = _hello_fields(hello)
    body = b"".join(fields)
    alert, lenient, rule = DECODE, False, "RFC 8446 §3, §4.1.2"
    if how == "truncated":
        body = body[: _cut(draw, len(body), _extensions_offset(fields))]
    elif how == "trailing bytes":
        body += draw(st.binary(min_size=1, max_size=8))
    elif how == "no extensions (a hello of an earlier TLS)":
        body = body[: _extensions_offset(fields)]
        alert, rule = A.PROTOCOL_VERSION, "RFC 8446 §4.1.2, §4.2.1"
    elif how in ("extensions length +1", "extensions length -1"):
        block = fields[4]
        delta = 1 if how.endswith("+1") else -1
        fields[4] = (len(block) - 2 + delta).to_bytes(2, "big") + block[2:]
        body = b"".join(fields)
    elif how.startswith("last extension length"):
        delta = 1 if how.endswith("+1") or not hello.extensions[-1].data else -1
        fields[4] = _extension_block(hello.extensions, delta)
        body = b"".join(fields)
    elif how == "legacy_session_id of 33 bytes":
        fields[1] = encode_opaque(1, draw(st.binary(min_size=33, max_size=33)))
        body = b"".join(fields)
    elif how == "odd cipher_suites length":
        fields[2] = encode_opaque(
            2, fields[2][2:] + draw(st.binary(min_size=1, max_size=1))
        )
        body = b"".join(fields)
    elif how == "empty cipher_suites":
        fields[2] = b"\x00\x00"
        body = b"".join(fields)
    elif how == "empty legacy_compression_methods":
        fields[3] = b"\x00"
        body = b"".join(fields)
    elif how == "pre_shared_key not last":
        offered = OfferedPsks(
            (PskIdentity(draw(small_bytes(1, 32)), draw(u32s)),),
            (draw(st.binary(min_size=32, max_size=32)),),
        )
        extensions = [e for e in hello.extensions if e.type != E.PRE_SHARED_KEY]
        at = draw(st.integers(0, len(extensions) - 1))
        extensions.insert(at, Extension(E.PRE_SHARED_KEY, offered.encode()))
        body = dataclasses.replace(hello, extensions=tuple(extensions)).encode()
        alert, rule = ILLEGAL, "RFC 8446 §4.2.11"
    else:
        index = draw(st.integers(0, len(hello.extensions) - 1))
        extensions = list(hello.extensions)
        extensions.insert(index + 1, extensions[index])
        body = dataclasses.replace(hello, extensions=tuple(extensions)).encode()
        alert, lenient, rule = ILLEGAL, True, "RFC 8446 §4.2"
    wire = frame_handshake(HandshakeType.CLIENT_HELLO, body)
    return Drawn(hello, wire, alert, how, rule, lenient=lenient)


# --- EncodedClientHelloInner (RFC 9849 §5.1, Appendix A) -----------------------------


@st.composite
def _outer_for(draw: st.DrawFn, inner: ClientHello) -> tuple[ClientHello, list[int]]:
    """A ClientHelloOuter holding a contiguous run of ``inner``'s extensions."""
    # Neither the inner ECH marker nor server_name is ever compressed: the
    # outer hello names the public name (RFC 9849 §6.1).
    candidates = [
        i
        for i, e in enumerate(inner.extensions)
        if e.type not in (E.ENCRYPTED_CLIENT_HELLO, E.SERVER_NAME)
    ]
    start = draw(st.integers(0, len(candidates)))
    stop = draw(st.integers(start, len(candidates)))
    # Contiguous in the inner hello (ECH-27): no marker inside the run.
    run_indexes = candidates[start:stop]
    if run_indexes and run_indexes[-1] - run_indexes[0] != len(run_indexes) - 1:
        run_indexes = run_indexes[:1]
    run = [inner.extensions[i] for i in run_indexes]
    used = {e.type for e in inner.extensions}
    fillers = [
        Extension(t, draw(small_bytes(0, 12)))
        for t in draw(st.lists(_PLAIN_TYPES, max_size=4, unique=True))
        if t not in used
    ]
    # As a client builds it (RFC 9849 §6.1): the inner hello's extensions in
    # their order, so the run keeps its relative order and a server that
    # rejects ECH can go on with this hello; plus some of its own.
    outer_extensions = [inner.extensions[i] for i in candidates]
    for filler in fillers:
        outer_extensions.insert(draw(st.integers(0, len(outer_extensions))), filler)
    outer_extensions.insert(
        0, Extension(E.SERVER_NAME, ext.encode_server_name(draw(public_names)))
    )
    ech_body = ECHClientHelloOuter(_SUITES[0], 7, bytes(32), bytes(48)).encode()
    outer_extensions.append(Extension(E.ENCRYPTED_CLIENT_HELLO, ech_body))
    outer = ClientHello(
        random=draw(st.binary(min_size=32, max_size=32)),
        legacy_session_id=inner.legacy_session_id,
        cipher_suites=inner.cipher_suites,
        extensions=tuple(outer_extensions),
    )
    return outer, [e.type for e in run]


#: How :func:`encoded_client_hello_inners` breaks an encoding.
ENCODED_BREAKS = (
    "non-zero padding",
    "reference to a missing extension",
    "references out of order",
    "reference repeated",
    "reference to encrypted_client_hello",
    "two ech_outer_extensions",
    "empty ech_outer_extensions",
    "odd ech_outer_extensions length",
    "ClientHello truncated",
    "extensions length +1",
    "extensions length -1",
)


@st.composite
def encoded_client_hello_inners(
    draw: st.DrawFn, *, valid: bool = True
) -> Drawn[EncodedClientHelloInner]:
    """EncodedClientHelloInner with the ClientHelloOuter it refers to (§5.1).

    ``wire`` is the EncodedClientHelloInner (the plaintext a client seals);
    decode it against ``value.client_hello_outer``. Valid: it rebuilds
    ``value.client_hello_inner`` exactly. Broken, by
    :data:`ENCODED_BREAKS`: padding and reference rules are
    illegal_parameter (§5.1, Appendix A; ECH-29, ECH-31), encoding
    errors decode_error.
    """
    inner = draw(_client_hello_inner_values())
    outer, run = draw(_outer_for(inner))
    inner = dataclasses.replace(inner, legacy_session_id=outer.legacy_session_id)
    padding = draw(st.integers(0, 40))
    compressed = compress(inner, run)
    hello_bytes = compressed.encode()
    wire = hello_bytes + bytes(padding)
    value = EncodedClientHelloInner(inner, outer, tuple(run), wire)
    if valid:
        return Drawn(value, wire)
    how = draw(st.sampled_from(ENCODED_BREAKS))
    rule = "RFC 9849 §5.1, Appendix A"
    outer_types = {e.type for e in outer.extensions}

    def with_refs(refs: list[int], extra: bool = False) -> bytes:
        body = encode_outer_extensions(refs)
        extensions = list(compressed.extensions)
        for i, e in enumerate(extensions):
            if e.type == E.ECH_OUTER_EXTENSIONS:
                extensions[i] = Extension(E.ECH_OUTER_EXTENSIONS, body)
                break
        else:
            extensions.insert(0, Extension(E.ECH_OUTER_EXTENSIONS, body))
        if extra:
            extensions.append(Extension(E.ECH_OUTER_EXTENSIONS, body))
        encoded = dataclasses.replace(compressed, extensions=tuple(extensions))
        return encoded.encode() + bytes(padding)

    if how == "non-zero padding":
        pad = bytearray(max(padding, 1))
        pad[draw(st.integers(0, len(pad) - 1))] = draw(st.integers(1, 255))
        return Drawn(value, hello_bytes + bytes(pad), ILLEGAL, how, rule)
    if how == "reference to a missing extension":
        missing = draw(_PLAIN_TYPES.filter(lambda t: t not in outer_types))
        refs = list(run)
        refs.insert(draw(st.integers(0, len(refs))), missing)
        return Drawn(value, with_refs(refs), ILLEGAL, how, rule)
    if how == "references out of order" and len(run) >= 2:
        i = draw(st.integers(0, len(run) - 2))
        refs = list(run)
        refs[i], refs[i + 1] = refs[i + 1], refs[i]
        return Drawn(value, with_refs(refs), ILLEGAL, how, rule)
    if how in ("reference repeated", "references out of order") and run:
        i = draw(st.integers(0, len(run) - 1))
        refs = [*run[: i + 1], run[i], *run[i + 1 :]]
        return Drawn(value, with_refs(refs), ILLEGAL, "reference repeated", rule)
    if how in ("reference repeated", "references out of order"):
        how = "reference to encrypted_client_hello"
    if how == "reference to encrypted_client_hello":
        refs = list(run)
        refs.insert(draw(st.integers(0, len(refs))), E.ENCRYPTED_CLIENT_HELLO)
        return Drawn(value, with_refs(refs), ILLEGAL, how, rule)
    if how == "two ech_outer_extensions":
        refs = list(run) or [E.SERVER_NAME]
        return Drawn(value, with_refs(refs, extra=True), ILLEGAL, how, rule)
    if how in ("empty ech_outer_extensions", "odd ech_outer_extensions length"):
        body = b"\x00" if how.startswith("empty") else b"\x03" + bytes(3)
        extensions = [
            e for e in compressed.extensions if e.type != E.ECH_OUTER_EXTENSIONS
        ]
        extensions.insert(0, Extension(E.ECH_OUTER_EXTENSIONS, body))
        encoded = dataclasses.replace(compressed, extensions=tuple(extensions))
        return Drawn(value, encoded.encode() + bytes(padding), DECODE, how, rule)
    if how == "ClientHello truncated":
        boundary = _extensions_offset(_hello_fields(compressed))
        cut = _cut(draw, len(hello_bytes), boundary)
        return Drawn(value, hello_bytes[:cut], DECODE, how, rule)
    fields = _hello_fields(compressed)
    block = fields[4]
    delta = 1 if how.endswith("+1") else -1
    fields[4] = (len(block) - 2 + delta).to_bytes(2, "big") + block[2:]
    return Drawn(value, b"".join(fields) + bytes(padding), DECODE, how, rule)


# --- ClientHelloOuter (RFC 9849 §5, §6.1, §7) ----------------------------------------


def _sealed(
    inner: ClientHello,
    outer: ClientHello,
    run: Sequence[int],
    padding: int,
    config: ECHConfig,
) -> SealedClientHello:
    encoded = compress(inner, run).encode() + bytes(padding)
    sealed = seal_client_hello(outer, encoded, config)
    return SealedClientHello(sealed, inner, encoded, config)


#: How :func:`broken_client_hello_outers` breaks the ECH part of a hello.
OUTER_BREAKS = (
    "unknown ECHClientHelloType",
    "empty ECH payload",
    "ECH extension truncated",
    "trailing bytes in the ECH extension",
    "inner ECH extension in ClientHelloOuter",
    "sealed: non-zero padding",
    "sealed: reference to a missing extension",
    "sealed: reference to encrypted_client_hello",
    "sealed: two ech_outer_extensions",
    "sealed: inner offers TLS 1.2",
    "sealed: inner without its ECH extension",
    "sealed: EncodedClientHelloInner truncated",
)

#: What :func:`broken_client_hello_outers` changes after sealing, with
#: ``tampered=True``: each makes decryption fail (RFC 9849 §5.2: the AAD
#: covers the whole hello), so a server must not accept ECH.
TAMPERS = (
    "payload byte flipped",
    "enc byte flipped",
    "random byte flipped",
    "HPKE AEAD changed",
    "HPKE KDF changed",
)


@st.composite
def broken_client_hello_outers(
    draw: st.DrawFn, sealed: SealedClientHello, *, tampered: bool = False
) -> Drawn[SealedClientHello]:
    """``sealed`` broken (:data:`OUTER_BREAKS`) or tampered (:data:`TAMPERS`).

    Broken draws are refused by a client-facing server: an unknown type,
    a malformed extension (decode_error, §7), a sealed inner that breaks
    §5.1 or §7.1 (illegal_parameter; decode_error if it does not parse).
    An inner-form extension from the network is illegal_parameter for a
    shared-mode server (ECH-73) but Go and BoringSSL take it as
    "I am the backend": lenient. ``sealed.inner`` must be a ClientHello the
    server can otherwise answer, and ``sealed.outer`` must carry it.
    """
    outer, inner, config = sealed.outer, sealed.inner, sealed.config
    data = outer.extension(E.ENCRYPTED_CLIENT_HELLO)
    offer = parse_client_hello_extension(data) if data is not None else None
    if offer is None:
        raise ValueError("the hello carries no outer ECH extension")
    if tampered:
        how = draw(st.sampled_from(TAMPERS))
        position = draw(st.integers(0, 1 << 16))
        flip = draw(st.integers(1, 255))
        if how == "random byte flipped":
            random = bytearray(outer.random)
            random[position % 32] ^= flip
            changed = dataclasses.replace(outer, random=bytes(random))
        else:
            if how == "payload byte flipped":
                payload = bytearray(offer.payload)
                payload[position % len(payload)] ^= flip
                offer = offer.with_payload(bytes(payload))
            elif how == "enc byte flipped" and offer.enc:
                enc = bytearray(offer.enc)
                enc[position % len(enc)] ^= flip
                offer = dataclasses.replace(offer, enc=bytes(enc))
            else:
                suite = offer.cipher_suite
                if how == "HPKE KDF changed":
                    kdf = suite.kdf_id ^ (flip or 1)
                    suite = HpkeSymmetricCipherSuite(kdf, suite.aead_id)
                else:
                    aead = suite.aead_id ^ (flip or 1)
                    suite = HpkeSymmetricCipherSuite(suite.kdf_id, aead)
                offer = dataclasses.replace(offer, cipher_suite=suite)
            changed = outer.with_extension(
                Extension(E.ENCRYPTED_CLIENT_HELLO, offer.encode())
            )
        return Drawn(
            sealed,
            client_hello_wire(changed),
            None,
            how,
            "RFC 9849 §5.2, §7.1",
            tampered=True,
        )
    how = draw(st.sampled_from(OUTER_BREAKS))
    rule = "RFC 9849 §7" if not how.startswith("sealed") else "RFC 9849 §5.1, §7.1"
    alert, lenient = ILLEGAL, False
    body = offer.encode()
    if how == "unknown ECHClientHelloType":
        body = bytes((draw(st.integers(2, 255)),)) + body[1:]
    elif how == "empty ECH payload":
        body = dataclasses.replace(offer, payload=b"").encode()
        alert = DECODE
    elif how == "ECH extension truncated":
        body = body[: draw(st.integers(0, len(body) - 1))]
        alert = DECODE
    elif how == "trailing bytes in the ECH extension":
        body += draw(st.binary(min_size=1, max_size=4))
        alert = DECODE
    elif how == "inner ECH extension in ClientHelloOuter":
        body, lenient = INNER_BODY, True
    if not how.startswith("sealed"):
        changed = outer.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, body))
        return Drawn(
            sealed, client_hello_wire(changed), alert, how, rule, lenient=lenient
        )
    # Re-seal a broken EncodedClientHelloInner to the same config.
    encoded = sealed.encoded
    base = compress(inner, [])
    if how == "sealed: non-zero padding":
        pad = bytearray(draw(st.integers(1, 16)))
        pad[draw(st.integers(0, len(pad) - 1))] = draw(st.integers(1, 255))
        encoded = base.encode() + bytes(pad)
    elif how == "sealed: reference to a missing extension":
        used = {e.type for e in outer.extensions}
        missing = draw(_PLAIN_TYPES.filter(lambda t: t not in used))
        encoded = _with_outer_extensions(base, [missing])
    elif how == "sealed: reference to encrypted_client_hello":
        encoded = _with_outer_extensions(base, [E.ENCRYPTED_CLIENT_HELLO])
    elif how == "sealed: two ech_outer_extensions":
        encoded = _with_outer_extensions(base, [E.SERVER_NAME], twice=True)
    elif how == "sealed: inner offers TLS 1.2":
        versions = ext.encode_client_versions([TLS13, TLS12])
        encoded = base.with_extension(
            Extension(E.SUPPORTED_VERSIONS, versions)
        ).encode()
    elif how == "sealed: inner without its ECH extension":
        encoded = base.without_extension(E.ENCRYPTED_CLIENT_HELLO).encode()
    else:
        whole = base.encode()
        encoded = whole[
            : _cut(draw, len(whole), _extensions_offset(_hello_fields(base)))
        ]
        alert = DECODE
    resealed = seal_client_hello(outer, encoded, config)
    value = SealedClientHello(resealed, inner, encoded, config)
    return Drawn(value, client_hello_wire(resealed), alert, how, rule)


def _with_outer_extensions(
    hello: ClientHello, refs: list[int], *, twice: bool = False
) -> bytes:
    body = encode_outer_extensions(refs)
    extensions = [Extension(E.ECH_OUTER_EXTENSIONS, body), *hello.extensions]
    if twice:
        extensions.append(Extension(E.ECH_OUTER_EXTENSIONS, body))
    return dataclasses.replace(hello, extensions=tuple(extensions)).encode()


@st.composite
def client_hello_outers(
    draw: st.DrawFn,
    config: ECHConfig,
    *,
    valid: bool = True,
    tampered: bool = False,
    server_name: str | None = None,
) -> Drawn[SealedClientHello]:
    """ClientHelloOuter with a ClientHelloInner HPKE-sealed to ``config``.

    ``wire`` is the whole handshake message; wrap it with
    :func:`ech.testing.drawn.client_hello_record` to send it. The inner
    hello (:func:`client_hello_inners`) names ``server_name`` (or a drawn
    name) and can be answered by a real server; the outer one names
    ``config``'s public_name and carries the compressed extensions.

    Valid: a server holding ``config``'s key rebuilds ``value.inner``
    exactly. ``valid=False``: :func:`broken_client_hello_outers` or
    :func:`broken_client_hellos` (refused with ``alert``).
    ``tampered=True``: well formed, but a server must not accept ECH.
    """
    contents = config.contents
    if contents is None:
        raise ValueError("the ECHConfig has an unknown version")
    inner = draw(_client_hello_inner_values(server_name))
    outer, run = draw(_outer_for(inner))
    sni = Extension(E.SERVER_NAME, ext.encode_server_name(config.public_name))
    outer = outer.with_extension(sni)
    inner = dataclasses.replace(inner, legacy_session_id=outer.legacy_session_id)
    sealed = _sealed(inner, outer, run, draw(st.integers(0, 40)), config)
    if valid and not tampered:
        return Drawn(sealed, client_hello_wire(sealed.outer))
    if tampered:
        return draw(broken_client_hello_outers(sealed, tampered=True))
    if draw(st.integers(0, 3)) == 0:
        broken = draw(broken_client_hellos(sealed.outer))
        return Drawn(
            sealed,
            broken.wire,
            broken.alert,
            broken.mutation,
            broken.rule,
            broken.lenient,
        )
    return draw(broken_client_hello_outers(sealed))


# --- ServerHello and HelloRetryRequest (RFC 8446 §4.1.3, §4.1.4) ---------------------

#: What :func:`server_hellos` breaks in meaning, answering a ClientHello.
SERVER_HELLO_BREAKS = (
    ("selects TLS 1.2 in supported_versions", ILLEGAL, "RFC 8446 §4.2.1", False),
    ("selects a cipher suite not offered", ILLEGAL, "RFC 8446 §4.1.3", False),
    ("legacy_session_id_echo differs", ILLEGAL, "RFC 8446 §4.1.3", False),
    ("unrequested extension", A.UNSUPPORTED_EXTENSION, "RFC 8446 §4.2", False),
    ("non-zero legacy_compression_method", ILLEGAL, "RFC 8446 §4.1.3", True),
)


#: How the structure of a ServerHello is broken: decode_error (RFC 8446 §3,
#: §4.1.3), and a duplicated extension illegal_parameter (lenient).
SERVER_HELLO_STRUCTURE_BREAKS = (
    "truncated",
    "trailing bytes",
    "extensions length +1",
    "extensions length -1",
    "last extension length +1",
    "last extension length -1",
    "legacy_session_id of 33 bytes",
    "duplicated extension",
)


def _server_hello_wire(sh: ServerHello) -> bytes:
    return frame_handshake(HandshakeType.SERVER_HELLO, sh.encode())


@st.composite
def _server_hello_values(
    draw: st.DrawFn, answering: ClientHello | None, *, retry: bool
) -> ServerHello:
    if answering is not None:
        suites = [s for s in answering.cipher_suites if s in set(CipherSuite)]
        suite = draw(st.sampled_from(suites or [CipherSuite.TLS_AES_128_GCM_SHA256]))
        session_id = answering.legacy_session_id
    else:
        suite = draw(st.sampled_from(list(CipherSuite)))
        session_id = draw(small_bytes(0, 32))
    extensions = [Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(TLS13))]
    if retry:
        group: int = NamedGroup.SECP256R1
        if answering is not None:
            data = answering.extension(E.SUPPORTED_GROUPS)
            shares = answering.extension(E.KEY_SHARE)
            offered = ext.decode_u16_list(data) if data else (group,)
            sent = (
                {s.group for s in ext.decode_client_key_shares(shares)}
                if shares
                else set()
            )
            choices = [g for g in offered if g not in sent and g in set(NamedGroup)]
            group = draw(st.sampled_from(choices or [group]))
        extensions.append(Extension(E.KEY_SHARE, ext.encode_u16(group)))
        if draw(st.booleans()):
            cookie = draw(small_bytes(1, 40))
            extensions.append(Extension(E.COOKIE, ext.encode_cookie(cookie)))
        if answering is not None and answering.has_extension(E.ENCRYPTED_CLIENT_HELLO):
            extensions.append(
                Extension(
                    E.ENCRYPTED_CLIENT_HELLO, draw(st.binary(min_size=8, max_size=8))
                )
            )
        random = HELLO_RETRY_REQUEST_RANDOM
    else:
        secret = draw(st.binary(min_size=32, max_size=32))
        public = x25519.X25519PrivateKey.from_private_bytes(secret).public_key()
        share = KeyShareEntry(NamedGroup.X25519, public.public_bytes_raw())
        extensions.append(Extension(E.KEY_SHARE, ext.encode_server_key_share(share)))
        random = draw(
            st.binary(min_size=32, max_size=32).filter(
                lambda r: r != HELLO_RETRY_REQUEST_RANDOM
            )
        )
    order = draw(st.permutations(extensions))
    return ServerHello(random, session_id, suite, tuple(order))


@st.composite
def _broken_server_hellos(
    draw: st.DrawFn, sh: ServerHello, answering: ClientHello | None
) -> Drawn[ServerHello]:
    if answering is None or draw(st.booleans()):
        # The structural breaks of a ClientHello that a ServerHello shares.
        how = draw(st.sampled_from(SERVER_HELLO_STRUCTURE_BREAKS))
        body = sh.encode()
        alert, lenient = DECODE, False
        head = body[: 2 + 32]
        sid = encode_opaque(1, sh.legacy_session_id_echo)
        rest = sh.cipher_suite.to_bytes(2, "big") + bytes(
            (sh.legacy_compression_method,)
        )
        block = _extension_block(sh.extensions)
        if how == "truncated":
            body = body[: _cut(draw, len(body), len(head + sid + rest))]
        elif how == "trailing bytes":
            body += draw(st.binary(min_size=1, max_size=8))
        elif how.startswith("extensions length"):
            delta = 1 if how.endswith("+1") else -1
            body = (
                head
                + sid
                + rest
                + (len(block) - 2 + delta).to_bytes(2, "big")
                + block[2:]
            )
        elif how.startswith("last extension length"):
            delta = 1 if how.endswith("+1") or not sh.extensions[-1].data else -1
            body = head + sid + rest + _extension_block(sh.extensions, delta)
        elif how == "legacy_session_id of 33 bytes":
            sid = encode_opaque(1, draw(st.binary(min_size=33, max_size=33)))
            body = head + sid + rest + block
        else:
            index = draw(st.integers(0, len(sh.extensions) - 1))
            extensions = list(sh.extensions)
            extensions.insert(index + 1, extensions[index])
            body = dataclasses.replace(sh, extensions=tuple(extensions)).encode()
            alert, lenient = ILLEGAL, True
        wire = frame_handshake(HandshakeType.SERVER_HELLO, body)
        return Drawn(sh, wire, alert, how, "RFC 8446 §3, §4.1.3", lenient=lenient)
    how, alert, rule, lenient = draw(st.sampled_from(SERVER_HELLO_BREAKS))
    if how.startswith("selects TLS 1.2"):
        broken = sh.with_extension(
            Extension(E.SUPPORTED_VERSIONS, ext.encode_u16(TLS12))
        )
    elif how.startswith("selects a cipher suite"):
        offered = set(answering.cipher_suites)
        suite = draw(
            st.sampled_from(
                [int(s) for s in CipherSuite if s not in offered] or [0x1305]
            )
        )
        broken = dataclasses.replace(sh, cipher_suite=suite)
    elif how.startswith("legacy_session_id_echo"):
        echo = draw(
            small_bytes(0, 32).filter(lambda b: b != answering.legacy_session_id)
        )
        broken = dataclasses.replace(sh, legacy_session_id_echo=echo)
    elif how == "unrequested extension":
        offered = {e.type for e in answering.extensions}
        t = draw(_PLAIN_TYPES.filter(lambda t: t not in offered))
        broken = dataclasses.replace(sh, extensions=(*sh.extensions, Extension(t, b"")))
    else:
        broken = dataclasses.replace(
            sh, legacy_compression_method=draw(st.integers(1, 255))
        )
    return Drawn(sh, _server_hello_wire(broken), alert, how, rule, lenient=lenient)


@st.composite
def server_hellos(
    draw: st.DrawFn, *, answering: ClientHello | None = None, valid: bool = True
) -> Drawn[ServerHello]:
    """A ServerHello (RFC 8446 §4.1.3); ``wire`` is the whole handshake message.

    With ``answering``, it answers that ClientHello as a server would (its
    session id echoed, one of its suites, TLS 1.3, a real X25519 share), so
    a client that sent it goes on. Broken draws are decode_error
    (structure) or, answering a hello, one of :data:`SERVER_HELLO_BREAKS`.
    """
    sh = draw(_server_hello_values(answering, retry=False))
    if valid:
        return Drawn(sh, _server_hello_wire(sh))
    return draw(_broken_server_hellos(sh, answering))


#: What :func:`hello_retry_requests` breaks in meaning (RFC 8446 §4.1.4,
#: RFC 9849 §6.1.4).
HRR_BREAKS = (
    ("selects a group already shared", ILLEGAL, "RFC 8446 §4.1.4"),
    ("selects a group not offered", ILLEGAL, "RFC 8446 §4.1.4"),
    ("changes nothing", ILLEGAL, "RFC 8446 §4.1.4"),
    ("ECH confirmation not 8 bytes", DECODE, "RFC 9849 §6.1.4"),
)


@st.composite
def hello_retry_requests(
    draw: st.DrawFn, *, answering: ClientHello | None = None, valid: bool = True
) -> Drawn[ServerHello]:
    """A HelloRetryRequest (RFC 8446 §4.1.4): a ServerHello with its random.

    With ``answering``, it selects a group that hello offered without a
    share, and carries an 8-byte ECH confirmation when that hello offered
    ECH (RFC 9849 §7.2.1; a random one, as a rejecting server sends).
    Broken draws: decode_error (structure) or :data:`HRR_BREAKS`.
    """
    hrr = draw(_server_hello_values(answering, retry=True))
    if valid:
        return Drawn(hrr, _server_hello_wire(hrr))
    if answering is None or draw(st.booleans()):
        return draw(_broken_server_hellos(hrr, None))
    how, alert, rule = draw(st.sampled_from(HRR_BREAKS))
    if how == "selects a group already shared":
        shares = ext.decode_client_key_shares(
            answering.extension(E.KEY_SHARE) or b"\x00\x00"
        )
        group = shares[0].group if shares else NamedGroup.X25519
        broken = hrr.with_extension(Extension(E.KEY_SHARE, ext.encode_u16(group)))
    elif how == "selects a group not offered":
        data = answering.extension(E.SUPPORTED_GROUPS)
        offered = set(ext.decode_u16_list(data)) if data else set()
        group = draw(u16s.filter(lambda g: g not in offered))
        broken = hrr.with_extension(Extension(E.KEY_SHARE, ext.encode_u16(group)))
    elif how == "changes nothing":
        broken = hrr.without_extension(E.KEY_SHARE).without_extension(E.COOKIE)
    else:
        length = draw(st.integers(0, 40).filter(lambda n: n != 8))
        broken = hrr.with_extension(
            Extension(
                E.ENCRYPTED_CLIENT_HELLO,
                draw(st.binary(min_size=length, max_size=length)),
            )
        )
    return Drawn(hrr, _server_hello_wire(broken), alert, how, rule)


__all__ = [
    "CONFIG_BREAKS",
    "DECODERS",
    "ENCODED_BREAKS",
    "HELLO_BREAKS",
    "HRR_BREAKS",
    "INNER_BREAKS",
    "OUTER_BREAKS",
    "SERVER_HELLO_BREAKS",
    "SERVER_HELLO_STRUCTURE_BREAKS",
    "TAMPERS",
    "broken_client_hello_outers",
    "broken_client_hellos",
    "client_hello_inners",
    "client_hello_outers",
    "ech_config_lists",
    "ech_configs",
    "encoded_client_hello_inners",
    "garbage",
    "hello_retry_requests",
    "messages",
    "mutations",
    "server_hellos",
]
