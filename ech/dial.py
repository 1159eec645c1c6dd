"""How a client reaches a server with ECH: discover, connect, retry once, explain.

One policy for :func:`ech.blocking.connect`, :func:`ech.aio.open_connection`,
:func:`ech.quic.client.open_http3`, :mod:`ech.httpx` and
:class:`ech.context.ECHClientContext`; they differ only in how they open a
connection and wait for its handshake:

1. With a DoH resolver and no ECH configs given, look up the name's HTTPS
   record before any ClientHello is sent (RFC 9848 §5.3, ECH-107):
   use the ECH configs of the most preferred endpoint that has usable
   ones, or GREASE ECH (RFC 9849 §6.2) when the record has none. Without a
   resolver nothing touches DNS.
2. Refuse to connect when sending a ClientHello would show the real name
   although ECH was promised: every HTTPS record carries ``ech`` but none
   of the configs is usable (SVCB-reliant mode, RFC 9848 §5.1, ECH-105), or
   strict mode (``require_ech=True``) and real ECH cannot be offered.
   :class:`~ech.errors.ECHUnavailableError` says why; nothing was sent.
3. Connect with those configs.
4. If the server rejects ECH and its authenticated retry_configs hold one
   we can use, connect once more with them (RFC 9849 §6.1.6) and mark the
   stream ``retried``; a second rejection is raised. There is never a
   fallback to a cleartext ClientHello (§8.1.1): without usable retry
   configs the rejection is raised.
5. Explain the outcome: every connection gets an :class:`ECHOutcome`
   (status, a one-word :class:`~ech.events.ECHReason` and a sentence), and
   :func:`explain_error` does the same for the failures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from ech import hpke
from ech.client.config import ClientConfig
from ech.client.ech import select_config
from ech.config import ECHConfig, ECHConfigList
from ech.errors import ECHRejectedError, ECHUnavailableError
from ech.events import ECHReason, ECHStatus, HandshakeComplete

if TYPE_CHECKING:
    from ech.dns.discovery import Discovery
    from ech.dns.resolver import DoHResolver

__all__ = [
    "ECHOutcome",
    "Plan",
    "connect_with_retry",
    "connect_with_retry_async",
    "describe_config",
    "explain_error",
    "hpke_name",
    "plan",
    "plan_async",
]


class Retriable(Protocol):
    """A connection that records whether it is the one retry (TCP or QUIC)."""

    retried: bool
    retry_configs: ECHConfigList | None
    ech_outcome: ECHOutcome | None

    @property
    def negotiated(self) -> HandshakeComplete:
        """The completed handshake."""


S = TypeVar("S", bound=Retriable)


def hpke_name(
    enum: type[hpke.KEM] | type[hpke.KDF] | type[hpke.AEAD], value: int
) -> str:
    """An HPKE algorithm's name (RFC 9180 §7), or its number when unknown."""
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:04x}"


def describe_config(config: ECHConfig) -> str:
    """One ECHConfig in words: id, KEM, suites, and why we cannot use it."""
    contents = config.contents
    verdict = config.unsupported_reason() or "usable"
    if contents is None:
        return f"version 0x{config.version:04x}: {verdict}"
    suites = ",".join(
        f"{hpke_name(hpke.KDF, s.kdf_id)}/{hpke_name(hpke.AEAD, s.aead_id)}"
        for s in contents.cipher_suites
    )
    return (
        f"config_id {contents.config_id} KEM {hpke_name(hpke.KEM, contents.kem_id)}"
        f" suites {suites}: {verdict}"
    )


def _none_usable(configs: ECHConfigList) -> str:
    count = len(configs.configs)
    listed = "; ".join(describe_config(c) for c in configs.configs)
    return f"{count} ECH config{'' if count == 1 else 's'}, none usable ({listed})"


@dataclass(frozen=True)
class Plan:
    """What the first ClientHello offers, and why.

    Attributes:
        config: The client configuration (GREASE set when DNS had no ECH).
        ech_configs: The configs to encrypt to, or None.
        ech_retry: Retry once with the server's retry_configs.
        reason: Why no real ECH is offered (None when it is).
        detail: Where the configs came from, or why there are none.
        addresses: Where the HTTPS record says to connect (its endpoint's
            A/AAAA or hints; RFC 9460 §7.3), empty without discovery.
        port: The endpoint's port (RFC 9460 §7.2), None without discovery.
    """

    config: ClientConfig
    ech_configs: ECHConfigList | None
    ech_retry: bool = True
    reason: ECHReason | None = None
    detail: str = "ECH configs given by the caller"
    addresses: tuple[str, ...] = ()
    port: int | None = None

    @classmethod
    def given(
        cls,
        config: ClientConfig,
        ech_configs: ECHConfigList | None,
        *,
        ech_retry: bool = True,
        require_ech: bool = False,
    ) -> Plan:
        """A plan for configs the caller gave (or none), without DNS.

        Given configs of which none is usable are still passed on: the
        handshake then sends GREASE (RFC 9849 §6.1, ECH-7), unless
        ``require_ech``.

        Raises:
            ECHUnavailableError: ``require_ech`` and no usable config.
        """
        if ech_configs is None:
            if config.ech_grease:
                reason, detail = ECHReason.GREASE_REQUESTED, "GREASE was asked for"
            else:
                reason = ECHReason.NOT_REQUESTED
                detail = "no ECH configs were given and no resolver was asked"
        elif not ech_configs.usable():
            reason = ECHReason.NO_SUPPORTED_CONFIG
            detail = f"the given list holds {_none_usable(ech_configs)}"
        else:
            return cls(config, ech_configs, ech_retry)
        if require_ech:
            raise ECHUnavailableError(reason, f"{detail}; ECH is required: not sent")
        return cls(config, ech_configs, ech_retry, reason, detail)

    @classmethod
    def from_discovery(
        cls,
        config: ClientConfig,
        discovery: Discovery,
        *,
        ech_retry: bool = True,
        require_ech: bool = False,
    ) -> Plan:
        """The record's ECH configs, or GREASE when it has none (§6.2).

        Raises:
            ECHUnavailableError: every record carries ``ech`` and none is
                usable (RFC 9848 §5.1, ECH-105), or ``require_ech`` and the
                record gives no usable config.
        """
        where = f"the HTTPS record of {discovery.resolution.query_name}"
        addresses, port = discovery.addresses, discovery.port
        configs = discovery.ech_configs
        if discovery.endpoint is None:
            reason = ECHReason.NO_HTTPS_RECORD
            skipped = "; ".join(r.reason for r in discovery.resolution.rejected)
            detail = f"no usable HTTPS record at {discovery.resolution.query_name}"
            if skipped:
                detail += f" ({skipped})"
        elif configs is None:
            reason = ECHReason.RECORD_WITHOUT_ECH
            detail = f"{where} has no ech parameter"
        elif not configs.usable():
            reason = ECHReason.NO_SUPPORTED_CONFIG
            detail = f"{where} offers {_none_usable(configs)}"
            if discovery.ech_required:
                raise ECHUnavailableError(
                    reason,
                    f"{detail}; every HTTPS record carries ech, so no ClientHello"
                    " was sent (SVCB-reliant, RFC 9848 §5.1)",
                )
        else:
            detail = f"ECH configs from {where}"
            return cls(config, configs, ech_retry, None, detail, addresses, port)
        if require_ech:
            raise ECHUnavailableError(reason, f"{detail}; ECH is required: not sent")
        grease = dataclasses.replace(config, ech_grease=True)
        return cls(grease, None, ech_retry, reason, detail, addresses, port)


@dataclass(frozen=True)
class ECHOutcome:
    """What became of ECH on a connection, and why, for people and programs.

    Attributes:
        status: The handshake's ECH status (``accepted``, ``grease``, ...).
        reason: Why, in one word.
        detail: Why, in a sentence: which record or configs, what the
            network saw.
    """

    status: ECHStatus
    reason: ECHReason
    detail: str

    def fields(self) -> dict[str, str]:
        """``ech_reason`` and ``ech_detail``, for JSON beside ``ech_status``."""
        return {"ech_reason": str(self.reason), "ech_detail": self.detail}


def _config_id(configs: ECHConfigList | None) -> str:
    chosen = select_config(configs) if configs is not None else None
    return f"config_id {chosen.config_id}" if chosen is not None else "no config"


def explain(
    plan: Plan,
    handshake: HandshakeComplete,
    rejection: ECHRejectedError | None = None,
    retry_configs: ECHConfigList | None = None,
) -> ECHOutcome:
    """The outcome of a completed handshake made from ``plan``.

    ``rejection`` is the first attempt's, when the connection is the retry.
    """
    status = handshake.ech_status
    outer = handshake.outer_server_name
    name = handshake.server_name
    if status is ECHStatus.ACCEPTED:
        if rejection is not None:
            return ECHOutcome(
                status,
                ECHReason.ACCEPTED_AFTER_RETRY,
                f"ECH accepted on the one retry with {_config_id(retry_configs)}: "
                f"the first offer ({_config_id(plan.ech_configs)}, {plan.detail})"
                f" was refused; {rejection.explain()}. The network saw only {outer}",
            )
        return ECHOutcome(
            status,
            ECHReason.ACCEPTED,
            f"ECH accepted: the server decrypted the inner ClientHello for {name}"
            f" ({_config_id(plan.ech_configs)}, {plan.detail}); the network saw"
            f" only {outer}",
        )
    if status is ECHStatus.GREASE:
        return ECHOutcome(
            status,
            plan.reason or ECHReason.GREASE_REQUESTED,
            f"{plan.detail}: sent GREASE ECH (RFC 9849 §6.2), so {name} was"
            " visible in the outer SNI",
        )
    return ECHOutcome(
        status,
        plan.reason or ECHReason.NOT_REQUESTED,
        f"{plan.detail}: ECH not offered, {name} was sent in clear",
    )


def explain_error(error: BaseException) -> ECHOutcome | None:
    """The outcome a failed connection attempt had for ECH, if it was ECH's.

    A rejection that was not (or no longer) retried, a refusal to send
    without ECH, or a failed DoH lookup (nothing was sent then).
    """
    if isinstance(error, ECHRejectedError):
        return ECHOutcome(ECHStatus.REJECTED, ECHReason.REJECTED, error.explain())
    if isinstance(error, ECHUnavailableError):
        return ECHOutcome(ECHStatus.NOT_OFFERED, error.reason, error.detail)
    resolver = sys.modules.get("ech.dns.resolver")  # only if DNS was ever used
    if resolver is not None and isinstance(error, resolver.DNSLookupError):
        return ECHOutcome(
            ECHStatus.NOT_OFFERED,
            ECHReason.DOH_FAILED,
            f"the DoH lookup failed, so nothing was sent to the server: {error}",
        )
    return None


def plan(
    config: ClientConfig,
    server_name: str,
    port: int,
    *,
    ech_configs: ECHConfigList | None = None,
    resolver: DoHResolver | None = None,
    ech_retry: bool = True,
    require_ech: bool = False,
) -> Plan:
    """Steps 1 and 2: the configs to offer, from DNS if asked (blocking).

    Raises:
        DNSLookupError: the resolver failed; nothing was sent to the server.
        ECHUnavailableError: ECH was promised or required and cannot be
            offered; nothing was sent.
    """
    if resolver is None or ech_configs is not None:
        return Plan.given(
            config, ech_configs, ech_retry=ech_retry, require_ech=require_ech
        )
    from ech.dns.discovery import discover  # dnspython, only when asked

    return Plan.from_discovery(
        config,
        discover(resolver, server_name, port),
        ech_retry=ech_retry,
        require_ech=require_ech,
    )


def _retry_configs(plan: Plan, rejection: ECHRejectedError) -> ECHConfigList:
    """The configs of the one retry, or the rejection raised again."""
    if not (plan.ech_retry and rejection.can_retry) or rejection.retry_configs is None:
        raise rejection
    return rejection.retry_configs


def _done(
    stream: S,
    plan: Plan,
    rejection: ECHRejectedError | None = None,
    configs: ECHConfigList | None = None,
) -> S:
    if rejection is not None:
        stream.retried = True
        stream.retry_configs = configs
    stream.ech_outcome = explain(plan, stream.negotiated, rejection, configs)
    return stream


def connect_with_retry(
    plan: Plan, once: Callable[[ClientConfig, ECHConfigList | None], S]
) -> S:
    """Steps 3 to 5 with a blocking ``once(config, ech_configs)``.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
    """
    try:
        return _done(once(plan.config, plan.ech_configs), plan)
    except ECHRejectedError as rejection:
        configs = _retry_configs(plan, rejection)
        first = rejection
    try:
        stream = once(plan.config, configs)
    except ECHRejectedError as again:
        again.retried = True
        raise
    return _done(stream, plan, first, configs)


async def connect_with_retry_async(
    plan: Plan, once: Callable[[ClientConfig, ECHConfigList | None], Awaitable[S]]
) -> S:
    """Steps 3 to 5 with an asyncio ``once(config, ech_configs)``.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
    """
    try:
        return _done(await once(plan.config, plan.ech_configs), plan)
    except ECHRejectedError as rejection:
        configs = _retry_configs(plan, rejection)
        first = rejection
    try:
        stream = await once(plan.config, configs)
    except ECHRejectedError as again:
        again.retried = True
        raise
    return _done(stream, plan, first, configs)


async def plan_async(
    config: ClientConfig,
    server_name: str,
    port: int,
    *,
    ech_configs: ECHConfigList | None = None,
    resolver: DoHResolver | None = None,
    ech_retry: bool = True,
    require_ech: bool = False,
) -> Plan:
    """:func:`plan` for asyncio: the blocking DoH lookup runs in a thread."""
    if resolver is None or ech_configs is not None:
        return plan(
            config,
            server_name,
            port,
            ech_configs=ech_configs,
            ech_retry=ech_retry,
            require_ech=require_ech,
        )
    return await asyncio.to_thread(
        plan,
        config,
        server_name,
        port,
        ech_configs=ech_configs,
        resolver=resolver,
        ech_retry=ech_retry,
        require_ech=require_ech,
    )
