"""SVCB resolution of HTTPS records over DNS-over-HTTPS (RFC 9460 §3, RFC 8484).

:class:`DoHResolver` sends queries with :func:`dns.query.https` (dnspython's
DoH client, over its ``httpx2`` session) and runs the client side of SVCB
resolution (RFC 9460 §3):

1. query HTTPS for the origin's query name (§9.1);
2. follow CNAMEs (§2.4.2: "Clients ... MUST follow CNAMEs as normal") and
   AliasMode records, each to the TargetName without prefixes (§3 step 3),
   at most ``max_aliases`` in total and never in a loop (§2.4.2, §3.1);
3. take the compatible ServiceMode records as the endpoints (§3 step 4).

An exceeded chain limit or a loop ends resolution with no endpoints, as if
the origin had no HTTPS record (§3.1: "the client MUST fall back to the
authority endpoint"). Transport errors, HTTP errors, unparsable responses
and DNS error rcodes raise :class:`DNSLookupError`: over DoH such failures
may be an attack, and an ECH client SHOULD then not fall back (§3.1).

Whether the result lets a client fall back to a connection without ECH is
:attr:`HTTPSResolution.svcb_reliant` (RFC 9848 §5.1; ECH-105).
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx2

from ech.config import ECHConfigList
from ech.dns.cache import TTLCache
from ech.dns.records import (
    RejectedRecord,
    ServiceEndpoint,
    endpoints_from_rrset,
    query_name,
)

__all__ = [
    "MAX_ALIASES",
    "DNSLookupError",
    "DoHResolver",
    "HTTPSResolution",
    "MessageCache",
]

MAX_ALIASES: Final = 8
"""Default bound on CNAME plus AliasMode hops per resolution (RFC 9460
§2.4.2: the limit MUST NOT be zero)."""

HTTPVersionName = Literal["h2", "http/1.1", "auto"]

MessageCache = TTLCache[
    tuple[dns.name.Name, dns.rdatatype.RdataType], dns.message.QueryMessage
]
"""Cache of DNS responses by (query name, type); see :mod:`ech.dns.cache`."""

_HTTP_VERSIONS: Final[dict[str, dns.query.HTTPVersion]] = {
    "h2": dns.query.HTTPVersion.H2,
    "http/1.1": dns.query.HTTPVersion.H1,
    "auto": dns.query.HTTPVersion.DEFAULT,
}

_TRANSPORT_ERRORS: Final = (
    dns.exception.DNSException,  # unparsable response, ID/question mismatch, timeout
    httpx2.HTTPError,  # connect, TLS, HTTP/2 protocol, timeouts
    httpx2.InvalidURL,
    OSError,
    ValueError,  # dns.query.https: "responded with status code ..."
)


class DNSLookupError(OSError):
    """A DoH query failed: transport, HTTP status, bad response, or rcode.

    Attributes:
        url: The resolver URL.
        name: The query name.
        rdtype: The query type, as text.
    """

    def __init__(self, message: str, *, url: str, name: str, rdtype: str) -> None:
        super().__init__(f"DoH {url}: {name} {rdtype}: {message}")
        self.url = url
        self.name = name
        self.rdtype = rdtype


@dataclass(frozen=True)
class HTTPSResolution:
    """The outcome of SVCB resolution for one origin (RFC 9460 §3).

    Attributes:
        query_name: The first QNAME (RFC 9460 §9.1), without the final dot.
        target_name: The final $QNAME after aliases, or the origin's host
            when none was followed: the name of the fallback endpoint an
            SVCB-optional client appends (§3).
        endpoints: Compatible ServiceMode endpoints in priority order (ties
            shuffled, §2.4.1). Empty when the origin has no usable record.
        ttl: Seconds the answer may be reused: the smallest remaining TTL of
            every record followed, negative answers included (RFC 2308).
        rejected: Records skipped, with reasons; also the alias that broke
            the chain limit or closed a loop.
        aliases: Owner names left through CNAME or AliasMode, in order.
    """

    query_name: str
    target_name: str
    endpoints: tuple[ServiceEndpoint, ...]
    ttl: int
    rejected: tuple[RejectedRecord, ...] = ()
    aliases: tuple[str, ...] = field(default=())

    @property
    def svcb_reliant(self) -> bool:
        """Whether an ECH client must not fall back to a non-ECH connection.

        True iff there is at least one endpoint and every endpoint has an
        ``ech`` value (RFC 9848 §5.1; ECH-105, ECH-108).
        """
        return bool(self.endpoints) and all(e.ech is not None for e in self.endpoints)

    @property
    def mixed(self) -> bool:
        """Some endpoints have ``ech`` and some do not (RFC 9848 §8; ECH-109).

        Publishers are advised against this; an ECH-capable client stays
        SVCB-optional and may connect without ECH.
        """
        with_ech = sum(e.ech is not None for e in self.endpoints)
        return 0 < with_ech < len(self.endpoints)

    def ech_configs(self) -> ECHConfigList | None:
        """The ``ech`` value of the most preferred endpoint that has one.

        This is the list for a client connecting to that endpoint; a client
        that connects elsewhere should use that endpoint's own ``ech``.
        """
        for endpoint in self.endpoints:
            if endpoint.ech is not None:
                return endpoint.ech
        return None


class DoHResolver:
    """An RFC 8484 DoH stub resolver for HTTPS, A and AAAA records.

    Holds one ``httpx2`` client (connections are reused); close it with
    :meth:`close` or use the resolver as a context manager.

    Args:
        url: The DoH URI template without variables, e.g.
            ``https://127.0.0.1:8443/dns-query`` (RFC 8484 §3).
        cafile: PEM file of CAs to trust instead of the system store.
        timeout: Seconds per query.
        http_version: ``"h2"``, ``"http/1.1"``, or ``"auto"`` (ALPN offers
            both, h2 first). RFC 8484 §5.2: HTTP/2 is the minimum
            RECOMMENDED version; BIND and Unbound speak only h2.
        post: POST (``application/dns-message`` body) or GET (``?dns=``
            base64url), RFC 8484 §4.1.
        cache: Response cache; ``None`` makes a private one. A
            ``TTLCache(max_entries=0)`` disables caching.
        max_aliases: Bound on CNAME + AliasMode hops (RFC 9460 §2.4.2).
        rng: Source of the shuffles of equal-priority records.
        reject_malformed_rrset: Treat an RRset holding any malformed record
            (an ``ech`` value that is not an ECHConfigList) as empty, as
            RFC 9460 §2.2 prescribes ("the client MUST reject the entire
            RRSet"); the default. ``False`` drops only that record, keeping
            the other records' ECH configs usable (a diagnostic mode).
    """

    def __init__(
        self,
        url: str,
        *,
        cafile: str | None = None,
        timeout: float = 5.0,
        http_version: HTTPVersionName = "auto",
        post: bool = True,
        cache: MessageCache | None = None,
        max_aliases: int = MAX_ALIASES,
        rng: random.Random | None = None,
        reject_malformed_rrset: bool = True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"a DoH URL is https://HOST[:PORT]/PATH, got {url!r}")
        if http_version not in _HTTP_VERSIONS:
            raise ValueError(f"http_version must be one of {sorted(_HTTP_VERSIONS)}")
        if max_aliases < 1:
            raise ValueError("max_aliases must be at least 1 (RFC 9460 §2.4.2)")
        self.url = url
        self.timeout = timeout
        self.post = post
        self.http_version = http_version
        self.cache: MessageCache = cache if cache is not None else TTLCache()
        self.max_aliases = max_aliases
        self.reject_malformed_rrset = reject_malformed_rrset
        self._rng = rng
        self._verify = ssl.create_default_context(cafile=cafile)
        self._session: httpx2.Client | None = None

    def __enter__(self) -> DoHResolver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def _client(self) -> httpx2.Client:
        if self._session is None:
            version = self.http_version
            self._session = httpx2.Client(
                http1=version in ("http/1.1", "auto"),
                http2=version in ("h2", "auto"),
                verify=self._verify,
                timeout=self.timeout,
            )
        return self._session

    # -- one query -------------------------------------------------------------

    def exchange(self, query: dns.message.Message) -> dns.message.Message:
        """Send ``query`` with :func:`dns.query.https`; the only I/O.

        Raises whatever dnspython and httpx2 raise; :meth:`query` wraps it.
        """
        return dns.query.https(
            query,
            self.url,
            timeout=self.timeout,
            post=self.post,
            session=self._client(),
            verify=self._verify,
            http_version=_HTTP_VERSIONS[self.http_version],
        )

    def query(
        self, name: dns.name.Name | str, rdtype: dns.rdatatype.RdataType
    ) -> dns.message.QueryMessage:
        """One DoH exchange, answered from the cache while its TTL lasts.

        Responses with rcode NOERROR or NXDOMAIN are cached for the TTL
        dnspython's ``resolve_chaining`` computes (the negative TTL of
        RFC 2308 §5 for NXDOMAIN/NODATA).

        Raises:
            DNSLookupError: Transport or HTTP failure, a response that does
                not parse or does not answer the question, or an rcode other
                than NOERROR/NXDOMAIN.
        """
        return self._query(_absolute(name), rdtype)[0]

    def _query(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> tuple[dns.message.QueryMessage, int]:
        hit = self.cache.get((qname, rdtype))
        if hit is not None:
            return hit.value, hit.ttl
        type_text = dns.rdatatype.to_text(rdtype)
        q = dns.message.make_query(qname, rdtype)
        q.id = 0  # RFC 8484 §4.1: SHOULD use ID 0 for HTTP cache friendliness
        try:
            response = self.exchange(q)
        except _TRANSPORT_ERRORS as err:
            detail = f"{type(err).__name__}: {err}".strip().rstrip(":")
            if isinstance(err, dns.exception.DNSException) and not isinstance(
                err, dns.exception.Timeout
            ):
                detail = f"malformed response (RFC 9460 §2.2): {detail}"
            raise DNSLookupError(
                detail, url=self.url, name=qname.to_text(), rdtype=type_text
            ) from err
        if not isinstance(response, dns.message.QueryMessage):
            raise DNSLookupError(
                "the response is not a QUERY response",
                url=self.url,
                name=qname.to_text(),
                rdtype=type_text,
            )
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DNSLookupError(
                f"rcode {dns.rcode.to_text(rcode)}",
                url=self.url,
                name=qname.to_text(),
                rdtype=type_text,
            )
        try:
            ttl = response.resolve_chaining().minimum_ttl
        except dns.message.ChainTooLong:  # a CNAME loop: resolve_https reports it
            ttl = min((rrset.ttl for rrset in response.answer), default=0)
        except dns.exception.DNSException as err:
            raise DNSLookupError(
                f"inconsistent response: {type(err).__name__}: {err}",
                url=self.url,
                name=qname.to_text(),
                rdtype=type_text,
            ) from err
        self.cache.put((qname, rdtype), response, ttl)
        return response, ttl

    # -- SVCB resolution ---------------------------------------------------------

    def resolve_https(self, host: str, port: int = 443) -> HTTPSResolution:
        """SVCB resolution of ``https://host:port`` (RFC 9460 §3, §9).

        Returns:
            The endpoints; none when the origin has no compatible record,
            the alias chain is too long or loops, or an AliasMode record
            targets ``.`` (service unavailable, §2.5.1).

        Raises:
            ValueError: ``host`` is an IP literal or not a valid name.
            DNSLookupError: A query failed (see :meth:`query`).
        """
        first = dns.name.from_text(query_name(host, port))
        origin = dns.name.from_text(host)
        qname = first
        seen = {first}
        hops = 0
        ttl = 0x7FFFFFFF
        aliases: list[str] = []
        rejected: list[RejectedRecord] = []

        def result(
            endpoints: tuple[ServiceEndpoint, ...] = (), target: dns.name.Name = first
        ) -> HTTPSResolution:
            return HTTPSResolution(
                query_name=_text(first),
                target_name=_text(origin if target == first else target),
                endpoints=endpoints,
                ttl=ttl,
                rejected=tuple(rejected),
                aliases=tuple(aliases),
            )

        def limit(owner: dns.name.Name, what: str, reason: str) -> HTTPSResolution:
            rejected.append(RejectedRecord(_text(owner), what, reason, malformed=False))
            return result()

        while True:
            response, remaining = self._query(qname, dns.rdatatype.HTTPS)
            ttl = min(ttl, remaining)
            try:
                chain = response.resolve_chaining()
            except dns.message.ChainTooLong:
                return limit(qname, "CNAME", "CNAME chain too long or a loop")
            for cname in chain.cnames:
                hops += 1
                aliases.append(_text(cname.name))
                if hops > self.max_aliases:
                    return limit(cname.name, "CNAME", self._too_long())
            canonical = chain.canonical_name
            if canonical != qname:
                if canonical in seen:
                    return limit(qname, "CNAME", f"alias loop at {_text(canonical)}")
                seen.add(canonical)
            if chain.answer is None:
                if canonical != qname and _needs_chase(response, canonical):
                    qname = canonical
                    continue
                return result(target=canonical)
            parsed = endpoints_from_rrset(chain.answer, port=port, rng=self._rng)
            if parsed.alias is not None:
                alias_text = f"0 {parsed.alias}"
                if parsed.alias == dns.name.root:
                    return limit(
                        canonical, alias_text, "AliasMode to '.': service unavailable"
                    )
                hops += 1
                aliases.append(_text(canonical))
                if hops > self.max_aliases:
                    return limit(canonical, alias_text, self._too_long())
                if parsed.alias in seen:
                    return limit(
                        canonical, alias_text, f"alias loop at {_text(parsed.alias)}"
                    )
                seen.add(parsed.alias)
                qname = parsed.alias
                continue
            rejected.extend(parsed.rejected)
            malformed = any(r.malformed for r in parsed.rejected)
            if self.reject_malformed_rrset and malformed:
                rejected.append(
                    RejectedRecord(
                        _text(canonical),
                        "HTTPS RRset",
                        "RRset holds a malformed record (RFC 9460 §2.2)",
                        malformed=True,
                    )
                )
                return result(target=canonical)
            return result(parsed.endpoints, canonical)

    def _too_long(self) -> str:
        return f"more than {self.max_aliases} aliases (RFC 9460 §3.1)"

    # -- addresses ---------------------------------------------------------------

    def resolve_addresses(self, name: str) -> list[str]:
        """A then AAAA addresses of ``name``, following CNAMEs.

        Returns:
            IPv4 addresses first, then IPv6, each in answer order; empty for
            NXDOMAIN, NODATA or a CNAME chain beyond ``max_aliases``.

        Raises:
            DNSLookupError: A query failed (see :meth:`query`).
        """
        addresses: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rrset = self._chase(_absolute(name), rdtype)
            if rrset is not None:
                addresses.extend(rd.to_text() for rd in rrset)
        return addresses

    def addresses_for(self, endpoint: ServiceEndpoint) -> list[str]:
        """Addresses to reach ``endpoint``: A/AAAA of its target, else its hints.

        RFC 9460 §7.3: clients SHOULD query A/AAAA for the TargetName and
        prefer those answers; hints are for when none are available.
        """
        found = self.resolve_addresses(endpoint.target)
        return found or [*endpoint.ipv4hint, *endpoint.ipv6hint]

    def _chase(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.rrset.RRset | None:
        seen = {qname}
        for _ in range(self.max_aliases + 1):
            response, _ttl = self._query(qname, rdtype)
            try:
                chain = response.resolve_chaining()
            except dns.message.ChainTooLong:
                return None
            if chain.answer is not None:
                return chain.answer
            canonical = chain.canonical_name
            if canonical == qname or canonical in seen:
                return None
            if not _needs_chase(response, canonical):
                return None
            seen.add(canonical)
            qname = canonical
        return None


def _needs_chase(response: dns.message.QueryMessage, canonical: dns.name.Name) -> bool:
    """Whether a CNAME's target was left unresolved by the server.

    An authoritative server without recursion answers a CNAME whose target
    lies outside its zones with the CNAME alone: no SOA, NOERROR. A SOA or
    NXDOMAIN is a definite negative answer for the target (RFC 2308 §2.1,
    §2.2).
    """
    if response.rcode() == dns.rcode.NXDOMAIN:
        return False
    return not any(
        rrset.rdtype == dns.rdatatype.SOA and canonical.is_subdomain(rrset.name)
        for rrset in response.authority
    )


def _absolute(name: dns.name.Name | str) -> dns.name.Name:
    if isinstance(name, dns.name.Name):
        return name if name.is_absolute() else name.concatenate(dns.name.root)
    return dns.name.from_text(name)


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)
