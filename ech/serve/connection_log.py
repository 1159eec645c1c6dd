"""``ech serve``'s observability: one log line per connection, and metrics.

:class:`ConnectionLog` is the :class:`ech.aio.Observer` of ``ech serve``.
It turns the server's reports into

* one log line per connection on logger ``ech.serve``, ``connection
  {json}``, when the connection ends: its outcome, ECH status and, when an
  offer was not accepted, the server's reason, outer and inner names,
  version, suite, group, ALPN, resumption, 0-RTT, the client
  certificate's subject, backend, durations, alert sent or received,
  error; names and parameters only, never key material;
* the Prometheus counters of :mod:`ech.serve.metrics`.

Earlier versions also logged ``handshake {json}`` when a handshake
completed, which put every successful connection in the log twice with
the same fields; the connection line now carries all of them (a failed
handshake has ``handshake_ms`` null), and the handshake time goes to the
``ech_handshake_seconds`` histogram only.

Connections closed on accept (``over_capacity``, ``per_address``,
``shutting_down``) are counted, logged at DEBUG, and, for the two limits,
warned about at most every 10 s each.

Under ``ech serve --workers N`` the JSON line also carries ``worker``, the
index (0 to N-1) of the worker process that served the connection; the
other fields are the same whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Final

from ech.aio import ConnectionReport, Observer
from ech.events import HandshakeComplete
from ech.serve.metrics import Metrics
from ech.tls.enums import AlertDescription

__all__ = ["ConnectionLog", "log_fields"]

log = logging.getLogger("ech.serve")

#: Seconds between two "at capacity" warnings.
_CAPACITY_WARNING_INTERVAL: Final = 10.0


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


def _name(value: object | None) -> str | None:
    return str(value) if value is not None else None


def log_fields(report: ConnectionReport) -> dict[str, object]:
    """The fields of a ``connection`` log line (a contract: names are fixed)."""
    suite = report.cipher_suite
    return {
        "peer": report.peer,
        "outcome": report.outcome,
        "ech_status": _name(report.ech_status),
        "outer_server_name": report.outer_server_name,
        "server_name": report.server_name,
        "tls_version": "TLSv1.3" if suite is not None else None,
        "cipher_suite": _name(suite),
        "group": _name(report.group),
        "alpn": report.alpn,
        "backend": report.backend,
        "resumed": report.resumed,
        "hello_retry": report.hello_retry,
        "handshake_ms": _ms(report.handshake_seconds),
        "duration_ms": _ms(report.duration_seconds),
        # close_notify (0) is no alert to report.
        "alert_sent": str(report.alert_sent) if report.alert_sent else None,
        "alert_received": (
            str(report.alert_received) if report.alert_received else None
        ),
        "error": report.error,
        "ech_reason": _name(report.ech_reason),
        "early_data": _name(report.early_data),
        "client_certificate_subject": report.client_certificate_subject,
    }


class ConnectionLog(Observer):
    """Logs and counts what the server reports.

    Args:
        metrics: counters to update (a new set if None).
        max_connections: the server's limit, named in the capacity warning.
        worker: the worker process's index under ``ech serve --workers``,
            added to each JSON line as ``worker``; None in a single process.
    """

    def __init__(
        self,
        metrics: Metrics | None = None,
        *,
        max_connections: int | None = None,
        per_address: int | None = None,
        worker: int | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.max_connections = max_connections
        self.per_address = per_address
        self.worker = worker
        self._warned: dict[str, float] = {}

    def _with_worker(self, fields: dict[str, object]) -> dict[str, object]:
        if self.worker is not None:
            fields["worker"] = self.worker
        return fields

    def connection_refused(self, peer: str, reason: str) -> None:
        """Count it; warn, now and then, that a limit is reached."""
        self.metrics.inc("ech_connection_outcomes_total", outcome=reason)
        log.debug("connection from %s closed: %s", peer, reason)
        if reason not in ("over_capacity", "per_address"):
            return
        now = time.monotonic()
        if now - self._warned.get(reason, -math.inf) < _CAPACITY_WARNING_INTERVAL:
            return
        self._warned[reason] = now
        if reason == "over_capacity":
            log.warning(
                "at --max-connections %s: closing new connections",
                self.max_connections,
            )
        else:
            log.warning(
                "%s holds --max-connections-per-address %s: "
                "closing its new connections",
                peer.rpartition(":")[0] or peer,
                self.per_address,
            )

    def open_connections(self, count: int) -> None:
        """The ``ech_connections_open`` gauge."""
        self.metrics.set("ech_connections_open", count)

    def handshake_completed(
        self, peer: str, handshake: HandshakeComplete, seconds: float
    ) -> None:
        """The handshake time (the connection line follows when it ends)."""
        self.metrics.observe("ech_handshake_seconds", seconds)

    def connection_closed(self, report: ConnectionReport) -> None:
        """``connection {json}``, and the counters."""
        metrics = self.metrics
        if report.ech_status is not None:
            metrics.inc("ech_connections_total", ech_status=str(report.ech_status))
        if report.ech_reason is not None:
            metrics.inc("ech_not_accepted_total", reason=str(report.ech_reason))
        metrics.inc("ech_connection_outcomes_total", outcome=report.outcome)
        if report.alert_sent is not None:
            metrics.inc("ech_alerts_sent_total", alert=str(report.alert_sent))
        received = report.alert_received
        if received is not None:
            metrics.inc("ech_alerts_received_total", alert=str(received))
            if received == AlertDescription.ECH_REQUIRED:
                metrics.inc("ech_required_received_total")
        if log.isEnabledFor(logging.INFO):  # the fields and JSON only when logged
            log.info("connection %s", json.dumps(self._with_worker(log_fields(report))))
