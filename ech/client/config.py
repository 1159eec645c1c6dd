"""Client configuration: what a client offers and whom it trusts."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from ech.client.ech import SealTamper
from ech.tls import extensions as ext
from ech.tls.certificates import CertifiedKey, load_trust_store
from ech.tls.enums import TLS13, ExtensionType, NamedGroup, PskKeyExchangeMode
from ech.tls.extensions import Extension
from ech.tls.groups import KeyShare, generate_key_share
from ech.tls.messages import ClientHello
from ech.tls.records import PaddingPolicy
from ech.tls.signatures import (
    CERTIFICATE_SIGNATURE_SCHEMES,
    SUPPORTED_SIGNATURE_SCHEMES,
)
from ech.tls.suites import DEFAULT_CIPHER_SUITES, check_cipher_suites

DEFAULT_CLIENT_GROUPS: tuple[int, ...] = (
    NamedGroup.X25519,
    NamedGroup.X25519MLKEM768,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
)


@dataclass(frozen=True)
class ClientConfig:
    """Settings shared by many client connections.

    Attributes:
        cafile: PEM file of trusted CAs; None means the system store.
        trust_store: CA certificates to trust instead of ``cafile``.
        verify_certificates: check the server's chain and name. Only turn
            this off in tests of the codec itself.
        alpn_protocols: ALPN names to offer, in preference order.
        cipher_suites: TLS 1.3 suites to offer, in preference order. Over
            QUIC only AES-GCM and ChaCha20-Poly1305 are offered (RFC 9001
            §5.3; aioquic's packet protection).
        allow_ccm_8: let ``cipher_suites`` name TLS_AES_128_CCM_8_SHA256,
            whose 8-byte tag RFC 8446 §B.4 leaves to constrained devices.
        groups: groups for supported_groups, in preference order.
        key_share_groups: groups to send key shares for in the first hello.
        signature_algorithms: schemes we accept in CertificateVerify (RFC
            8446 §4.2.3); never RSASSA-PKCS1-v1_5, whatever this lists.
        signature_algorithms_cert: schemes we accept inside certificates,
            sent as ``signature_algorithms_cert``; None leaves the extension
            out, and ``signature_algorithms`` then covers certificates too.
            The default adds RSASSA-PKCS1-v1_5, which most CAs sign with.
        compatibility_mode: middlebox compatibility (RFC 8446 §D.4): a
            random legacy_session_id and a change_cipher_spec record.
        random: source of randomness, injectable for reproducible traces.
        now: clock in seconds, injectable.
        key_share_factory: makes a key share for a group, injectable.
        client_hello_hook: rewrites each ClientHello before binders are
            computed and it is sent; for tests, fuzzing and trace replay.
        record_padding: TLSInnerPlaintext padding policy (RFC 8446 §5.4).
        ech_grease: send a GREASE encrypted_client_hello when the connection
            has no ECH configs (RFC 9849 §6.2).
        psk_key_exchange_modes: the resumption modes offered (RFC 8446
            §4.2.9): psk_dhe_ke keeps forward secrecy; psk_ke resumes without
            (EC)DHE when a server prefers it.
        client_certificate: our certificate chain and key, sent when a
            server asks (RFC 8446 §4.4.2) with a CertificateVerify in the
            first of its schemes that our key signs with; without one that
            fits, or None, the answer is an empty Certificate. With ECH
            rejected it is never sent (RFC 9849 §6.1.7). Post-handshake
            authentication (§4.6.2) is not offered.
        ech_seal_tamper: faults to put into ClientHelloOuter on purpose
            (:class:`~ech.client.ech.SealTamper`); for conformance probes
            and tests only.
    """

    cafile: str | Path | None = None
    trust_store: tuple[x509.Certificate, ...] | None = None
    verify_certificates: bool = True
    alpn_protocols: tuple[str, ...] = ()
    cipher_suites: tuple[int, ...] = DEFAULT_CIPHER_SUITES
    allow_ccm_8: bool = False
    groups: tuple[int, ...] = DEFAULT_CLIENT_GROUPS
    key_share_groups: tuple[int, ...] = (NamedGroup.X25519MLKEM768, NamedGroup.X25519)
    signature_algorithms: tuple[int, ...] = SUPPORTED_SIGNATURE_SCHEMES
    signature_algorithms_cert: tuple[int, ...] | None = CERTIFICATE_SIGNATURE_SCHEMES
    compatibility_mode: bool = True
    random: Callable[[int], bytes] = os.urandom
    now: Callable[[], float] = time.time
    key_share_factory: Callable[[int], KeyShare] = generate_key_share
    client_hello_hook: Callable[[ClientHello], ClientHello] | None = None
    record_padding: PaddingPolicy | None = None
    ech_grease: bool = False
    client_certificate: CertifiedKey | None = None
    psk_key_exchange_modes: tuple[int, ...] = (PskKeyExchangeMode.PSK_DHE_KE,)
    ech_seal_tamper: SealTamper | None = None
    _trust: list[tuple[x509.Certificate, ...]] = field(
        default_factory=list, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.cipher_suites or not self.groups:
            raise ValueError("cipher_suites and groups must not be empty")
        check_cipher_suites(self.cipher_suites, allow_ccm_8=self.allow_ccm_8)
        if not set(self.key_share_groups) <= set(self.groups):
            raise ValueError("key_share_groups must be a subset of groups")
        if not self.psk_key_exchange_modes:
            raise ValueError("psk_key_exchange_modes must not be empty")

    @functools.cached_property
    def offer_extensions(self) -> tuple[Extension, ...]:
        """The ClientHello extensions that follow from this config alone.

        supported_groups, signature_algorithms, signature_algorithms_cert,
        ALPN, supported_versions and psk_key_exchange_modes (RFC 8446 §4.2,
        RFC 7301 §3.1), in the order our hellos send them: after server_name
        and before key_share, inside the run that ECH compresses (RFC 9849
        §5.1). They carry nothing secret and nothing of one connection, and
        a config is immutable, so they are encoded once and every connection
        made with the config shares them, ClientHelloInner and Outer alike.
        """
        e = ExtensionType
        out = [
            Extension(e.SUPPORTED_GROUPS, ext.encode_u16_vector(self.groups)),
            Extension(
                e.SIGNATURE_ALGORITHMS,
                ext.encode_u16_vector(self.signature_algorithms),
            ),
        ]
        if self.signature_algorithms_cert is not None:
            out.append(
                Extension(
                    e.SIGNATURE_ALGORITHMS_CERT,
                    ext.encode_u16_vector(self.signature_algorithms_cert),
                )
            )
        if self.alpn_protocols:
            names = [p.encode() for p in self.alpn_protocols]
            out.append(
                Extension(
                    e.APPLICATION_LAYER_PROTOCOL_NEGOTIATION, ext.encode_alpn(names)
                )
            )
        out.append(Extension(e.SUPPORTED_VERSIONS, ext.encode_client_versions([TLS13])))
        out.append(
            Extension(
                e.PSK_KEY_EXCHANGE_MODES,
                ext.encode_psk_modes(self.psk_key_exchange_modes),
            )
        )
        return tuple(out)

    def trusted_certificates(self) -> tuple[x509.Certificate, ...]:
        """The CA certificates to validate against, loaded once."""
        if self.trust_store is not None:
            return self.trust_store
        if not self._trust:
            self._trust.append(load_trust_store(self.cafile))
        return self._trust[0]
