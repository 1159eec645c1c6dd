"""Every check of ``ech probe`` catches the fault it names, and only that check.

For each check, our server is broken in exactly the way the check looks
for: through ``ServerConnection.handshake_class`` (a test-only subclass of
``ServerHandshake``), the config's hooks, or by replacing one step of the
server's ECH processing (``ech.server.ech``) with a lenient or wrong one.
The whole probe then runs against it and must fail that check and no other.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import pytest

import ech
import ech.server.ech
import ech.server.handshake
from ech import hpke
from ech.config import ECHConfig, ECHConfigList
from ech.config import HpkeSymmetricCipherSuite as Suite
from ech.errors import DecodeError, DecryptError, IllegalParameter
from ech.events import ECHStatus
from ech.extension import parse_client_hello_extension
from ech.inner import (
    decode_client_hello_inner,
    decode_outer_extensions,
    encode_outer_extensions,
)
from ech.keys import ECHKey
from ech.probe.attempt import Target
from ech.probe.report import Report, Result
from ech.probe.server import probe_server
from ech.probe.server_checks import CHECKS
from ech.server.ech import ECHAccepted
from ech.server.handshake import ServerHandshake
from ech.tls import extensions as ext
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import ExtensionType, is_grease
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello, EncryptedExtensions, ServerHello
from ech.tls.wire import Reader
from tests.probe.servers import (
    INNER_NAME,
    ProbePKI,
    ThreadedTLSServer,
    config_list,
    make_key,
    server_config,
)

E = ExtensionType
CHACHA = Suite(hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


@dataclasses.dataclass
class Broken:
    """How to break the server (or the published configs) for one check."""

    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    handshake: type[ServerHandshake] = ServerHandshake
    patch: dict[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)
    configs: Callable[[ECHKey], ECHConfigList] | None = None
    key: dict[str, Any] = dataclasses.field(default_factory=dict)


def run_probe(pki: ProbePKI, key: ECHKey, broken: Broken) -> Report:
    configs = broken.configs(key) if broken.configs else config_list(key)
    with ThreadedTLSServer(
        server_config(pki, key, **broken.config), broken.handshake
    ) as server:
        return probe_server(
            Target("127.0.0.1", server.port, timeout=3),
            INNER_NAME,
            configs,
            cafile=str(pki.ca_file),
        )


def failing(report: Report) -> set[str]:
    return {
        r.info.id for r in report.results if r.result in (Result.FAIL, Result.ERROR)
    }


# the encoded inner hello, taken apart and put back ------------------------------------


def split(encoded: bytes) -> tuple[ClientHello, bytes]:
    r = Reader(encoded)
    return ClientHello.read(r), r.rest()


#: What the broken servers replace (ech.server.ech's own imports, looked up
#: at call time).
DECODE = "ech.server.ech.decode_client_hello_inner"
OPEN_SECOND = "ech.server.handshake.open_second_client_hello"
ORIGINAL_DECODE = decode_client_hello_inner
ORIGINAL_CHECK_INNER = ech.server.ech.check_inner
ORIGINAL_OPEN_SECOND = ech.server.ech.open_second_client_hello


def decode_after(
    edit: Callable[[ClientHello, ClientHello], ClientHello],
) -> Callable[[bytes, ClientHello], ClientHello]:
    """A decoder that first rewrites the encoded hello (a lenient server)."""

    def decode(data: bytes, outer: ClientHello) -> ClientHello:
        hello, padding = split(data)
        return ORIGINAL_DECODE(edit(hello, outer).encode() + padding, outer)

    return decode


def edit_refs(
    edit: Callable[[list[int], ClientHello], list[int]],
) -> Callable[[ClientHello, ClientHello], ClientHello]:
    def rewrite(hello: ClientHello, outer: ClientHello) -> ClientHello:
        data = hello.extension(E.ECH_OUTER_EXTENSIONS)
        if data is None:
            return hello
        refs = edit(list(decode_outer_extensions(data)), outer)
        return hello.with_extension(
            Extension(E.ECH_OUTER_EXTENSIONS, encode_outer_extensions(refs))
        )

    return rewrite


def present_only(refs: list[int], outer: ClientHello) -> list[int]:
    return [r for r in refs if outer.has_extension(r)]


def deduplicated(refs: list[int], outer: ClientHello) -> list[int]:
    return list(dict.fromkeys(refs))


def in_outer_order(refs: list[int], outer: ClientHello) -> list[int]:
    order = [e.type for e in outer.extensions]
    return sorted(refs, key=lambda r: order.index(r) if r in order else len(order))


def ech_reference_as_marker(hello: ClientHello, outer: ClientHello) -> ClientHello:
    data = hello.extension(E.ECH_OUTER_EXTENSIONS)
    if data is None or E.ENCRYPTED_CLIENT_HELLO not in decode_outer_extensions(data):
        return hello
    refs = [r for r in decode_outer_extensions(data) if r != E.ENCRYPTED_CLIENT_HELLO]
    hello = hello.with_extension(
        Extension(E.ECH_OUTER_EXTENSIONS, encode_outer_extensions(refs))
    )
    return hello.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, b"\x01"))


def zero_padding(data: bytes, outer: ClientHello) -> ClientHello:
    hello, padding = split(data)
    return ORIGINAL_DECODE(hello.encode() + bytes(len(padding)), outer)


def require_compression(data: bytes, outer: ClientHello) -> ClientHello:
    hello, _ = split(data)
    if not hello.has_extension(E.ECH_OUTER_EXTENSIONS):
        raise IllegalParameter("broken: ech_outer_extensions required")
    return ORIGINAL_DECODE(data, outer)


def short_padding_only(data: bytes, outer: ClientHello) -> ClientHello:
    _, padding = split(data)
    if len(padding) > 31:
        raise IllegalParameter("broken: at most 31 bytes of padding")
    return ORIGINAL_DECODE(data, outer)


def contiguous_in_outer(data: bytes, outer: ClientHello) -> ClientHello:
    hello, _ = split(data)
    refs_data = hello.extension(E.ECH_OUTER_EXTENSIONS)
    if refs_data is not None:
        order = [e.type for e in outer.extensions]
        places = [
            order.index(r) for r in decode_outer_extensions(refs_data) if r in order
        ]
        if places and places != list(range(places[0], places[0] + len(places))):
            raise IllegalParameter("broken: referenced extensions must be contiguous")
    return ORIGINAL_DECODE(data, outer)


def malformed_is_illegal_parameter(data: bytes, outer: ClientHello) -> ClientHello:
    try:
        return ORIGINAL_DECODE(data, outer)
    except DecodeError:
        raise IllegalParameter("broken: wrong alert") from None


def versions_unchecked(inner: ClientHello) -> None:
    marker = inner.extension(E.ENCRYPTED_CLIENT_HELLO)
    if marker != b"\x01":
        raise IllegalParameter("ClientHelloInner lacks a well-formed inner ECH")


def marker_unchecked(inner: ClientHello) -> None:
    ORIGINAL_CHECK_INNER(
        inner.with_extension(Extension(E.ENCRYPTED_CLIENT_HELLO, b"\x01"))
    )


# the second ClientHelloOuter ----------------------------------------------------------


def lenient_second(**ignore: bool) -> Callable[[ClientHello, ECHAccepted], ClientHello]:
    """open_second_client_hello that does not compare what ``ignore`` names."""

    def open_second(outer: ClientHello, accepted: ECHAccepted) -> ClientHello:
        data = outer.extension(E.ENCRYPTED_CLIENT_HELLO)
        offer = parse_client_hello_extension(data) if data else None
        if offer is not None:
            if ignore.get("config_id"):
                accepted = dataclasses.replace(accepted, config_id=offer.config_id)
            if ignore.get("suite"):
                accepted = dataclasses.replace(
                    accepted, cipher_suite=offer.cipher_suite
                )
            if ignore.get("enc") and offer.enc:
                inner = ech.server.ech._open(outer, offer, accepted.context)
                if inner is None:
                    raise DecryptError("second ClientHelloOuter does not decrypt")
                return inner
        return ORIGINAL_OPEN_SECOND(outer, accepted)

    return open_second


def never_opens_second(outer: ClientHello, accepted: ECHAccepted) -> ClientHello:
    ORIGINAL_OPEN_SECOND(outer, accepted)
    raise DecryptError("broken: a fresh HPKE context for ClientHelloOuter2")


def missing_second_is_outer(outer: ClientHello, accepted: ECHAccepted) -> ClientHello:
    if not outer.has_extension(E.ENCRYPTED_CLIENT_HELLO):
        return outer
    return ORIGINAL_OPEN_SECOND(outer, accepted)


def undecryptable_second_is_outer(
    outer: ClientHello, accepted: ECHAccepted
) -> ClientHello:
    try:
        return ORIGINAL_OPEN_SECOND(outer, accepted)
    except DecryptError:
        return outer


def unlisted_suite_opened(
    outer: ClientHello,
    offer: Any,
    keys: Any,
    *,
    all_keys: Any = (),
    trial_decryption: bool = False,
) -> tuple[ClientHello, ECHAccepted] | None:
    """open_client_hello without the "suite listed in the config" rule."""
    for key in keys.get(offer.config_id, ()):
        opened = ech.server.ech.open_with_key(outer, offer, key)
        if opened is not None:
            return opened
    return None


# broken handshakes --------------------------------------------------------------------


class AbortsOnUndecryptable(ServerHandshake):
    """Treats any ECH it cannot decrypt as an attack (GREASE breaks it)."""

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        inner = super()._process_ech(ch, first=first)
        if inner is None and first and self.ech_status is ECHStatus.REJECTED:
            raise DecryptError("broken: ECH does not decrypt")
        return inner


class AbortsOnStaleKey(ServerHandshake):
    """A config_id it knows that does not decrypt is an error, not a rejection."""

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        inner = super()._process_ech(ch, first=first)
        data = ch.extension(E.ENCRYPTED_CLIENT_HELLO)
        offer = parse_client_hello_extension(data) if data and first else None
        if inner is None and offer is not None:
            for key in self.config.ech_key_index.get(offer.config_id, ()):
                if (
                    key.config.contents
                    and offer.cipher_suite in key.config.contents.cipher_suites
                ):
                    raise DecryptError("broken: decryption failed")
        return inner


class NoChaCha(ServerHandshake):
    """Cannot open ChaCha20-Poly1305 payloads (rejects them)."""

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        data = ch.extension(E.ENCRYPTED_CLIENT_HELLO)
        offer = parse_client_hello_extension(data) if data and first else None
        if offer is not None and offer.cipher_suite == CHACHA:
            self.ech_status = ECHStatus.REJECTED
            return None
        return super()._process_ech(ch, first=first)


class ForgetsSessionId(ServerHandshake):
    """Does not copy legacy_session_id from ClientHelloOuter (§5.1)."""

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        inner = super()._process_ech(ch, first=first)
        if inner is not None:
            inner = dataclasses.replace(inner, legacy_session_id=b"")
        return inner


class RefusesGreaseVersions(ServerHandshake):
    """Counts a GREASE supported_versions value as an old version (golang/go#71642)."""

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        inner = super()._process_ech(ch, first=first)
        versions = inner.extension(E.SUPPORTED_VERSIONS) if inner else None
        if versions and any(is_grease(v) for v in ext.decode_client_versions(versions)):
            raise IllegalParameter("broken: unknown version in ClientHelloInner")
        return inner


def inner_certificate(pki: ProbePKI) -> type[ServerHandshake]:
    class InnerCertificateOnRejection(ServerHandshake):
        """Authenticates as the inner name even when ECH was rejected."""

        def _select_certificate(self, ch: ClientHello) -> tuple[CertifiedKey, int]:
            certified, scheme = super()._select_certificate(ch)
            if self.ech_status is ECHStatus.REJECTED:
                return pki.inner_only, scheme
            return certified, scheme

    return InnerCertificateOnRejection


class NoRetryConfigsAfterHrr(ServerHandshake):
    """Forgets retry_configs when it sent HelloRetryRequest (§7.1.1)."""

    def __init__(self, config: ech.ServerConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)

        def hook(ee: EncryptedExtensions) -> EncryptedExtensions:
            return without_ech(ee) if self.hello_retry else ee

        self.config = dataclasses.replace(config, encrypted_extensions_hook=hook)


class IgnoresUnknownType(ServerHandshake):
    """Ignores an ECHClientHello of unknown type instead of aborting."""

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        data = ch.extension(E.ENCRYPTED_CLIENT_HELLO)
        if data and data[0] not in (0, 1):
            return None
        return super()._process_ech(ch, first=first)


class IgnoresUndecodable(ServerHandshake):
    """Ignores an encrypted_client_hello it cannot decode instead of aborting."""

    def _process_ech(self, ch: ClientHello, *, first: bool) -> ClientHello | None:
        data = ch.extension(E.ENCRYPTED_CLIENT_HELLO)
        if data and first:
            try:
                parse_client_hello_extension(data)
            except DecodeError:
                return None
        return super()._process_ech(ch, first=first)


def without_ech(ee: EncryptedExtensions) -> EncryptedExtensions:
    return EncryptedExtensions(
        tuple(e for e in ee.extensions if e.type != E.ENCRYPTED_CLIENT_HELLO)
    )


def retry_configs_when_accepted(key: ECHKey) -> type[ServerHandshake]:
    body = ECHConfigList((key.config,)).encode()

    class RetryConfigsWhenAccepted(ServerHandshake):
        """Sends retry_configs even when it accepted ECH (§5 forbids it)."""

        def __init__(self, config: ech.ServerConfig, **kwargs: Any) -> None:
            super().__init__(config, **kwargs)

            def hook(ee: EncryptedExtensions) -> EncryptedExtensions:
                if self.ech_status is not ECHStatus.ACCEPTED:
                    return ee
                extension = Extension(E.ENCRYPTED_CLIENT_HELLO, body)
                return EncryptedExtensions((*ee.extensions, extension))

            self.config = dataclasses.replace(config, encrypted_extensions_hook=hook)

    return RetryConfigsWhenAccepted


def flip(which: Callable[[ServerHello], bool]) -> Callable[[ServerHello, bytes], bytes]:
    def hook(message: ServerHello, value: bytes) -> bytes:
        return bytes(b ^ 0xFF for b in value) if which(message) else value

    return hook


def bad_public_name(key: ECHKey) -> ECHConfigList:
    contents = key.config.contents
    assert contents is not None
    bad = dataclasses.replace(contents, public_name=b"192.0.2.1")
    return ECHConfigList((ECHConfig.from_contents(bad),))


def eight_is_sixteen(n: int) -> bytes:
    return os.urandom(16 if n == 8 else n)


def faults(pki: ProbePKI, key: ECHKey) -> dict[str, Broken]:
    """The broken server for each check."""
    other = make_key(config_id=99)
    return {
        "config-valid": Broken(configs=bad_public_name),
        "config-mti": Broken(
            key={"cipher_suites": (Suite(hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),)}
        ),
        "tls13": Broken(config={"certificates": (pki.inner_only,)}),
        "grease": Broken(handshake=AbortsOnUndecryptable),
        "grease-hrr": Broken(config={"random": eight_is_sixteen}),
        "accept": Broken(
            config={
                "ech_confirmation_hook": flip(lambda m: not m.is_hello_retry_request)
            }
        ),
        "accept-suite-hkdf_sha256-chacha20_poly1305": Broken(handshake=NoChaCha),
        "accept-session-id": Broken(handshake=ForgetsSessionId),
        "accept-no-retry-configs": Broken(handshake=retry_configs_when_accepted(key)),
        "accept-uncompressed": Broken(patch={DECODE: require_compression}),
        "accept-padding": Broken(patch={DECODE: short_padding_only}),
        "accept-grease-version": Broken(handshake=RefusesGreaseVersions),
        "accept-noncontiguous": Broken(patch={DECODE: contiguous_in_outer}),
        "reject-decrypt-failure": Broken(handshake=AbortsOnStaleKey),
        "reject-public-name-cert": Broken(handshake=inner_certificate(pki)),
        "reject-retry-configs": Broken(
            config={"encrypted_extensions_hook": without_ech}
        ),
        "reject-retry-accepted": Broken(
            config={"ech_retry_configs": ECHConfigList((other.config,))}
        ),
        "reject-hrr": Broken(handshake=NoRetryConfigsAfterHrr),
        "reject-unlisted-suite": Broken(
            patch={"ech.server.handshake.open_client_hello": unlisted_suite_opened}
        ),
        "outer-ext-missing": Broken(
            patch={DECODE: decode_after(edit_refs(present_only))}
        ),
        "outer-ext-duplicate": Broken(
            patch={DECODE: decode_after(edit_refs(deduplicated))}
        ),
        "outer-ext-order": Broken(
            patch={DECODE: decode_after(edit_refs(in_outer_order))}
        ),
        "outer-ext-ech": Broken(patch={DECODE: decode_after(ech_reference_as_marker)}),
        "inner-padding": Broken(patch={DECODE: zero_padding}),
        "inner-tls12": Broken(patch={"ech.server.ech.check_inner": versions_unchecked}),
        "inner-no-marker": Broken(
            patch={"ech.server.ech.check_inner": marker_unchecked}
        ),
        "inner-malformed": Broken(patch={DECODE: malformed_is_illegal_parameter}),
        "ech-inner-type": Broken(config={"ech_backend": True}),
        "ech-unknown-type": Broken(handshake=IgnoresUnknownType),
        "ech-truncated": Broken(handshake=IgnoresUndecodable),
        "hrr-confirmation": Broken(
            config={"ech_confirmation_hook": flip(lambda m: m.is_hello_retry_request)}
        ),
        "hrr-accept": Broken(patch={OPEN_SECOND: never_opens_second}),
        "hrr-changed-config-id": Broken(
            patch={OPEN_SECOND: lenient_second(config_id=True)}
        ),
        "hrr-changed-suite": Broken(patch={OPEN_SECOND: lenient_second(suite=True)}),
        "hrr-nonempty-enc": Broken(patch={OPEN_SECOND: lenient_second(enc=True)}),
        "hrr-missing-ech": Broken(patch={OPEN_SECOND: missing_second_is_outer}),
        "hrr-bad-payload": Broken(patch={OPEN_SECOND: undecryptable_second_is_outer}),
    }


CHECK_IDS = [
    "config-valid",
    "config-mti",
    "tls13",
    "grease",
    "grease-hrr",
    "accept",
    "accept-suite-hkdf_sha256-chacha20_poly1305",
    "accept-session-id",
    "accept-no-retry-configs",
    "accept-uncompressed",
    "accept-padding",
    "accept-grease-version",
    "accept-noncontiguous",
    "reject-decrypt-failure",
    "reject-public-name-cert",
    "reject-retry-configs",
    "reject-retry-accepted",
    "reject-hrr",
    "reject-unlisted-suite",
    "outer-ext-missing",
    "outer-ext-duplicate",
    "outer-ext-order",
    "outer-ext-ech",
    "inner-padding",
    "inner-tls12",
    "inner-no-marker",
    "inner-malformed",
    "ech-inner-type",
    "ech-unknown-type",
    "ech-truncated",
    "hrr-confirmation",
    "hrr-accept",
    "hrr-changed-config-id",
    "hrr-changed-suite",
    "hrr-nonempty-enc",
    "hrr-missing-ech",
    "hrr-bad-payload",
]


def test_every_check_has_a_fault(probe_pki: ProbePKI, probe_key: ECHKey) -> None:
    registered = {c.info.id for c in CHECKS} - {"accept-suite"}
    tested = set(faults(probe_pki, probe_key))
    assert registered <= tested | {"accept-suite"}
    assert set(CHECK_IDS) == tested
    assert len(CHECKS) >= 30


def test_a_correct_server_passes_every_check(
    probe_pki: ProbePKI, probe_key: ECHKey
) -> None:
    report = run_probe(probe_pki, probe_key, Broken())
    assert failing(report) == set()
    assert all(r.result is Result.PASS for r in report.results), report.render()
    assert report.ok


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_each_check_catches_its_fault_and_only_it(
    check_id: str,
    probe_pki: ProbePKI,
    probe_key: ECHKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = faults(probe_pki, probe_key)[check_id]
    key = make_key(config_id=7, **broken.key) if broken.key else probe_key
    for target, replacement in broken.patch.items():
        monkeypatch.setattr(target, replacement)
    report = run_probe(probe_pki, key, broken)
    assert report.result(check_id).result is Result.FAIL, report.render()
    assert failing(report) == {check_id}, report.render()
    assert not report.ok
