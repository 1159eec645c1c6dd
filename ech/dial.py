"""How a client reaches a server with ECH: discover, connect, retry once.

One policy for :func:`ech.blocking.connect` and :func:`ech.aio.open_connection`
(and whatever adapter comes next); they differ only in how they open a
connection and wait for its handshake:

1. With a DoH resolver and no ECH configs given, look up the name's HTTPS
   record before any ClientHello is sent (RFC 9848 §5): use its ECH
   configs, or GREASE ECH (RFC 9849 §6.2) when it has none. Without a
   resolver nothing touches DNS.
2. Connect with those configs.
3. If the server rejects ECH and its authenticated retry_configs hold one
   we can use, connect once more with them (RFC 9849 §6.1.6) and mark the
   stream ``retried``; a second rejection is raised. There is never a
   fallback to a cleartext ClientHello (§8.1.1): without usable retry
   configs the rejection is raised.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.errors import ECHRejectedError

if TYPE_CHECKING:
    from ech.dns.discovery import Discovery
    from ech.dns.resolver import DoHResolver

__all__ = [
    "Plan",
    "connect_with_retry",
    "connect_with_retry_async",
    "plan",
    "plan_async",
]


class Retriable(Protocol):
    """A connection that records whether it is the one retry (TCP or QUIC)."""

    retried: bool
    retry_configs: ECHConfigList | None


S = TypeVar("S", bound=Retriable)


@dataclass(frozen=True)
class Plan:
    """What the first ClientHello offers.

    Attributes:
        config: The client configuration (GREASE set when DNS had no ECH).
        ech_configs: The configs to encrypt to, or None.
        ech_retry: Retry once with the server's retry_configs.
    """

    config: ClientConfig
    ech_configs: ECHConfigList | None
    ech_retry: bool = True

    @classmethod
    def from_discovery(
        cls, config: ClientConfig, discovery: Discovery, *, ech_retry: bool = True
    ) -> Plan:
        """The record's ECH configs, or GREASE when it has none (§6.2)."""
        if discovery.ech_configs is None:
            return cls(dataclasses.replace(config, ech_grease=True), None, ech_retry)
        return cls(config, discovery.ech_configs, ech_retry)


def plan(
    config: ClientConfig,
    server_name: str,
    port: int,
    *,
    ech_configs: ECHConfigList | None = None,
    resolver: DoHResolver | None = None,
    ech_retry: bool = True,
) -> Plan:
    """Step 1: the configs to offer, from DNS if asked (blocking).

    Raises:
        DNSLookupError: the resolver failed; nothing was sent to the server.
    """
    if resolver is None or ech_configs is not None:
        return Plan(config, ech_configs, ech_retry)
    from ech.dns.discovery import discover  # dnspython, only when asked

    return Plan.from_discovery(
        config, discover(resolver, server_name, port), ech_retry=ech_retry
    )


def _retry_configs(plan: Plan, rejection: ECHRejectedError) -> ECHConfigList:
    """The configs of the one retry, or the rejection raised again."""
    if not (plan.ech_retry and rejection.can_retry) or rejection.retry_configs is None:
        raise rejection
    return rejection.retry_configs


def _mark(stream: S, configs: ECHConfigList) -> S:
    stream.retried = True
    stream.retry_configs = configs
    return stream


def connect_with_retry(
    plan: Plan, once: Callable[[ClientConfig, ECHConfigList | None], S]
) -> S:
    """Steps 2 and 3 with a blocking ``once(config, ech_configs)``.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
    """
    try:
        return once(plan.config, plan.ech_configs)
    except ECHRejectedError as rejection:
        configs = _retry_configs(plan, rejection)
    return _mark(once(plan.config, configs), configs)


async def connect_with_retry_async(
    plan: Plan, once: Callable[[ClientConfig, ECHConfigList | None], Awaitable[S]]
) -> S:
    """Steps 2 and 3 with an asyncio ``once(config, ech_configs)``.

    Raises:
        ECHRejectedError: ECH was rejected and not (or no longer) retried.
    """
    try:
        return await once(plan.config, plan.ech_configs)
    except ECHRejectedError as rejection:
        configs = _retry_configs(plan, rejection)
    return _mark(await once(plan.config, configs), configs)


async def plan_async(
    config: ClientConfig,
    server_name: str,
    port: int,
    *,
    ech_configs: ECHConfigList | None = None,
    resolver: DoHResolver | None = None,
    ech_retry: bool = True,
) -> Plan:
    """:func:`plan` for asyncio: the blocking DoH lookup runs in a thread."""
    if resolver is None or ech_configs is not None:
        return Plan(config, ech_configs, ech_retry)
    return await asyncio.to_thread(
        plan,
        config,
        server_name,
        port,
        ech_configs=ech_configs,
        resolver=resolver,
        ech_retry=ech_retry,
    )
