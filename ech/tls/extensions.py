"""Extensions: kept raw in wire order, with typed views decoded on demand.

The message model stores every extension as an :class:`Extension` of
``(type, data)`` exactly as received (RFC 8446 §4.2), so unknown and GREASE
extensions survive a parse/encode round trip byte for byte. The functions
below decode and encode the bodies TLS 1.3 gives meaning to. They check only
syntax; meaning (which extension may appear where, duplicates) is the state
machine's job, so test harnesses can still build deliberately bad messages.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Self

import idna

from ech.tls.errors import DecodeError, IllegalParameter
from ech.tls.wire import (
    Reader,
    Writer,
    encode_opaque,
    encode_typed_opaques,
    encode_u16_list,
)


class Extension(NamedTuple):
    """One extension exactly as it appeared on the wire (RFC 8446 §4.2).

    A named tuple rather than a frozen dataclass: every hello carries about
    a dozen, built on each parse, and a tuple is built in well under half
    the time. Being the ``(type, data)`` pair itself, a block is encoded
    from the extensions as they are (:func:`write_extensions`).
    """

    type: int
    data: bytes


class HasExtensions:
    """Look-ups shared by every message that carries an extension block."""

    __slots__ = ()
    extensions: tuple[Extension, ...]

    def extension(self, ext_type: int) -> bytes | None:
        """The body of the first extension of ``ext_type``, or None."""
        for ext in self.extensions:
            if ext.type == ext_type:
                return ext.data
        return None

    def has_extension(self, ext_type: int) -> bool:
        """Whether an extension of ``ext_type`` is present."""
        return self.extension(ext_type) is not None


def read_extensions(r: Reader, *, min_len: int = 0) -> tuple[Extension, ...]:
    """Read an ``Extension extensions<min_len..2^16-1>`` block."""
    return tuple(itertools.starmap(Extension, r.typed_opaques(2, min_len=min_len)))


def encode_extensions(extensions: Iterable[Extension]) -> bytes:
    """An ``Extension extensions<0..2^16-1>`` block (RFC 8446 §4.2)."""
    return encode_opaque(2, encode_typed_opaques(extensions))


def write_extensions(w: Writer, extensions: Iterable[Extension]) -> None:
    """Write an extension block (:func:`encode_extensions`)."""
    w.raw(encode_extensions(extensions))


def check_unique(extensions: Sequence[Extension]) -> None:
    """RFC 8446 §4.2: no two extensions of the same type in one block.

    Raises:
        IllegalParameter: a type appears twice.
    """
    types = [ext.type for ext in extensions]
    if len(set(types)) == len(types):
        return
    seen: set[int] = set()
    for ext in extensions:
        if ext.type in seen:
            raise IllegalParameter(f"duplicate extension {ext.type:#06x}")
        seen.add(ext.type)


def _parse(data: bytes) -> Reader:
    return Reader(data)


# server_name (RFC 6066 §3) -------------------------------------------------


def decode_server_name(data: bytes) -> str:
    """Return the host_name from a ClientHello server_name body.

    Raises:
        DecodeError: malformed list, or no host_name entry.
        IllegalParameter: the name is not ASCII (RFC 6066 §3 forbids other
            encodings; IDNs travel as A-labels).
    """
    r = _parse(data)
    host: bytes | None = None
    with r.vector(2, min_len=1):
        while r.remaining():
            name_type = r.u8()
            name = r.opaque(2, min_len=1)
            if name_type == 0:
                if host is not None:
                    raise IllegalParameter("two host_name entries in server_name")
                host = name
    r.expect_end()
    if host is None:
        raise DecodeError("server_name without host_name")
    try:
        return host.decode("ascii")
    except UnicodeDecodeError:
        raise IllegalParameter("server_name is not ASCII") from None


#: RFC 1035 §2.3.1 / RFC 5890 §2.3.1 LDH: letters, digits, hyphen.
_LDH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def may_be_ip_address(name: str) -> bool:
    """Whether ``ipaddress`` might read ``name`` as an address.

    IPv4 literals are digits and dots, IPv6 ones have a colon. Most names
    are neither, and a failed ``ipaddress.ip_address`` raises twice (about
    10 us per hello), so it is tried only on these.
    """
    return ":" in name or name.replace(".", "").isdigit()


def check_host_name(name: str) -> None:
    """RFC 6066 §3: a HostName is a DNS name, and nothing else.

    "HostName contains the fully qualified DNS hostname of the server, as
    understood by the client. The hostname is represented as a byte string
    using ASCII encoding without a trailing dot. ... Literal IPv4 and IPv6
    addresses are not permitted in HostName." So: at most 253 bytes of
    dot-separated labels of 1 to 63 LDH characters that neither start nor
    end with a hyphen (RFC 5890 §2.3.1), no trailing dot, not an address;
    a label starting ``xn--`` must be a valid IDNA A-label (RFC 5890
    §2.3.2.1, checked with the ``idna`` package, IDNA2008).

    Such a name conforms to the wire syntax (``opaque HostName<1..2^16-1>``)
    but is "otherwise incorrect", which RFC 8446 §6.2 makes
    ``illegal_parameter``, not ``decode_error``.

    Raises:
        IllegalParameter: ``name`` is not such a host name.
    """
    # Nearly every name is plain LDH labels: one regular expression clears
    # it, and anything else (addresses, A-labels, mistakes) takes the full
    # checks below, which also say what is wrong.
    if (
        len(name) <= 253
        and _PLAIN_HOST_NAME.fullmatch(name)
        and "xn--" not in name.lower()
        and not may_be_ip_address(name)
    ):
        return
    _check_host_name_in_full(name)


#: Dot-separated LDH labels of 1 to 63 characters, no hyphen at either end.
_PLAIN_HOST_NAME = re.compile(
    r"(?:(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
)


def _check_host_name_in_full(name: str) -> None:
    """:func:`check_host_name`, rule by rule, naming the one broken."""
    if not name or len(name) > 253:
        raise IllegalParameter("server_name is empty or longer than 253 bytes")
    if name.endswith("."):
        raise IllegalParameter("server_name has a trailing dot (RFC 6066 §3)")
    if may_be_ip_address(name):
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            raise IllegalParameter("server_name is an IP address (RFC 6066 §3)")
    for label in name.split("."):
        if not 1 <= len(label) <= 63:
            raise IllegalParameter("server_name has an empty or too long label")
        if not set(label) <= _LDH or label[0] == "-" or label[-1] == "-":
            raise IllegalParameter("server_name label is not letters-digits-hyphen")
        if label[:4].lower() == "xn--":
            try:
                valid = idna.encode(idna.decode(label)) == label.lower().encode()
            except idna.IDNAError:
                valid = False
            if not valid:
                raise IllegalParameter("server_name has an invalid IDNA A-label")


def encode_server_name(host: str) -> bytes:
    """Encode a ClientHello server_name body naming one DNS host."""
    w = Writer()
    with w.vector(2):
        w.u8(0)
        w.opaque(2, host.encode("ascii"))
    return w.getvalue()


# supported_versions (RFC 8446 §4.2.1) ----------------------------------------


def decode_client_versions(data: bytes) -> tuple[int, ...]:
    """ClientHello supported_versions: ``ProtocolVersion versions<2..254>``."""
    r = _parse(data)
    versions = r.u16_items(1, min_len=2, max_len=254)
    r.expect_end()
    return versions


def encode_client_versions(versions: Sequence[int]) -> bytes:
    """Encode ClientHello supported_versions."""
    return encode_u16_list(tuple(versions), 1)


def decode_u16(data: bytes) -> int:
    """A body that is exactly one uint16 (selected_version, selected_group, ...)."""
    r = _parse(data)
    value = r.u16()
    r.expect_end()
    return value


def encode_u16(value: int) -> bytes:
    """Encode a body that is one uint16."""
    return value.to_bytes(2, "big")


# supported_groups, signature_algorithms(_cert) ------------------------------


def decode_u16_list(data: bytes) -> tuple[int, ...]:
    """``uint16 list<2..2^16-1>``: supported_groups, signature_algorithms."""
    r = _parse(data)
    values = r.u16_items(2, min_len=2)
    r.expect_end()
    return values


def encode_u16_vector(values: Sequence[int]) -> bytes:
    """Encode a ``uint16 list<2..2^16-1>``."""
    return encode_u16_list(tuple(values), 2)


# key_share (RFC 8446 §4.2.8) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyShareEntry:
    """``KeyShareEntry``: a group and its key_exchange bytes."""

    group: int
    key_exchange: bytes

    @classmethod
    def read(cls, r: Reader) -> Self:
        """Read one entry."""
        group = r.u16()
        return cls(group, r.opaque(2, min_len=1))

    def write(self, w: Writer) -> None:
        """Write one entry."""
        w.u16(self.group)
        w.opaque(2, self.key_exchange)


def decode_client_key_shares(data: bytes) -> tuple[KeyShareEntry, ...]:
    """ClientHello key_share: ``KeyShareEntry client_shares<0..2^16-1>``."""
    r = _parse(data)
    shares = tuple(r.items(2, lambda: KeyShareEntry.read(r)))
    r.expect_end()
    return shares


def encode_client_key_shares(shares: Sequence[KeyShareEntry]) -> bytes:
    """Encode ClientHello key_share."""
    w = Writer()
    with w.vector(2):
        for share in shares:
            share.write(w)
    return w.getvalue()


def decode_server_key_share(data: bytes) -> KeyShareEntry:
    """ServerHello key_share: one ``KeyShareEntry``."""
    r = _parse(data)
    share = KeyShareEntry.read(r)
    r.expect_end()
    return share


def encode_server_key_share(share: KeyShareEntry) -> bytes:
    """Encode ServerHello key_share."""
    w = Writer()
    share.write(w)
    return w.getvalue()


# application_layer_protocol_negotiation (RFC 7301 §3.1) ---------------------


def decode_alpn(data: bytes) -> tuple[bytes, ...]:
    """``ProtocolName protocol_name_list<2..2^16-1>``, each ``opaque<1..2^8-1>``."""
    r = _parse(data)
    names = tuple(r.items(2, lambda: r.opaque(1, min_len=1), min_len=2))
    r.expect_end()
    return names


def encode_alpn(names: Sequence[bytes]) -> bytes:
    """Encode an ALPN protocol list."""
    w = Writer()
    with w.vector(2):
        for name in names:
            w.opaque(1, name)
    return w.getvalue()


# psk_key_exchange_modes (RFC 8446 §4.2.9) ------------------------------------


def decode_psk_modes(data: bytes) -> tuple[int, ...]:
    """``PskKeyExchangeMode ke_modes<1..255>``."""
    r = _parse(data)
    modes = tuple(r.items(1, r.u8, min_len=1))
    r.expect_end()
    return modes


def encode_psk_modes(modes: Sequence[int]) -> bytes:
    """Encode psk_key_exchange_modes."""
    return bytes([len(modes), *modes])


# pre_shared_key (RFC 8446 §4.2.11) -------------------------------------------


@dataclass(frozen=True, slots=True)
class PskIdentity:
    """``PskIdentity``: an opaque identity and its obfuscated ticket age."""

    identity: bytes
    obfuscated_ticket_age: int


@dataclass(frozen=True, slots=True)
class OfferedPsks:
    """ClientHello pre_shared_key body."""

    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Decode the body.

        Raises:
            DecodeError: malformed.
            IllegalParameter: identity and binder counts differ.
        """
        r = _parse(data)

        def identity() -> PskIdentity:
            ident = r.opaque(2, min_len=1)
            return PskIdentity(ident, r.u32())

        identities = tuple(r.items(2, identity, min_len=7))
        binders = tuple(r.items(2, lambda: r.opaque(1, min_len=32), min_len=33))
        r.expect_end()
        if len(identities) != len(binders):
            raise IllegalParameter("pre_shared_key identity and binder counts differ")
        return cls(identities, binders)

    def encode(self) -> bytes:
        """Encode the body."""
        w = Writer()
        with w.vector(2):
            for ident in self.identities:
                w.opaque(2, ident.identity)
                w.u32(ident.obfuscated_ticket_age)
        w.raw(self.encode_binders())
        return w.getvalue()

    def encode_binders(self) -> bytes:
        """Encode just ``PskBinderEntry binders<33..2^16-1>``: the tail of the hello."""
        w = Writer()
        with w.vector(2):
            for binder in self.binders:
                w.opaque(1, binder)
        return w.getvalue()


# certificate_authorities (RFC 8446 §4.2.4) -----------------------------------


def encode_certificate_authorities(names: Sequence[bytes]) -> bytes:
    """Encode ``DistinguishedName authorities<3..2^16-1>``.

    Each name is ``opaque DistinguishedName<1..2^16-1>``: a DER X.501 Name.
    """
    w = Writer()
    with w.vector(2):
        for name in names:
            w.opaque(2, name)
    return w.getvalue()


def decode_certificate_authorities(data: bytes) -> tuple[bytes, ...]:
    """The DER names of a certificate_authorities body.

    Raises:
        DecodeError: malformed.
    """
    r = _parse(data)
    names = tuple(r.items(2, lambda: r.opaque(2, min_len=1), min_len=3))
    r.expect_end()
    return names


# early_data (RFC 8446 §4.2.10) and cookie (§4.2.2) ---------------------------


def decode_empty(data: bytes) -> None:
    """An extension whose body must be empty (early_data in CH/EE, ...).

    Raises:
        DecodeError: the body is not empty.
    """
    if data:
        raise DecodeError("extension body must be empty")


def decode_cookie(data: bytes) -> bytes:
    """``opaque cookie<1..2^16-1>``."""
    r = _parse(data)
    cookie = r.opaque(2, min_len=1)
    r.expect_end()
    return cookie


def encode_cookie(cookie: bytes) -> bytes:
    """Encode a cookie extension body."""
    w = Writer()
    w.opaque(2, cookie)
    return w.getvalue()


def decode_u32(data: bytes) -> int:
    """A body that is exactly one uint32 (early_data in NewSessionTicket)."""
    r = _parse(data)
    value = r.u32()
    r.expect_end()
    return value


def decode_padding(data: bytes) -> int:
    """RFC 7685 padding: all zero bytes; returns the length.

    Raises:
        DecodeError: a byte is not zero.
    """
    if data.count(0) != len(data):
        raise DecodeError("padding extension holds non-zero bytes")
    return len(data)
