"""The client-facing server's side of ECH (RFC 9849 §7.1).

:func:`open_client_hello` is a pure function from a ClientHelloOuter and our
keys to a ClientHelloInner (or None), run before any other negotiation
(ECH-75). Failing to decrypt is not an error: the client may be
sending GREASE, or hold an old config (§7.1, ECH-82). :func:`rejection_reason`
says which, as far as a server can tell, for logs and metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ech import hpke
from ech.config import HpkeSymmetricCipherSuite
from ech.errors import DecryptError, IllegalParameter, MissingExtension
from ech.extension import INNER_BODY, ECHClientHelloOuter, parse_client_hello_extension
from ech.inner import decode_client_hello_inner
from ech.keys import ECHKey
from ech.tls import extensions as ext
from ech.tls.enums import TLS13, ExtensionType, is_grease
from ech.tls.messages import ClientHello

E = ExtensionType


class ECHRejectReason(enum.Enum):
    """Why a client-facing server did not accept an offered ECH extension.

    For operators, not for the client: a rejection looks the same on the
    wire whatever the reason (RFC 9849 §7.1, ECH-81, ECH-82). A server
    cannot tell GREASE (§6.2) from a real offer for a key it lacks
    (§10.10.4); ``GREASE_SHAPED`` says only that the offer has GREASE's
    usual shape, which a stale X25519 config also has.
    """

    #: The server holds no ECH keys at all.
    NO_KEYS = "no_keys"
    #: No key has the offer's config_id, and the offer does not look like
    #: GREASE (its ``enc`` is not an X25519 share): a stale or foreign config.
    UNKNOWN_CONFIG_ID = "unknown_config_id"
    #: An unknown config_id, HKDF-SHA256 and a 32-byte ``enc``: how GREASE
    #: ECH looks from BoringSSL, Chrome and us (§6.2.1), or a stale X25519
    #: config.
    GREASE_SHAPED = "grease_shaped"
    #: A key has that config_id, but not the offer's HPKE suite (§7.1).
    UNSUPPORTED_SUITE = "unsupported_suite"
    #: A key matched but HPKE would not set up or open the payload: a wrong
    #: key behind a reused config_id, or a tampered ClientHelloOuter.
    HPKE_OPEN_FAILED = "hpke_open_failed"
    #: The payload decrypted but the inner hello is malformed or breaks
    #: §5.1/§7.1 (ECH-29 to ECH-32, ECH-78): the handshake is aborted.
    MALFORMED_INNER = "malformed_inner"

    def __str__(self) -> str:
        return self.value


def _grease_shaped(offer: ECHClientHelloOuter) -> bool:
    return offer.cipher_suite.kdf_id == hpke.KDF.HKDF_SHA256 and len(offer.enc) == 32


def rejection_reason(
    offer: ECHClientHelloOuter,
    keys: Mapping[int, tuple[ECHKey, ...]],
    *,
    has_keys: bool,
) -> ECHRejectReason:
    """Why :func:`open_client_hello` found no key for ``offer`` (for reports).

    Derived from the offer and the key index alone, after the fact, so the
    decision itself stays in :func:`open_client_hello`. With trial
    decryption an unknown config_id is still reported as such: every key
    was tried and none opened it.
    """
    if not has_keys:
        return ECHRejectReason.NO_KEYS
    known = keys.get(offer.config_id, ())
    if not known:
        if _grease_shaped(offer):
            return ECHRejectReason.GREASE_SHAPED
        return ECHRejectReason.UNKNOWN_CONFIG_ID
    if not any(
        key.config.contents is not None
        and offer.cipher_suite in key.config.contents.cipher_suites
        for key in known
    ):
        return ECHRejectReason.UNSUPPORTED_SUITE
    return ECHRejectReason.HPKE_OPEN_FAILED


@dataclass(frozen=True)
class ECHAccepted:
    """What stays fixed after the first ClientHelloOuter decrypted (§7.1.1)."""

    key: ECHKey
    cipher_suite: HpkeSymmetricCipherSuite
    config_id: int
    context: hpke.RecipientContext = field(repr=False)


def index_keys(keys: Sequence[ECHKey]) -> dict[int, tuple[ECHKey, ...]]:
    """Keys by config_id, for O(1) candidate selection (method 1 of §7.1)."""
    index: dict[int, list[ECHKey]] = {}
    for key in keys:
        index.setdefault(key.config.config_id, []).append(key)
    return {config_id: tuple(found) for config_id, found in index.items()}


def client_hello_outer_aad(outer: ClientHello, offer: ECHClientHelloOuter) -> bytes:
    """ClientHelloOuterAAD: the hello with the payload zeroed (§5.2, ECH-33).

    ``offer`` is ``outer``'s own encrypted_client_hello, so the zeroed body
    is as long as the one sent: it is spliced into the bytes received
    (:meth:`~ech.tls.messages.Message.encode_with_extension_body`), every
    other byte and length prefix staying as sent.
    """
    return outer.encode_with_extension_body(
        E.ENCRYPTED_CLIENT_HELLO, offer.encode_with_payload_zeroed()
    )


def check_inner(inner: ClientHello) -> None:
    """ClientHelloInner must be marked inner and offer only TLS 1.3+ (ECH-78).

    GREASE values in supported_versions are ignored, as Chrome sends them.

    Raises:
        IllegalParameter: either rule is broken.
    """
    # The inner form's whole body is its type byte (§5): a well-formed inner
    # marker is exactly INNER_BODY, and anything else breaks the rule.
    if inner.extension(E.ENCRYPTED_CLIENT_HELLO) != INNER_BODY:
        raise IllegalParameter("ClientHelloInner lacks a well-formed inner ECH")
    versions = inner.extension(E.SUPPORTED_VERSIONS)
    if versions is None:
        raise IllegalParameter("ClientHelloInner does not offer TLS 1.3")
    offered = [v for v in ext.decode_client_versions(versions) if not is_grease(v)]
    if not offered or min(offered) < TLS13:
        raise IllegalParameter("ClientHelloInner offers TLS 1.2 or older")


def _open(
    outer: ClientHello,
    offer: ECHClientHelloOuter,
    context: hpke.RecipientContext,
) -> ClientHello | None:
    try:
        encoded = context.open(client_hello_outer_aad(outer, offer), offer.payload)
    except hpke.HPKEError:
        return None
    inner = decode_client_hello_inner(encoded, outer)
    check_inner(inner)
    return inner


def open_client_hello(
    outer: ClientHello,
    offer: ECHClientHelloOuter,
    keys: Mapping[int, tuple[ECHKey, ...]],
    *,
    all_keys: Sequence[ECHKey] = (),
    trial_decryption: bool = False,
) -> tuple[ClientHello, ECHAccepted] | None:
    """Decrypt the first ClientHelloOuter's payload (RFC 9849 §7.1, ECH-76, ECH-77).

    Returns:
        ClientHelloInner and the state to keep, or None if no key opens it.

    Raises:
        DecodeError, IllegalParameter: it decrypted but the inner hello is
            malformed or breaks §5.1 or §7.1 (ECH-29 to ECH-32, ECH-78).
    """
    candidates = all_keys if trial_decryption else keys.get(offer.config_id, ())
    for key in candidates:
        contents = key.config.contents
        if contents is None or offer.cipher_suite not in contents.cipher_suites:
            continue
        opened = open_with_key(outer, offer, key)
        if opened is not None:
            return opened
    return None


def open_with_key(
    outer: ClientHello, offer: ECHClientHelloOuter, key: ECHKey
) -> tuple[ClientHello, ECHAccepted] | None:
    """Set up HPKE with ``key`` for ``offer`` and decrypt (RFC 9849 §7.1).

    Whether ``key`` may be used for the offer (its config_id, a listed
    suite) is the caller's rule; :func:`open_client_hello` applies it.

    Returns:
        ClientHelloInner and the state to keep, or None if ``key`` does
        not open it.
    """
    contents = key.config.contents
    if contents is None:
        return None
    try:
        context = hpke.setup_base_recipient(
            contents.kem_id,
            offer.cipher_suite.kdf_id,
            offer.cipher_suite.aead_id,
            offer.enc,
            key.private_key,
            key.config.hpke_info(),
        )
    except hpke.HPKEError:
        return None
    inner = _open(outer, offer, context)
    if inner is None:
        return None
    return inner, ECHAccepted(key, offer.cipher_suite, offer.config_id, context)


def open_second_client_hello(outer: ClientHello, accepted: ECHAccepted) -> ClientHello:
    """ClientHelloInner2 from ClientHelloOuter2, after HRR (RFC 9849 §7.1.1, ECH-83).

    Raises:
        MissingExtension: ClientHelloOuter2 has no encrypted_client_hello.
        IllegalParameter: suite or config_id changed, or enc is not empty.
        DecryptError: the payload does not open with the first context.
    """
    data = outer.extension(E.ENCRYPTED_CLIENT_HELLO)
    if data is None:
        raise MissingExtension("second ClientHelloOuter without ECH")
    offer = parse_client_hello_extension(data)
    if offer is None:
        raise IllegalParameter("second ClientHelloOuter with an inner ECH")
    if (
        offer.cipher_suite != accepted.cipher_suite
        or offer.config_id != accepted.config_id
        or offer.enc
    ):
        raise IllegalParameter("second ClientHelloOuter changed its ECH parameters")
    inner = _open(outer, offer, accepted.context)
    if inner is None:
        raise DecryptError("second ClientHelloOuter does not decrypt")
    return inner
