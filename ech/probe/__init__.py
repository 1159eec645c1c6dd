"""Conformance probes: ``ech probe`` tests an ECH server, ``ech probe-client`` a client.

Each check names the requirements it tests (``ECH-N`` in
``docs/conformance.rst``, listed by number) and the
RFC section (RFC 9849, RFC 8446) the requirement comes from, and reports
``pass``, ``fail``, ``not_applicable`` or ``error`` with what was expected
and what came back. The probes are our own client and server with faults
put in through their public seams (:class:`ech.client.ech.SealTamper`,
``ClientConfig.client_hello_hook``, ``handshake_class``, the server's
hooks): no second TLS stack.

* :mod:`ech.probe.report`: results and their rendering (table, JSON).
* :mod:`ech.probe.attempt`: one connection of the server probe, over TCP or
  QUIC, and what came back.
* :mod:`ech.probe.server_checks`: the server checks.
* :mod:`ech.probe.server`: ``ech probe``.
* :mod:`ech.probe.client`: ``ech probe-client``, a misbehaving server.
"""

from __future__ import annotations
