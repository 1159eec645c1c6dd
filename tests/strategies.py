"""Hypothesis strategies for TLS 1.3 handshake messages and extension bodies.

Every strategy yields values that satisfy the syntax limits of RFC 8446, so
``parse(encode(m)) == m`` must hold for each.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ech.tls import extensions as ext
from ech.tls.enums import ExtensionType
from ech.tls.extensions import Extension, KeyShareEntry, OfferedPsks, PskIdentity
from ech.tls.messages import (
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

server_hellos = st.builds(
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
    server_hellos,
    encrypted_extensions,
    certificate_requests,
    certificates,
    certificate_verifies,
    finisheds,
    new_session_tickets,
    key_updates,
    end_of_early_datas,
)

# extension bodies ----------------------------------------------------------------

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
DECODERS = {
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


# mutation ---------------------------------------------------------------------------


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one to three random edits: flips, cuts, inserts, deletes.

    The draws do not depend on ``len(data)``, so a test may mutate bytes that
    vary between runs (signatures, randoms) without confusing hypothesis.
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
