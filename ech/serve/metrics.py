"""Counters of ``ech serve``, rendered for Prometheus.

The text is the Prometheus exposition format 0.0.4: ``# HELP`` and
``# TYPE`` lines, then one ``name{label="value"} number`` line per series::

    # HELP ech_connections_total Connections whose ClientHello was read, by ECH outcome.
    # TYPE ech_connections_total counter
    ech_connections_total{ech_status="accepted"} 3

``ech_status="rejected"`` includes GREASE: a server cannot tell a GREASE
extension from one for a key it lacks (RFC 9849 §10.10.4).
``ech_status="offered"`` counts hellos that decrypted but whose inner hello
was malformed: refused with an alert, neither accepted nor rejected.
``ech_not_accepted_total{reason=...}`` splits those by what the server can
say (:class:`ech.server.ech.ECHRejectReason`: ``grease_shaped``,
``unknown_config_id``, ``hpke_open_failed``, ...). Only names and
counts are kept; no key material and no server names reach the metrics.
:mod:`ech.serve.metrics_endpoint` serves them over plain HTTP.

With ``ech serve --workers N`` each worker process keeps its own
:class:`Metrics`; the supervisor asks each for a :meth:`Metrics.snapshot`
(plain JSON over the worker's control channel) and adds them up with
:meth:`Metrics.add`. :attr:`Metric.workers` says how a family combines:
counters, summaries and the ``ech_connections_open`` gauge describe
connections, which each worker has its own of, so they are summed; the
key families describe the service, which every worker holds alike, so the
supervisor reports its own value (a sum would multiply them by N). This is
our own aggregation rather than prometheus-client's multiprocess mode:
the metrics are already our own small class, a snapshot is a few dozen
series, and a pull at scrape time needs no shared directory of mmap files
to clean up after a worker dies.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "CONTENT_TYPE",
    "METRICS",
    "Metric",
    "Metrics",
    "Snapshot",
]

#: The Content-Type of the 0.0.4 text format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]

#: What :meth:`Metrics.snapshot` returns: plain JSON values, so a worker
#: process can send it to its supervisor (``{"series": [[name, [[label,
#: value], ...], number], ...], "summaries": [[name, sum, count], ...]}``).
Snapshot = dict[str, list[list[object]]]


@dataclass(frozen=True)
class Metric:
    """One metric family: its name, type, help text and label names.

    ``workers`` says how ``ech serve --workers N`` reports it: ``"sum"``
    over the worker processes (each counts its own connections), or the
    ``"supervisor"``'s own value (the family describes the whole service,
    as the ECH keys every worker loads alike).
    """

    name: str
    kind: Literal["counter", "gauge", "summary"]
    help: str
    labels: tuple[str, ...] = ()
    workers: Literal["sum", "supervisor"] = "sum"


#: Every metric ``ech serve`` reports, in output order.
METRICS: Final[tuple[Metric, ...]] = (
    Metric(
        "ech_connections_total",
        "counter",
        "Connections whose ClientHello was read, by ECH outcome "
        "(rejected includes GREASE).",
        ("ech_status",),
    ),
    Metric(
        "ech_not_accepted_total",
        "counter",
        "Offered ECH not accepted, by the server's reason (grease_shaped, "
        "unknown_config_id, unsupported_suite, hpke_open_failed, "
        "malformed_inner, no_keys).",
        ("reason",),
    ),
    Metric(
        "ech_connection_outcomes_total",
        "counter",
        "Connections by how they ended.",
        ("outcome",),
    ),
    Metric(
        "ech_alerts_sent_total",
        "counter",
        "Fatal alerts sent to clients, by description.",
        ("alert",),
    ),
    Metric(
        "ech_alerts_received_total",
        "counter",
        "Fatal alerts received from clients, by description.",
        ("alert",),
    ),
    Metric(
        "ech_required_received_total",
        "counter",
        "ech_required alerts received: clients that were refused ECH.",
    ),
    Metric("ech_connections_open", "gauge", "Connections open now."),
    Metric(
        "ech_handshake_seconds",
        "summary",
        "Time from accept to a completed handshake.",
    ),
    Metric(
        "ech_keys",
        "gauge",
        "ECH keys loaded, by policy.",
        ("policy",),
        workers="supervisor",
    ),
    Metric(
        "ech_key_reloads_total",
        "counter",
        "ECH key reloads, by result (error keeps the previous keys).",
        ("result",),
        workers="supervisor",
    ),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


class Metrics:
    """Thread-safe counters and gauges, rendered in the 0.0.4 text format.

    Args:
        families: the metrics that may be updated; others raise KeyError.
    """

    def __init__(self, families: Iterable[Metric] = METRICS) -> None:
        self._families = {family.name: family for family in families}
        self._label_names = {
            family.name: frozenset(family.labels) for family in self._families.values()
        }
        self._values: dict[str, dict[Labels, float]] = {
            name: {} for name in self._families
        }
        self._summaries: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _key(self, name: str, labels: dict[str, str]) -> Labels:
        family = self._families[name]
        if labels.keys() != self._label_names[name]:  # no set built per update
            raise ValueError(f"{name} takes labels {family.labels}, got {labels}")
        return tuple([(label, labels[label]) for label in family.labels])

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        """Add ``value`` to a counter (or gauge) series."""
        key = self._key(name, labels)
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge series."""
        key = self._key(name, labels)
        with self._lock:
            self._values[name][key] = value

    def observe(self, name: str, value: float) -> None:
        """Add one observation to a summary (its ``_sum`` and ``_count``)."""
        if self._families[name].kind != "summary":
            raise ValueError(f"{name} is not a summary")
        with self._lock:
            total, count = self._summaries.get(name, (0.0, 0))
            self._summaries[name] = (total + value, count + 1)

    def value(self, name: str, **labels: str) -> float:
        """The current value of one series (0 if never set)."""
        key = self._key(name, labels)
        with self._lock:
            return self._values[name].get(key, 0.0)

    @property
    def families(self) -> tuple[Metric, ...]:
        """The families this set may hold, in output order."""
        return tuple(self._families.values())

    def snapshot(self) -> Snapshot:
        """Every series' current value, as plain JSON values (see :data:`Snapshot`)."""
        with self._lock:
            series: list[list[object]] = [
                [name, [list(pair) for pair in key], value]
                for name, values in self._values.items()
                for key, value in values.items()
            ]
            summaries: list[list[object]] = [
                [name, total, count] for name, (total, count) in self._summaries.items()
            ]
        return {"series": series, "summaries": summaries}

    def add(
        self,
        snapshot: Snapshot,
        *,
        only: Callable[[Metric], bool] = lambda family: True,
    ) -> None:
        """Add another set's :meth:`snapshot` to this one, series by series.

        Counters, gauges and summaries alike are added: the caller picks
        which families make sense to add with ``only`` (the supervisor adds
        the per-worker ones, :attr:`Metric.workers` ``"sum"``). Families
        this set does not know are ignored, so a supervisor and its workers
        may differ in what they report.

        Raises:
            ValueError: ``snapshot`` is not what :meth:`snapshot` makes.
        """
        series, summaries = _parse_snapshot(snapshot)
        with self._lock:
            for name, key, value in series:
                family = self._families.get(name)
                if family is None or not only(family):
                    continue
                if tuple(label for label, _ in key) != family.labels:
                    raise ValueError(f"{name}: labels {key} in a snapshot")
                values = self._values[name]
                values[key] = values.get(key, 0.0) + value
            for name, total, count in summaries:
                family = self._families.get(name)
                if family is None or not only(family):
                    continue
                old_total, old_count = self._summaries.get(name, (0.0, 0))
                self._summaries[name] = (old_total + total, old_count + count)

    def render(self) -> str:
        """Every family in the Prometheus text format 0.0.4."""
        lines: list[str] = []
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._values.items()}
            summaries = dict(self._summaries)
        for name, family in self._families.items():
            lines.append(f"# HELP {name} {family.help}")
            lines.append(f"# TYPE {name} {family.kind}")
            series = snapshot[name]
            if family.kind == "summary":
                total, count = summaries.get(name, (0.0, 0))
                lines.append(f"{name}_sum {_number(total)}")
                lines.append(f"{name}_count {count}")
                continue
            if not family.labels and not series:
                series = {(): 0.0}
            for key in sorted(series):
                text = ",".join(f'{label}="{_escape(value)}"' for label, value in key)
                selector = f"{{{text}}}" if text else ""
                lines.append(f"{name}{selector} {_number(series[key])}")
        return "\n".join(lines) + "\n"


def _number_of(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a number in a metrics snapshot: {value!r}")
    return float(value)


def _parse_snapshot(
    snapshot: Snapshot,
) -> tuple[list[tuple[str, Labels, float]], list[tuple[str, float, int]]]:
    """A snapshot's series and summaries, checked (it came from another process)."""
    series: list[tuple[str, Labels, float]] = []
    summaries: list[tuple[str, float, int]] = []
    try:
        for name, pairs, value in snapshot.get("series", []):
            if not isinstance(name, str) or not isinstance(pairs, list):
                raise ValueError(f"bad series in a metrics snapshot: {name!r}")
            key: list[tuple[str, str]] = []
            for label, text in pairs:
                if not isinstance(label, str) or not isinstance(text, str):
                    raise ValueError(f"bad label in a metrics snapshot: {label!r}")
                key.append((label, text))
            series.append((name, tuple(key), _number_of(value)))
        for name, total, count in snapshot.get("summaries", []):
            if not isinstance(name, str) or not isinstance(count, int):
                raise ValueError(f"bad summary in a metrics snapshot: {name!r}")
            summaries.append((name, _number_of(total), count))
    except (TypeError, ValueError) as error:
        raise ValueError(f"malformed metrics snapshot: {error}") from None
    return series, summaries
