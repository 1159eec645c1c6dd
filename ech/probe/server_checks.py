"""The server checks of ``ech probe``: one requirement each, its own ClientHello.

Every check connects (or reads the published configs) and judges one
requirement of RFC 9849 or RFC 8446 from what came back
(:class:`~ech.probe.attempt.Attempt`). Checks are orthogonal on purpose: a
server broken in one way fails one check. What one fault would otherwise
cascade into is handled two ways:

* ``requires``: a check that cannot be judged unless another passed (e.g.
  nothing about acceptance can be learnt from a server that never
  accepts) reports ``not_applicable`` naming the check it needs;
* :attr:`Attempt.handshake_ok` forgives our client's objections that
  another check reports (retry_configs after acceptance, malformed
  retry_configs, a certificate for the wrong name).

The hostile hellos are built by our own client through its seams:
``ClientConfig.client_hello_hook`` (ClientHelloInner, or a hello without
ECH), :class:`~ech.client.ech.SealTamper` (EncodedClientHelloInner, the
outer hello before it becomes the AAD, the sealed hello) and an empty
key_share, which makes every TLS 1.3 server send HelloRetryRequest (RFC 8446
§4.1.4, §4.2.8).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ech import hpke
from ech.client.config import ClientConfig
from ech.client.ech import (
    ECHOffer,
    SealTamper,
    grease_extension,
    select_config,
    with_extension_before_psk,
)
from ech.config import ECHConfig, ECHConfigList, HpkeSymmetricCipherSuite
from ech.confirmation import hrr_accept_confirmation
from ech.extension import ECHClientHelloOuter, parse_client_hello_extension
from ech.inner import compress, decode_outer_extensions, encode_outer_extensions
from ech.keys import generate_ech_key
from ech.probe.attempt import Attempt, Target, run
from ech.probe.report import CheckInfo, CheckResult, Result
from ech.tls import extensions as ext
from ech.tls.enums import TLS12, TLS13, AlertDescription, ExtensionType
from ech.tls.extensions import Extension
from ech.tls.messages import ClientHello
from ech.tls.suites import SUITES
from ech.tls.transcript import Transcript
from ech.tls.wire import Reader

E = ExtensionType
A = AlertDescription

#: An extension type no ClientHello carries: the "missing" reference.
ABSENT_EXTENSION = 0x1234
#: A GREASE extension type (RFC 8701 §2), for ClientHelloOuter only.
GREASE_EXTENSION = 0x1A1A
#: A supported_versions value reserved for GREASE (RFC 8701 §2).
GREASE_VERSION = 0x0A0A


@dataclass(frozen=True)
class Verdict:
    """What a check concluded."""

    result: Result
    expected: str
    observed: str
    detail: str = ""


@dataclass
class ServerProbe:
    """What every server check needs: where, whom, which configs, and a cache.

    Attributes:
        target: the server.
        server_name: the name it serves behind ECH (``--sni``).
        configs: its published ECHConfigList.
        base: the probe's client settings (trust, ALPN, X25519 only).
    """

    target: Target
    server_name: str
    configs: ECHConfigList
    base: ClientConfig
    _cache: dict[str, Attempt] = field(default_factory=dict)

    @functools.cached_property
    def config(self) -> ECHConfig | None:
        """The config a client would use (the first usable one)."""
        return select_config(self.configs)

    @property
    def public_name(self) -> str:
        """The chosen config's public_name."""
        config = self.config
        if config is None:
            raise RuntimeError("no usable ECHConfig")
        return config.public_name

    def connect(
        self,
        *,
        ech: str = "real",
        configs: ECHConfigList | None = None,
        tamper: SealTamper | None = None,
        hook: Callable[[ClientHello], ClientHello] | None = None,
        hello_retry: bool = False,
        compatibility_mode: bool = False,
        server_name: str | None = None,
    ) -> Attempt:
        """One connection with the faults asked for.

        Args:
            ech: ``real`` (offer ECH), ``grease`` (a GREASE extension whose
                config_id is none of the published ones, so the outcome
                does not depend on chance) or ``none``.
            configs: the configs to offer instead of the published ones.
            tamper: faults in ClientHelloOuter.
            hook: rewrites each ClientHello (the inner one with ECH).
            hello_retry: send an empty key_share, so the server must ask
                for one with HelloRetryRequest.
            compatibility_mode: send a legacy_session_id (RFC 8446 §D.4).
            server_name: the name to ask for instead of ``--sni``.
        """
        if ech == "grease":
            hook = self._grease(hook)
        config = dataclasses.replace(
            self.base,
            client_hello_hook=hook,
            ech_seal_tamper=tamper,
            key_share_groups=() if hello_retry else self.base.key_share_groups,
            compatibility_mode=compatibility_mode,
        )
        offered = (configs or self.configs) if ech == "real" else None
        return run(self.target, config, server_name or self.server_name, offered)

    def cached(self, name: str, make: Callable[[], Attempt]) -> Attempt:
        """An attempt several checks judge, made once."""
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def _grease(
        self, then: Callable[[ClientHello], ClientHello] | None
    ) -> Callable[[ClientHello], ClientHello]:
        """A hook adding one GREASE extension, the same after HRR (§6.2.1)."""
        made: list[Extension] = []
        taken = {c.config_id for c in self.configs.configs if c.contents is not None}

        def hook(hello: ClientHello) -> ClientHello:
            if then is not None:
                hello = then(hello)
            if not made:
                grease = grease_extension(hello, self.base.random)
                offer = parse_client_hello_extension(grease.data)
                if offer is None:
                    raise RuntimeError("internal error: GREASE is an outer ECH")
                config_id = offer.config_id
                while config_id in taken:
                    config_id = (config_id + 1) % 256
                offer = dataclasses.replace(offer, config_id=config_id)
                made.append(Extension(E.ENCRYPTED_CLIENT_HELLO, offer.encode()))
            return with_extension_before_psk(hello, made[0])

        return hook

    def unknown_configs(self) -> ECHConfigList:
        """A config the server cannot hold: a fresh key under an unused id."""
        config = self._config()
        contents = config.contents
        if contents is None:
            raise RuntimeError("internal error: no contents")
        taken = {c.config_id for c in self.configs.configs if c.contents is not None}
        key = generate_ech_key(
            config.public_name,
            kem_id=contents.kem_id,
            cipher_suites=contents.cipher_suites,
            maximum_name_length=contents.maximum_name_length,
            avoid_ids=taken,
        )
        return ECHConfigList((key.config,))

    def stale_configs(self) -> ECHConfigList:
        """The server's config_id with another key: as after a bad rotation."""
        config = self._config()
        contents = config.contents
        if contents is None:
            raise RuntimeError("internal error: no contents")
        key = generate_ech_key(
            config.public_name,
            kem_id=contents.kem_id,
            config_id=contents.config_id,
            cipher_suites=contents.cipher_suites,
            maximum_name_length=contents.maximum_name_length,
        )
        return ECHConfigList((key.config,))

    def _config(self) -> ECHConfig:
        config = self.config
        if config is None:
            raise RuntimeError("no usable ECHConfig")
        return config


@dataclass(frozen=True)
class ServerCheck:
    """A registered check.

    Attributes:
        info: id, requirement numbers (``ECH-N``), RFC section, summary.
        run: makes the verdict.
        requires: checks that must pass for this one to be judged.
        tcp_only: the requirement does not exist over QUIC.
    """

    info: CheckInfo
    run: Callable[[ServerProbe], Verdict]
    requires: tuple[str, ...] = ()
    tcp_only: bool = False


CHECKS: list[ServerCheck] = []


def check(
    check_id: str,
    items: tuple[int, ...],
    section: str,
    summary: str,
    *,
    requires: tuple[str, ...] = (),
    tcp_only: bool = False,
) -> Callable[[Callable[[ServerProbe], Verdict]], Callable[[ServerProbe], Verdict]]:
    """Register a check, in the order they run."""

    def register(
        run_check: Callable[[ServerProbe], Verdict],
    ) -> Callable[[ServerProbe], Verdict]:
        CHECKS.append(
            ServerCheck(
                CheckInfo(check_id, items, section, summary),
                run_check,
                requires,
                tcp_only,
            )
        )
        return run_check

    return register


# judging what came back ---------------------------------------------------------------


def expect_alert(attempt: Attempt, *alerts: AlertDescription, why: str) -> Verdict:
    """Pass iff the server aborted with one of ``alerts``."""
    expected = " or ".join(f"alert {a}" for a in alerts) + f" ({why})"
    if attempt.peer_alert in alerts:
        return Verdict(Result.PASS, expected, attempt.describe())
    return Verdict(Result.FAIL, expected, attempt.describe())


def expect_accepted(attempt: Attempt, why: str) -> Verdict:
    """Pass iff ServerHello confirmed ECH and the handshake went through."""
    expected = f"ECH accepted: ServerHello confirms it, handshake completes ({why})"
    if attempt.confirmed and attempt.handshake_ok:
        return Verdict(Result.PASS, expected, attempt.describe())
    return Verdict(Result.FAIL, expected, attempt.describe())


def expect_rejected(attempt: Attempt, why: str) -> Verdict:
    """Pass iff the server went on with ClientHelloOuter, unconfirmed."""
    expected = (
        "ECH rejected: ServerHello without confirmation, the handshake goes on "
        f"with ClientHelloOuter ({why})"
    )
    if attempt.server_hello is not None and not attempt.confirmed and attempt.continued:
        return Verdict(Result.PASS, expected, attempt.describe())
    return Verdict(Result.FAIL, expected, attempt.describe())


# the faults, as pure functions over what the client seals -----------------------------


def _split_encoded(encoded: bytes) -> tuple[ClientHello, bytes]:
    r = Reader(encoded)
    hello = ClientHello.read(r)
    return hello, r.rest()


def edit_encoded(
    edit: Callable[[ClientHello], ClientHello],
) -> Callable[[ECHOffer, bytes], bytes]:
    """A SealTamper.encoded_inner that rewrites the encoded hello, keeping padding."""

    def tamper(offer: ECHOffer, encoded: bytes) -> bytes:
        hello, padding = _split_encoded(encoded)
        return edit(hello).encode() + padding

    return tamper


def edit_references(
    edit: Callable[[list[int]], list[int]],
) -> Callable[[ClientHello], ClientHello]:
    """Rewrite the ``ech_outer_extensions`` list of an encoded hello (§5.1)."""

    def rewrite(hello: ClientHello) -> ClientHello:
        data = hello.extension(E.ECH_OUTER_EXTENSIONS)
        if data is None:
            raise RuntimeError("internal error: our client compressed nothing")
        refs = edit(list(decode_outer_extensions(data)))
        return hello.with_extension(
            Extension(E.ECH_OUTER_EXTENSIONS, encode_outer_extensions(refs))
        )

    return rewrite


def second_only(
    edit: Callable[[ECHOffer, ClientHello], ClientHello],
) -> Callable[[ECHOffer, ClientHello], ClientHello]:
    """Apply ``edit`` to the second ClientHelloOuter only (after HRR)."""

    def tamper(offer: ECHOffer, hello: ClientHello) -> ClientHello:
        return edit(offer, hello) if offer.sealed_once else hello

    return tamper


def first_only(
    edit: Callable[[ECHOffer, ClientHello], ClientHello],
) -> Callable[[ECHOffer, ClientHello], ClientHello]:
    """Apply ``edit`` to the first ClientHelloOuter only."""

    def tamper(offer: ECHOffer, hello: ClientHello) -> ClientHello:
        return hello if offer.sealed_once else edit(offer, hello)

    return tamper


def edit_offer(
    edit: Callable[[ECHOffer, ECHClientHelloOuter], ECHClientHelloOuter],
) -> Callable[[ECHOffer, ClientHello], ClientHello]:
    """Rewrite the outer ECHClientHello of a ClientHelloOuter."""

    def tamper(offer: ECHOffer, hello: ClientHello) -> ClientHello:
        data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
        if data is None:
            raise RuntimeError("internal error: no encrypted_client_hello")
        sent = parse_client_hello_extension(data)
        if sent is None:
            raise RuntimeError("internal error: inner ECH in ClientHelloOuter")
        return hello.with_extension(
            Extension(E.ENCRYPTED_CLIENT_HELLO, edit(offer, sent).encode())
        )

    return tamper


def corrupt_payload(offer: ECHOffer, sent: ECHClientHelloOuter) -> ECHClientHelloOuter:
    """Flip the last bit of the payload: the AEAD tag no longer verifies."""
    payload = sent.payload[:-1] + bytes((sent.payload[-1] ^ 1,))
    return sent.with_payload(payload)


def _with_versions(versions: list[int]) -> Callable[[ClientHello], ClientHello]:
    def hook(hello: ClientHello) -> ClientHello:
        return hello.with_extension(
            Extension(E.SUPPORTED_VERSIONS, ext.encode_client_versions(versions))
        )

    return hook


def _suite_name(suite: HpkeSymmetricCipherSuite) -> str:
    def name(enum: type[hpke.KDF] | type[hpke.AEAD], value: int) -> str:
        try:
            return enum(value).name.lower()
        except ValueError:
            return f"0x{value:04x}"

    return f"{name(hpke.KDF, suite.kdf_id)}-{name(hpke.AEAD, suite.aead_id)}"


def _supported_suites(kem_id: int) -> Iterator[HpkeSymmetricCipherSuite]:
    for kdf in hpke.KDF:
        for aead in hpke.AEAD:
            if hpke.is_supported(kem_id, kdf, aead):
                yield HpkeSymmetricCipherSuite(kdf, aead)


# the published configs (RFC 9849 §4, §9) ----------------------------------------------


@check(
    "config-valid",
    (1, 2, 3, 4, 8, 9, 13, 14),
    "RFC 9849 §4, §4.2, §6.1.7",
    "the ECHConfigList parses and holds a config a client can use",
)
def config_valid(p: ServerProbe) -> Verdict:
    expected = "at least one usable ECHConfig (version 0xfe0d, known KEM and suite, "
    expected += "valid public_name, no unknown mandatory extension)"
    reasons = [
        f"config {i}: {c.unsupported_reason()}"
        for i, c in enumerate(p.configs.configs)
        if c.unsupported_reason() is not None
    ]
    usable = len(p.configs.configs) - len(reasons)
    observed = f"{len(p.configs.configs)} config(s), {usable} usable"
    detail = "; ".join(reasons)
    if p.config is None:
        return Verdict(Result.FAIL, expected, observed, detail)
    return Verdict(Result.PASS, expected, observed, detail)


@check(
    "config-mti",
    (17,),
    "RFC 9849 §9",
    "a config offers the mandatory suite: DHKEM(X25519), HKDF-SHA256, AES-128-GCM",
)
def config_mti(p: ServerProbe) -> Verdict:
    mti = HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
    expected = "a config with KEM 0x0020 listing (0x0001, 0x0001)"
    offered = [
        f"KEM 0x{c.contents.kem_id:04x} suites "
        + ",".join(_suite_name(s) for s in c.contents.cipher_suites)
        for c in p.configs.configs
        if c.contents is not None
    ]
    observed = "; ".join(offered) or "no config of version 0xfe0d"
    for c in p.configs.configs:
        contents = c.contents
        if (
            contents is not None
            and contents.kem_id == hpke.KEM.DHKEM_X25519_HKDF_SHA256
            and mti in contents.cipher_suites
        ):
            return Verdict(Result.PASS, expected, observed)
    return Verdict(
        Result.FAIL,
        expected,
        observed,
        "clients that implement only the MTI suite (BoringSSL: X25519 only) "
        "fall back to GREASE",
    )


# TLS 1.3 without ECH, and GREASE (RFC 8446, RFC 9849 §6.2, §7.1) ----------------------


@check(
    "tls13",
    (86,),
    "RFC 8446 §4; RFC 9849 §8.1.1",
    "a TLS 1.3 handshake without ECH, for public_name, completes",
    requires=("config-valid",),
)
def tls13(p: ServerProbe) -> Verdict:
    attempt = p.connect(ech="none", server_name=p.public_name)
    expected = f"handshake completes, certificate valid for {p.public_name}"
    if attempt.completed is not None:
        return Verdict(Result.PASS, expected, attempt.describe())
    return Verdict(Result.FAIL, expected, attempt.describe())


@check(
    "grease",
    (69, 71, 82),
    "RFC 9849 §6.2.1, §7.1",
    "a GREASE encrypted_client_hello is ignored: the handshake completes",
)
def grease(p: ServerProbe) -> Verdict:
    attempt = p.connect(ech="grease")
    expected = "handshake completes without ECH (decryption failure is not an error)"
    if attempt.handshake_ok and not attempt.confirmed:
        return Verdict(Result.PASS, expected, attempt.describe())
    return Verdict(Result.FAIL, expected, attempt.describe())


@check(
    "grease-hrr",
    (70, 81, 84),
    "RFC 9849 §6.2.1, §7.1, §7.1.1",
    "GREASE with HelloRetryRequest: any ECH in the HRR is 8 bytes, the "
    "unchanged GREASE in ClientHello2 is not decrypted",
    requires=("grease",),
)
def grease_hrr(p: ServerProbe) -> Verdict:
    attempt = p.connect(ech="grease", hello_retry=True)
    return _rejected_hrr(attempt, require_retry_configs=False)


def _rejected_hrr(attempt: Attempt, *, require_retry_configs: bool) -> Verdict:
    expected = (
        "HelloRetryRequest (ECH absent or 8 bytes), then the handshake completes "
        "with ClientHelloOuter2"
    )
    if require_retry_configs:
        expected += " and retry_configs in EncryptedExtensions"
    hrr = attempt.hello_retry
    observed = attempt.describe()
    if hrr is None:
        return Verdict(
            Result.FAIL,
            expected,
            observed,
            "an empty key_share must be answered "
            "with HelloRetryRequest (RFC 8446 §4.1.1)",
        )
    data = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
    if data is not None and len(data) != 8:
        return Verdict(Result.FAIL, expected, observed)
    if not (attempt.handshake_ok and not attempt.confirmed):
        return Verdict(Result.FAIL, expected, observed)
    if require_retry_configs and attempt.retry_configs() is None:
        return Verdict(Result.FAIL, expected, observed)
    return Verdict(Result.PASS, expected, observed)


# acceptance (RFC 9849 §6.1.4, §7.1, §7.2) ---------------------------------------------


def _accepted(p: ServerProbe) -> Attempt:
    return p.cached("accept", lambda: p.connect())


@check(
    "accept",
    (54, 55, 77, 80, 88),
    "RFC 9849 §7.1, §7.2",
    "ECH with the preferred suite is accepted; ServerHello.random ends in "
    "accept_confirmation; the certificate is the inner name's",
    requires=("config-valid",),
)
def accept(p: ServerProbe) -> Verdict:
    return expect_accepted(_accepted(p), "RFC 9849 §7.2")


#: The accept-suite family: one check per suite of the chosen config.
SUITE_CHECK = CheckInfo(
    "accept-suite",
    (7, 17, 77),
    "RFC 9849 §7.1, §9",
    "ECH sealed with each HPKE suite the config lists is accepted",
)


def suite_checks(p: ServerProbe) -> list[ServerCheck]:
    """One check per (KDF, AEAD) pair the chosen config lists."""
    config = p.config
    if config is None or config.contents is None:
        return [ServerCheck(SUITE_CHECK, lambda _: _no_config(), ("accept",))]
    out: list[ServerCheck] = []
    kem_id = config.contents.kem_id
    for suite in config.contents.cipher_suites:
        info = dataclasses.replace(
            SUITE_CHECK,
            id=f"accept-suite-{_suite_name(suite)}",
            summary=f"ECH sealed with {_suite_name(suite)} is accepted",
        )
        out.append(ServerCheck(info, _suite_runner(suite, kem_id), ("accept",)))
    return out


def _no_config() -> Verdict:
    return Verdict(Result.NOT_APPLICABLE, "a usable config", "none")


def _suite_runner(
    suite: HpkeSymmetricCipherSuite, kem_id: int
) -> Callable[[ServerProbe], Verdict]:
    def run_suite(p: ServerProbe) -> Verdict:
        if not hpke.is_supported(kem_id, suite.kdf_id, suite.aead_id):
            return Verdict(
                Result.NOT_APPLICABLE,
                "acceptance",
                f"the probe does not implement {_suite_name(suite)}",
            )
        attempt = p.connect(tamper=SealTamper(cipher_suite=suite))
        return expect_accepted(attempt, "RFC 9849 §7.1")

    return run_suite


@check(
    "accept-session-id",
    (30, 40),
    "RFC 9849 §5.1, §6.1",
    "the server takes legacy_session_id from ClientHelloOuter and echoes it",
    requires=("accept",),
    tcp_only=True,
)
def accept_session_id(p: ServerProbe) -> Verdict:
    attempt = p.connect(compatibility_mode=True)
    return expect_accepted(attempt, "the ServerHello echoes the outer session id")


@check(
    "accept-no-retry-configs",
    (22,),
    "RFC 9849 §5, §7.1",
    "no encrypted_client_hello in EncryptedExtensions when ECH was accepted",
    requires=("accept",),
)
def accept_no_retry_configs(p: ServerProbe) -> Verdict:
    attempt = _accepted(p)
    expected = "EncryptedExtensions without encrypted_client_hello"
    if attempt.continued and attempt.ee_ech() is None:
        return Verdict(Result.PASS, expected, attempt.describe())
    return Verdict(
        Result.FAIL,
        expected,
        attempt.describe(),
        "a client must abort with unsupported_extension (RFC 9849 §5)",
    )


def _uncompressed(offer: ECHOffer, encoded: bytes) -> bytes:
    _, padding = _split_encoded(encoded)
    inner = offer.inner_hello
    if inner is None:
        raise RuntimeError("internal error: no ClientHelloInner")
    return compress(inner, []).encode() + padding


@check(
    "accept-uncompressed",
    (25, 26),
    "RFC 9849 §5.1",
    "ClientHelloInner without ech_outer_extensions (nothing compressed) is accepted",
    requires=("accept",),
)
def accept_uncompressed(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=SealTamper(encoded_inner=_uncompressed))
    return expect_accepted(attempt, "compression is the client's choice")


@check(
    "accept-padding",
    (25, 29),
    "RFC 9849 §5.1, §6.1.3",
    "any length of zero padding is accepted",
    requires=("accept",),
)
def accept_padding(p: ServerProbe) -> Verdict:
    tamper = SealTamper(encoded_inner=lambda offer, encoded: encoded + bytes(77))
    attempt = p.connect(tamper=tamper)
    return expect_accepted(attempt, "padding is all zeros, of any length")


@check(
    "accept-grease-version",
    (78,),
    "RFC 9849 §7.1; RFC 8701 §3",
    "a GREASE value in ClientHelloInner's supported_versions is ignored",
    requires=("accept",),
)
def accept_grease_version(p: ServerProbe) -> Verdict:
    attempt = p.connect(hook=_with_versions([GREASE_VERSION, TLS13]))
    return expect_accepted(attempt, "only TLS 1.2 and below are refused")


def _split_compressed(offer: ECHOffer, hello: ClientHello) -> ClientHello:
    """Put a GREASE extension between the first two compressed extensions."""
    inner = offer.inner_hello
    if inner is None:
        raise RuntimeError("internal error: no ClientHelloInner")
    extensions = list(hello.extensions)
    for index, extension in enumerate(extensions):
        if extension.type in (E.SUPPORTED_GROUPS, E.SIGNATURE_ALGORITHMS):
            extensions.insert(index + 1, Extension(GREASE_EXTENSION, b""))
            break
    return dataclasses.replace(hello, extensions=tuple(extensions))


@check(
    "accept-noncontiguous",
    (27,),
    "RFC 9849 §5.1",
    "referenced extensions need not be contiguous in ClientHelloOuter",
    requires=("accept",),
)
def accept_noncontiguous(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=SealTamper(outer=first_only(_split_compressed)))
    return expect_accepted(attempt, "only their relative order matters")


# rejection and retry (RFC 9849 §6.1.6, §7.1, §7.1.1) ----------------------------------


def _unknown(p: ServerProbe) -> Attempt:
    return p.cached("unknown", lambda: p.connect(configs=p.unknown_configs()))


@check(
    "reject-decrypt-failure",
    (77, 82),
    "RFC 9849 §7.1",
    "a payload that does not decrypt under a known config_id is a rejection, "
    "not an error (a stale key; a corrupted payload)",
    requires=("accept", "grease"),
)
def reject_decrypt_failure(p: ServerProbe) -> Verdict:
    stale = p.connect(configs=p.stale_configs())
    verdict = expect_rejected(stale, "stale key: decryption fails")
    if verdict.result is not Result.PASS:
        return dataclasses.replace(verdict, detail="with a stale key")
    tamper = SealTamper(sealed=first_only(edit_offer(corrupt_payload)))
    corrupted = p.connect(tamper=tamper)
    verdict = expect_rejected(corrupted, "the payload does not open")
    if verdict.result is not Result.PASS:
        return dataclasses.replace(verdict, detail="with a corrupted payload")
    return verdict


@check(
    "reject-public-name-cert",
    (60, 65, 86),
    "RFC 9849 §6.1.6, §6.1.7, §8.1.1",
    "after a rejection the server authenticates as public_name",
    requires=("tls13", "grease", "accept"),
)
def reject_public_name_cert(p: ServerProbe) -> Verdict:
    attempt = _unknown(p)
    expected = f"a certificate valid for {p.public_name}, then our ech_required"
    if attempt.rejected is not None:
        return Verdict(Result.PASS, expected, attempt.describe())
    return Verdict(Result.FAIL, expected, attempt.describe())


@check(
    "reject-retry-configs",
    (22, 61, 81),
    "RFC 9849 §5, §7.1",
    "a rejecting server sends retry_configs: a well-formed list with a usable config",
    requires=("grease", "accept"),
)
def reject_retry_configs(p: ServerProbe) -> Verdict:
    attempt = _unknown(p)
    expected = "encrypted_client_hello with retry_configs in EncryptedExtensions"
    observed = attempt.describe()
    if not attempt.continued:
        return Verdict(Result.FAIL, expected, observed)
    configs = attempt.retry_configs()
    if configs is None:
        return Verdict(Result.FAIL, expected, observed)
    if not configs.usable():
        return Verdict(Result.FAIL, expected, observed, "no config in it is usable")
    return Verdict(Result.PASS, expected, observed)


@check(
    "reject-retry-accepted",
    (64, 81),
    "RFC 9849 §6.1.6, §7.1",
    "a retry with the retry_configs is accepted (they hold up-to-date keys)",
    requires=("reject-retry-configs",),
)
def reject_retry_accepted(p: ServerProbe) -> Verdict:
    configs = _unknown(p).retry_configs()
    if configs is None:
        return Verdict(Result.ERROR, "retry_configs", "none")
    attempt = p.connect(configs=configs)
    return expect_accepted(attempt, "retry on a new connection (RFC 9849 §6.1.6)")


@check(
    "reject-hrr",
    (81, 84),
    "RFC 9849 §7.1, §7.1.1",
    "rejection with HelloRetryRequest: ECH in the HRR is 8 bytes, "
    "ClientHelloOuter2 is not decrypted, retry_configs are still sent",
    requires=("grease-hrr", "reject-retry-configs"),
)
def reject_hrr(p: ServerProbe) -> Verdict:
    attempt = p.connect(configs=p.unknown_configs(), hello_retry=True)
    return _rejected_hrr(attempt, require_retry_configs=True)


@check(
    "reject-unlisted-suite",
    (77,),
    "RFC 9849 §7.1",
    "a payload sealed with a suite the config does not list is not decrypted",
    requires=("accept", "grease"),
)
def reject_unlisted_suite(p: ServerProbe) -> Verdict:
    config = p._config()
    contents = config.contents
    if contents is None:
        raise RuntimeError("internal error: no contents")
    unlisted = [
        s for s in _supported_suites(contents.kem_id) if s not in contents.cipher_suites
    ]
    if not unlisted:
        return Verdict(
            Result.NOT_APPLICABLE,
            "a suite the config does not list",
            "the config lists every suite the probe implements",
        )
    attempt = p.connect(tamper=SealTamper(cipher_suite=unlisted[0]))
    verdict = expect_rejected(attempt, "the config does not support that suite")
    return dataclasses.replace(
        verdict, detail=f"sealed with {_suite_name(unlisted[0])}"
    )


# EncodedClientHelloInner (RFC 9849 §5.1, Appendix A; §7.1) ----------------------------


def _outer_refs(
    edit: Callable[[list[int]], list[int]],
) -> SealTamper:
    return SealTamper(encoded_inner=edit_encoded(edit_references(edit)))


@check(
    "outer-ext-missing",
    (31, 32),
    "RFC 9849 §5.1, Appendix A",
    "ech_outer_extensions naming an extension ClientHelloOuter lacks: "
    "illegal_parameter",
    requires=("accept",),
)
def outer_ext_missing(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=_outer_refs(lambda refs: [*refs, ABSENT_EXTENSION]))
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §5.1")


@check(
    "outer-ext-duplicate",
    (31, 32, 103),
    "RFC 9849 §5.1, Appendix A",
    "ech_outer_extensions naming one extension twice: illegal_parameter",
    requires=("accept",),
)
def outer_ext_duplicate(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=_outer_refs(lambda refs: [refs[0], *refs]))
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §5.1")


@check(
    "outer-ext-order",
    (31, 32),
    "RFC 9849 §5.1, Appendix A",
    "ech_outer_extensions out of ClientHelloOuter's order: illegal_parameter",
    requires=("accept",),
)
def outer_ext_order(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=_outer_refs(lambda refs: [refs[1], refs[0], *refs[2:]]))
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §5.1")


def _refer_to_ech(hello: ClientHello) -> ClientHello:
    """Drop the inner marker; name the outer encrypted_client_hello instead."""
    hello = hello.without_extension(E.ENCRYPTED_CLIENT_HELLO)
    return edit_references(lambda refs: [*refs, E.ENCRYPTED_CLIENT_HELLO])(hello)


@check(
    "outer-ext-ech",
    (31, 102),
    "RFC 9849 §5.1",
    "ech_outer_extensions naming encrypted_client_hello: illegal_parameter",
    requires=("accept",),
)
def outer_ext_ech(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=SealTamper(encoded_inner=edit_encoded(_refer_to_ech)))
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §5.1")


@check(
    "inner-padding",
    (25, 29),
    "RFC 9849 §5.1",
    "non-zero padding after ClientHelloInner: illegal_parameter",
    requires=("accept",),
)
def inner_padding(p: ServerProbe) -> Verdict:
    tamper = SealTamper(encoded_inner=lambda offer, encoded: encoded + b"\x01")
    attempt = p.connect(tamper=tamper)
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §5.1")


@check(
    "inner-tls12",
    (35, 78),
    "RFC 9849 §6.1, §7.1",
    "ClientHelloInner offering TLS 1.2: illegal_parameter",
    requires=("accept",),
)
def inner_tls12(p: ServerProbe) -> Verdict:
    attempt = p.connect(hook=_with_versions([TLS13, TLS12]))
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §7.1")


@check(
    "inner-no-marker",
    (20, 78),
    "RFC 9849 §5, §7.1",
    "ClientHelloInner without an inner encrypted_client_hello: illegal_parameter",
    requires=("accept",),
)
def inner_no_marker(p: ServerProbe) -> Verdict:
    drop = edit_encoded(lambda hello: hello.without_extension(E.ENCRYPTED_CLIENT_HELLO))
    attempt = p.connect(tamper=SealTamper(encoded_inner=drop))
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §7.1")


def _malformed(offer: ECHOffer, encoded: bytes) -> bytes:
    """A ClientHello cut short: its extensions vector claims 16 bytes, has 1."""
    return (
        b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    ) + b"\x00\x10\x00"


@check(
    "inner-malformed",
    (25,),
    "RFC 9849 §5.1; RFC 8446 §6.2",
    "an EncodedClientHelloInner that decrypts but does not parse: decode_error",
    requires=("accept",),
)
def inner_malformed(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=SealTamper(encoded_inner=_malformed))
    return expect_alert(attempt, A.DECODE_ERROR, why="RFC 8446 §6.2")


# the extension itself (RFC 9849 §5, §7) -----------------------------------------------


def _add_ech(body: bytes) -> Callable[[ClientHello], ClientHello]:
    def hook(hello: ClientHello) -> ClientHello:
        return with_extension_before_psk(
            hello, Extension(E.ENCRYPTED_CLIENT_HELLO, body)
        )

    return hook


@check(
    "ech-inner-type",
    (73,),
    "RFC 9849 §7",
    "a ClientHello from the network with an inner-type ECHClientHello: "
    "illegal_parameter (client-facing and shared-mode servers)",
    requires=("accept",),
)
def ech_inner_type(p: ServerProbe) -> Verdict:
    attempt = p.connect(ech="none", hook=_add_ech(b"\x01"))
    verdict = expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §7")
    if attempt.completed is not None:
        detail = "the server answered as a split-mode backend"
        return dataclasses.replace(verdict, detail=detail)
    return verdict


@check(
    "ech-unknown-type",
    (73,),
    "RFC 9849 §7",
    "an ECHClientHello of unknown type: illegal_parameter",
    requires=("accept",),
)
def ech_unknown_type(p: ServerProbe) -> Verdict:
    body = b"\x02\x00\x01\x00\x01\x07\x00\x00\x00\x01\x00"
    attempt = p.connect(ech="none", hook=_add_ech(body))
    return expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §7")


def _truncate(offer: ECHOffer, hello: ClientHello) -> ClientHello:
    data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
    if data is None:
        raise RuntimeError("internal error: no encrypted_client_hello")
    return hello.with_extension(
        Extension(E.ENCRYPTED_CLIENT_HELLO, data[: len(data) // 2])
    )


@check(
    "ech-truncated",
    (19,),
    "RFC 9849 §5; RFC 8446 §6.2",
    "an encrypted_client_hello cut short: decode_error",
    requires=("accept",),
)
def ech_truncated(p: ServerProbe) -> Verdict:
    attempt = p.connect(tamper=SealTamper(sealed=_truncate))
    return expect_alert(attempt, A.DECODE_ERROR, why="RFC 8446 §6.2")


# HelloRetryRequest (RFC 9849 §6.1.5, §7.1.1, §7.2.1) ----------------------------------


@dataclass
class _Captured:
    inner: ClientHello | None = None

    def outer(self, offer: ECHOffer, hello: ClientHello) -> ClientHello:
        if not offer.sealed_once:
            self.inner = offer.inner_hello
        return hello


def _hrr_attempt(p: ServerProbe) -> tuple[Attempt, ClientHello | None]:
    captured = _Captured()
    attempt = p.cached(
        "hrr",
        lambda: p.connect(tamper=SealTamper(outer=captured.outer), hello_retry=True),
    )
    return attempt, captured.inner


@check(
    "hrr-confirmation",
    (23, 56, 90),
    "RFC 9849 §7.2.1",
    "HelloRetryRequest carries encrypted_client_hello = hrr_accept_confirmation",
    requires=("accept",),
)
def hrr_confirmation(p: ServerProbe) -> Verdict:
    captured = _Captured()
    attempt = p.connect(tamper=SealTamper(outer=captured.outer), hello_retry=True)
    p._cache["hrr"] = attempt
    expected = "an 8-byte encrypted_client_hello equal to hrr_accept_confirmation"
    observed = attempt.describe()
    hrr = attempt.hello_retry
    if hrr is None:
        return Verdict(Result.FAIL, expected, observed, "no HelloRetryRequest")
    received = hrr.extension(E.ENCRYPTED_CLIENT_HELLO)
    inner = captured.inner
    suite = SUITES.get(hrr.cipher_suite)
    if received is None or inner is None or suite is None:
        return Verdict(Result.FAIL, expected, observed)
    transcript = Transcript()
    transcript.set_algorithm(suite.hash)
    transcript.add(inner.framed())
    transcript.rewrite_for_hello_retry()
    value = hrr_accept_confirmation(suite.hash, inner.random, transcript, hrr)
    if received == value:
        return Verdict(Result.PASS, expected, observed)
    return Verdict(
        Result.FAIL,
        expected,
        observed,
        f"received {received.hex()}, expected {value.hex()} over "
        "message_hash(ClientHelloInner1) and the HRR with 8 zero bytes",
    )


@check(
    "hrr-accept",
    (57, 58, 83),
    "RFC 9849 §6.1.5, §7.1.1",
    "after HelloRetryRequest, ClientHelloOuter2 (empty enc, same config_id and "
    "suite, same HPKE context) is accepted",
    requires=("hrr-confirmation",),
)
def hrr_accept(p: ServerProbe) -> Verdict:
    attempt, _ = _hrr_attempt(p)
    return expect_accepted(attempt, "RFC 9849 §7.1.1")


def _hrr_fault(p: ServerProbe, tamper: SealTamper) -> Attempt:
    return p.connect(tamper=tamper, hello_retry=True)


def _no_hrr(attempt: Attempt, verdict: Verdict) -> Verdict:
    if attempt.hello_retry is None:
        return dataclasses.replace(verdict, detail="no HelloRetryRequest came")
    return verdict


@check(
    "hrr-changed-config-id",
    (83, 101),
    "RFC 9849 §7.1.1",
    "ClientHelloOuter2 with another config_id: illegal_parameter",
    requires=("accept",),
)
def hrr_changed_config_id(p: ServerProbe) -> Verdict:
    def other(offer: ECHOffer, sent: ECHClientHelloOuter) -> ECHClientHelloOuter:
        return dataclasses.replace(sent, config_id=(sent.config_id + 1) % 256)

    attempt = _hrr_fault(p, SealTamper(outer=second_only(edit_offer(other))))
    return _no_hrr(
        attempt, expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §7.1.1")
    )


@check(
    "hrr-changed-suite",
    (83, 101),
    "RFC 9849 §7.1.1",
    "ClientHelloOuter2 with another cipher_suite: illegal_parameter",
    requires=("accept",),
)
def hrr_changed_suite(p: ServerProbe) -> Verdict:
    def other(offer: ECHOffer, sent: ECHClientHelloOuter) -> ECHClientHelloOuter:
        suite = sent.cipher_suite
        aead = (
            hpke.AEAD.AES_256_GCM
            if suite.aead_id != hpke.AEAD.AES_256_GCM
            else hpke.AEAD.AES_128_GCM
        )
        changed = HpkeSymmetricCipherSuite(suite.kdf_id, aead)
        return dataclasses.replace(sent, cipher_suite=changed)

    attempt = _hrr_fault(p, SealTamper(outer=second_only(edit_offer(other))))
    return _no_hrr(
        attempt, expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §7.1.1")
    )


@check(
    "hrr-nonempty-enc",
    (21, 58, 83),
    "RFC 9849 §7.1.1",
    "ClientHelloOuter2 with a non-empty enc: illegal_parameter",
    requires=("accept",),
)
def hrr_nonempty_enc(p: ServerProbe) -> Verdict:
    def with_enc(offer: ECHOffer, sent: ECHClientHelloOuter) -> ECHClientHelloOuter:
        return dataclasses.replace(sent, enc=offer.enc)

    attempt = _hrr_fault(p, SealTamper(outer=second_only(edit_offer(with_enc))))
    return _no_hrr(
        attempt, expect_alert(attempt, A.ILLEGAL_PARAMETER, why="RFC 9849 §7.1.1")
    )


@check(
    "hrr-missing-ech",
    (83,),
    "RFC 9849 §7.1.1",
    "ClientHelloOuter2 without encrypted_client_hello: missing_extension",
    requires=("accept",),
)
def hrr_missing_ech(p: ServerProbe) -> Verdict:
    def drop(offer: ECHOffer, hello: ClientHello) -> ClientHello:
        return hello.without_extension(E.ENCRYPTED_CLIENT_HELLO)

    attempt = _hrr_fault(p, SealTamper(sealed=second_only(drop)))
    return _no_hrr(
        attempt, expect_alert(attempt, A.MISSING_EXTENSION, why="RFC 9849 §7.1.1")
    )


@check(
    "hrr-bad-payload",
    (83,),
    "RFC 9849 §7.1.1",
    "ClientHelloOuter2 whose payload does not open: decrypt_error",
    requires=("accept",),
)
def hrr_bad_payload(p: ServerProbe) -> Verdict:
    tamper = SealTamper(sealed=second_only(edit_offer(corrupt_payload)))
    attempt = _hrr_fault(p, tamper)
    return _no_hrr(
        attempt, expect_alert(attempt, A.DECRYPT_ERROR, why="RFC 9849 §7.1.1")
    )


# running them -------------------------------------------------------------------------


def all_checks(p: ServerProbe) -> list[ServerCheck]:
    """Every check in running order, the suite family expanded after ``accept``."""
    out: list[ServerCheck] = []
    for registered in CHECKS:
        out.append(registered)
        if registered.info.id == "accept":
            out.extend(suite_checks(p))
    return out


def selected(check_id: str, only: list[str] | None) -> bool:
    """``--only``: an id, or a prefix ending before a dash (``hrr``)."""
    if not only:
        return True
    return any(check_id == o or check_id.startswith(o + "-") for o in only)


def run_checks(p: ServerProbe, only: list[str] | None = None) -> list[CheckResult]:
    """Run the checks (``only`` those selected) in order.

    A prerequisite that was not selected is not enforced.
    """
    results: dict[str, CheckResult] = {}
    for server_check in all_checks(p):
        info = server_check.info
        if not selected(info.id, only):
            continue
        results[info.id] = _run_one(p, server_check, results)
    return list(results.values())


def _run_one(
    p: ServerProbe, server_check: ServerCheck, done: dict[str, CheckResult]
) -> CheckResult:
    info = server_check.info
    if server_check.tcp_only and p.target.quic:
        return CheckResult(
            info,
            Result.NOT_APPLICABLE,
            detail="QUIC has no middlebox compatibility mode (RFC 9001 §8.4)",
        )
    unmet = [
        r
        for r in server_check.requires
        if r in done and done[r].result is not Result.PASS
    ]
    if unmet:
        return CheckResult(
            info,
            Result.NOT_APPLICABLE,
            detail=f"cannot be judged: needs {', '.join(unmet)} to pass",
        )
    try:
        verdict = server_check.run(p)
    except Exception as error:  # one check's bug must not end the whole run
        return CheckResult(
            info, Result.ERROR, observed=f"{type(error).__name__}: {error}"
        )
    return CheckResult(
        info, verdict.result, verdict.expected, verdict.observed, verdict.detail
    )


__all__ = [
    "CHECKS",
    "ServerCheck",
    "ServerProbe",
    "Verdict",
    "all_checks",
    "run_checks",
]
