"""The plain outcome line and its colour, from the fields alone (no network)."""

from __future__ import annotations

import io

import pytest

from ech.cli.outcome import Summary, paint, summarize, use_colour

NAME = "secret.example"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("fields", "sent", "line", "visible"),
    [
        (
            {"ech_status": "accepted", "outer_server_name": "public.example",
             "retried": True},
            True,
            "ECH accepted after one retry with the server's new configs: the "
            "network saw public.example; secret.example stayed encrypted",
            False,
        ),
        (
            {"ech_status": "grease", "ech_reason": "record_without_ech"},
            True,
            "WARNING: secret.example was sent in clear (GREASE, no usable config: "
            "the HTTPS record has no ech)",
            True,
        ),
        (
            {"ech_status": "rejected", "error": "ECHRejectedError: x",
             "failure": "the server rejected ECH"},
            True,
            "FAILED: the server rejected ECH; ECH was rejected, secret.example "
            "stayed encrypted",
            False,
        ),
        (
            {"ech_status": None, "error": "OSError: x"},
            True,
            "FAILED: OSError: x; no handshake completed",
            False,
        ),
    ],
)  # fmt: skip
def test_summarize(
    fields: dict[str, object], sent: bool, line: str, visible: bool
) -> None:
    summary = summarize(fields, NAME, sent=sent)
    assert (summary.line, summary.name_visible) == (line, visible)
    assert summary.fields() == {"summary": line, "name_visible_to_network": visible}


@pytest.mark.parametrize(
    ("environment", "coloured"),
    [({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True),
     ({"TERM": "dumb"}, False)],
)  # fmt: skip
def test_colour_rule(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], coloured: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert use_colour(Terminal()) is coloured
    assert use_colour(io.StringIO()) is False  # never off a terminal
    line = paint(Summary("FAILED: x", "failed", False), Terminal())
    assert line == ("\033[31mFAILED: x\033[0m" if coloured else "FAILED: x")
