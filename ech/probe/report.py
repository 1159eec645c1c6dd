"""Probe results and how they are shown: a table for people, one JSON object.

A check's result is one of four (:class:`Result`): ``pass``; ``fail`` (the
peer departs from the RFC: what was expected and what came back are
given); ``not_applicable`` (the check cannot be made here: a prerequisite
check failed, the transport does not have the feature, the configuration
offers nothing to test); ``error`` (the probe itself could not run it).
"""

from __future__ import annotations

import enum
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any


class Result(enum.StrEnum):
    """The outcome of one check."""

    PASS = "pass"  # noqa: S105 - not a password
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


@dataclass(frozen=True)
class CheckInfo:
    """What a check tests.

    Attributes:
        id: stable name, e.g. ``outer-ext-duplicate``.
        items: the numbers N of the requirements ``ECH-N`` it tests
            (``docs/conformance.rst``).
        section: the RFC section(s), e.g. ``RFC 9849 §5.1``.
        summary: one line: the requirement, in our words.
    """

    id: str
    items: tuple[int, ...]
    section: str
    summary: str


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome, with what was expected and what came back."""

    info: CheckInfo
    result: Result
    expected: str = ""
    observed: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """The check as a JSON object."""
        return {
            "id": self.info.id,
            "requirements": [f"ECH-{n}" for n in self.info.items],
            "checklist": list(self.info.items),  # the same numbers, kept for scripts
            "rfc": self.info.section,
            "summary": self.info.summary,
            "result": str(self.result),
            "expected": self.expected,
            "observed": self.observed,
            "detail": self.detail,
        }


def versions() -> dict[str, str]:
    """The versions a report is made with (ours, Python's, the peers' libraries)."""
    out = {"ech": _version("tls-ech"), "python": platform.python_version()}
    for name in ("aioquic", "cryptography"):
        out[name] = _version(name)
    return out


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Report:
    """Every check of one probe run.

    Attributes:
        probe: ``server`` (``ech probe``) or ``client`` (``ech probe-client``).
        peer: what was probed (``HOST:PORT``, or the listening address).
        transport: ``tcp`` or ``quic``.
        facts: what the probe knew (server name, public_name, configs).
    """

    probe: str
    peer: str
    transport: str
    results: list[CheckResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """How many checks ended in each result."""
        counts = {str(r): 0 for r in Result}
        for result in self.results:
            counts[str(result.result)] += 1
        return counts

    @property
    def ok(self) -> bool:
        """True when every check that applies passed (exit status 0)."""
        return all(
            r.result in (Result.PASS, Result.NOT_APPLICABLE) for r in self.results
        ) and any(r.result is Result.PASS for r in self.results)

    def result(self, check_id: str) -> CheckResult:
        """The result of ``check_id``.

        Raises:
            KeyError: no such check in this report.
        """
        for result in self.results:
            if result.info.id == check_id:
                return result
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        """The whole report as one JSON object."""
        return {
            "probe": self.probe,
            "peer": self.peer,
            "transport": self.transport,
            **self.facts,
            "versions": versions(),
            "checks": [r.to_json() for r in self.results],
            "summary": self.counts(),
            "ok": self.ok,
        }

    def render(self) -> str:
        """A table a person reads at a glance, failures explained below it."""
        lines = [self._title(), ""]
        rows = [("RESULT", "CHECK", "REQUIREMENTS", "RFC")]
        for r in self.results:
            rows.append(
                (
                    _mark(r.result),
                    r.info.id,
                    " ".join(f"ECH-{n}" for n in r.info.items),
                    r.info.section.removeprefix("RFC "),
                )
            )
        lines.extend(_table(rows))
        explained = [r for r in self.results if r.result in (Result.FAIL, Result.ERROR)]
        if explained:
            lines.append("")
        for r in explained:
            lines.append(f"{_mark(r.result)} {r.info.id}: {r.info.summary}")
            lines.append(f"    expected: {r.expected}")
            lines.append(f"    observed: {r.observed}")
            if r.detail:
                lines.append(f"    {r.detail}")
        counts = self.counts()
        lines.append("")
        lines.append(
            f"{counts['pass']} pass, {counts['fail']} fail, "
            f"{counts['not_applicable']} not applicable, {counts['error']} error"
            f" -> {'OK' if self.ok else 'NOT CONFORMANT'}"
        )
        return "\n".join(lines)

    def _title(self) -> str:
        facts = ", ".join(
            f"{k} {v}"
            for k, v in self.facts.items()
            if isinstance(v, str | int) and k in _TITLE_FACTS
        )
        title = f"ech {'probe' if self.probe == 'server' else 'probe-client'}"
        return f"{title} {self.peer} over {self.transport}" + (
            f" ({facts})" if facts else ""
        )


#: The facts short enough for the report's first line.
_TITLE_FACTS = ("server_name", "public_name", "config_id", "listen")


def _mark(result: Result) -> str:
    return {
        Result.PASS: "pass",
        Result.FAIL: "FAIL",
        Result.NOT_APPLICABLE: "n/a",
        Result.ERROR: "ERROR",
    }[result]


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


__all__ = ["CheckInfo", "CheckResult", "Report", "Result", "versions"]
