"""EncodedClientHelloInner: compression, padding and reconstruction (RFC 9849 §5.1).

The client replaces a contiguous run of ClientHelloInner extensions that are
identical in ClientHelloOuter by one ``ech_outer_extensions`` extension,
empties ``legacy_session_id`` and pads with zeros. The server undoes this
against the ClientHelloOuter it received, in linear time (Appendix A).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ech.errors import IllegalParameter
from ech.tls.enums import ExtensionType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello
from ech.tls.wire import Reader, encode_u16_list

E = ExtensionType
#: Plain ints for the decoding loops: an enum member lookup costs more.
_OUTER_EXTENSIONS = int(E.ECH_OUTER_EXTENSIONS)
_ENCRYPTED_CLIENT_HELLO = int(E.ENCRYPTED_CLIENT_HELLO)


def encode_outer_extensions(types: Sequence[int]) -> bytes:
    """``ExtensionType OuterExtensions<2..254>`` (ECH-26)."""
    if not 1 <= len(types) <= 127:
        raise ValueError("ech_outer_extensions names 1 to 127 extensions")
    return encode_u16_list(tuple(types), 1)


def decode_outer_extensions(data: bytes) -> tuple[int, ...]:
    """Decode an ``ech_outer_extensions`` body.

    Raises:
        DecodeError: malformed, empty or odd-length.
    """
    r = Reader(data)
    types = r.u16_items(1, min_len=2, max_len=254)
    r.expect_end()
    return types


def compress(inner: ClientHello, compressed: Collection[int]) -> ClientHello:
    """The ClientHello part of EncodedClientHelloInner (ECH-25 to ECH-27).

    ``compressed`` names extension types that the outer hello carries
    byte-identical, in the same relative order; those of them ``inner`` has
    must be contiguous there, and are replaced by one ``ech_outer_extensions``
    at their place, naming them in ``inner``'s order.
    """
    wanted = frozenset(compressed)
    extensions: list[Extension] = []
    names: list[int] = []
    at = -1
    for ext in inner.extensions:
        if ext.type not in wanted:
            extensions.append(ext)
            continue
        if not names:
            at = len(extensions)
            extensions.append(ext)  # replaced below, once all names are known
        elif at != len(extensions) - 1:
            raise ValueError("compressed extensions must be contiguous")
        names.append(ext.type)
    if names:
        extensions[at] = Extension(
            E.ECH_OUTER_EXTENSIONS, encode_outer_extensions(names)
        )
    return ClientHello(
        random=inner.random,
        legacy_session_id=b"",
        cipher_suites=inner.cipher_suites,
        extensions=tuple(extensions),
        legacy_version=inner.legacy_version,
        legacy_compression_methods=inner.legacy_compression_methods,
    )


def padding_length(
    encoded_length: int, server_name_length: int | None, maximum_name_length: int
) -> int:
    """Zero bytes to append, by RFC 9849 §6.1.3's recommended scheme.

    First pad the name up to ``maximum_name_length`` (or ``L + 9`` without a
    server_name; ECH-51), then round the total up to a multiple of 32
    (ECH-52).
    """
    if server_name_length is None:
        pad = maximum_name_length + 9
    else:
        pad = max(0, maximum_name_length - server_name_length)
    total = encoded_length + pad
    return pad + 31 - ((total - 1) % 32)


def encode_client_hello_inner(compressed_hello: ClientHello, padding: int) -> bytes:
    """EncodedClientHelloInner: the compressed hello, then ``padding`` zeros."""
    return compressed_hello.encode() + bytes(padding)


def decode_client_hello_inner(data: bytes, outer: ClientHello) -> ClientHello:
    """Rebuild ClientHelloInner from its encoding and ClientHelloOuter.

    Raises:
        DecodeError: the inner hello does not parse.
        IllegalParameter: non-zero padding (ECH-29), or an
            ``ech_outer_extensions`` that references a missing, repeated,
            misordered or encrypted_client_hello extension (ECH-31, ECH-32).
    """
    r = Reader(data)
    encoded = ClientHello.read(r)
    padding = r.rest()
    if padding.count(0) != len(padding):
        raise IllegalParameter("EncodedClientHelloInner padding is not zero")
    extensions = encoded.extensions
    types = [ext.type for ext in extensions]
    if _OUTER_EXTENSIONS in types:
        at = types.index(_OUTER_EXTENSIONS)
        if _OUTER_EXTENSIONS in types[at + 1 :]:
            raise IllegalParameter("two ech_outer_extensions in ClientHelloInner")
        referenced = decode_outer_extensions(extensions[at].data)
        copied = _copy_referenced(referenced, outer.extensions)
        extensions = (*extensions[:at], *copied, *extensions[at + 1 :])
    return ClientHello(
        encoded.random,
        outer.legacy_session_id,
        encoded.cipher_suites,
        extensions,
        encoded.legacy_version,
        encoded.legacy_compression_methods,
    )


def _copy_referenced(
    referenced: tuple[int, ...], outer_extensions: tuple[Extension, ...]
) -> list[Extension]:
    """The outer extensions ``referenced`` names, in one forward scan (Appendix A).

    Raises:
        IllegalParameter: a type that is encrypted_client_hello, or that is
            missing from ``outer_extensions`` after the previous one's place
            (absent, repeated or out of order: ECH-31, ECH-32).
    """
    copied: list[Extension] = []
    cursor = 0
    end = len(outer_extensions)
    for wanted in referenced:
        if wanted == _ENCRYPTED_CLIENT_HELLO:
            raise IllegalParameter("ech_outer_extensions references ECH")
        while cursor < end and outer_extensions[cursor].type != wanted:
            cursor += 1
        if cursor == end:
            raise IllegalParameter(
                f"ech_outer_extensions: {wanted:#06x} missing or out of order"
            )
        copied.append(outer_extensions[cursor])
        cursor += 1
    return copied
