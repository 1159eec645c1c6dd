"""What ``connect``, ``get``, ``dig`` and ``diagnose`` say about an outcome.

Against one ``ech serve`` with DoH, whose public certificate also covers
127.0.0.1 (so the DoH URL ``https://127.0.0.1:PORT/dns-query`` verifies).
Each outcome ends with one plain line, the same in text and in ``--json``
(``summary``, ``name_visible_to_network``); each failure says where it
went and how to fix it.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import HIDDEN_NAME, PUBLIC_NAME
from tests.harness.pki import TestPKI
from tests.harness.serve import (
    COMMAND_TIMEOUT,
    ech_keygen,
    free_port,
    run_ech,
    serve_process,
)
from tests.server.conftest import Site

ACCEPTED = (
    f"ECH accepted: the network saw {PUBLIC_NAME}; {HIDDEN_NAME} stayed encrypted"
)


def trusted_ech(site: Site) -> list[str | Path]:
    """``--ca`` and ``--ech-config-list``: what ECH accepted needs."""
    return ["--ca", site.ca, "--ech-config-list", site.configs.to_base64()]


@pytest.fixture(scope="module")
def site(
    ech_command: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("outcome-site")
    pki = TestPKI.create(directory, "ech outcome CA")
    public = pki.leaf("public", PUBLIC_NAME, "127.0.0.1")
    hidden = pki.leaf("hidden", HIDDEN_NAME)
    configs = ech_keygen(PUBLIC_NAME, directory / "ech.pem", "--config-id", "9")
    args: list[str | Path] = [
        "--cert", public.cert_path, "--key", public.key_path,
        "--cert", hidden.cert_path, "--key", hidden.key_path,
        "--ech-key", directory / "ech.pem", "--doh", "/dns-query",
    ]  # fmt: skip
    with serve_process(
        args, directory / "serve.log", port=free_port(), command=ech_command
    ) as server:
        yield Site(server, configs, pki.ca_path)


def ech(command: list[str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_ech(command, *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def connect(
    command: list[str], site: Site, *args: str | Path
) -> subprocess.CompletedProcess[str]:
    return ech(command, "connect", site.server.address, "--sni", HIDDEN_NAME, *args)


# connect ---------------------------------------------------------------------


def test_accepted_ends_with_the_plain_line(ech_command: list[str], site: Site) -> None:
    text = connect(ech_command, site, *trusted_ech(site))
    assert text.returncode == 0, text.stderr
    assert last_line(text.stdout) == ACCEPTED
    # The text says what the JSON field says: server_view is "server view".
    assert "             server view: {" in text.stdout
    assert "server saw" not in text.stdout
    data = connect(ech_command, site, *trusted_ech(site), "--json")
    report = json.loads(data.stdout)
    assert report["summary"] == ACCEPTED
    assert report["name_visible_to_network"] is False
    assert report["server_view"]["ech_status"] == "accepted"  # fields kept


def test_grease_warns_that_the_name_was_in_clear(
    ech_command: list[str], site: Site
) -> None:
    result = connect(ech_command, site, "--ca", site.ca, "--grease", "--json")
    assert result.returncode == 0, result.stderr  # GREASE was what was asked
    report = json.loads(result.stdout)
    assert report["summary"] == (
        f"WARNING: {HIDDEN_NAME} was sent in clear (GREASE as asked, no ECH "
        "config given)"
    )
    assert report["name_visible_to_network"] is True


def test_not_offered_says_the_name_was_visible_and_how_to_hide_it(
    ech_command: list[str], site: Site
) -> None:
    result = connect(ech_command, site, "--ca", site.ca)
    assert result.returncode == 0, result.stderr
    assert last_line(result.stdout) == (
        f"WARNING: ECH not offered: the network saw {HIDDEN_NAME}; to hide it, "
        "pass --ech-config-list B64|@FILE or --doh URL"
    )
    assert "name visible to network: True" in result.stdout


def test_without_ca_it_says_pass_ca(ech_command: list[str], site: Site) -> None:
    result = connect(ech_command, site, "--ech-config-list", site.configs.to_base64())
    assert result.returncode == 1
    assert last_line(result.stdout) == (
        f"FAILED: certificate for {HIDDEN_NAME} is not trusted by the system "
        "store; pass --ca FILE; ECH was offered, the handshake did not complete"
    )
    assert "ech status: offered" in result.stdout  # not "None"
    assert "candidates exhausted" not in result.stdout
    assert result.stderr == ""  # no library warning


def test_a_refused_connection_names_the_address_and_sent_nothing(
    ech_command: list[str], site: Site
) -> None:
    port = free_port()
    result = ech(
        ech_command, "connect", f"127.0.0.1:{port}", "--sni", HIDDEN_NAME,
        "--ech-config-list", site.configs.to_base64(), "--json",
    )  # fmt: skip
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["summary"] == (
        f"FAILED: connection refused by 127.0.0.1 port {port}: is the server "
        "running there?; nothing was sent"
    )
    assert report["name_visible_to_network"] is False


# dig ---------------------------------------------------------------------------


def test_dig_without_a_record_exits_1_and_hints_port(
    ech_command: list[str], site: Site
) -> None:
    result = ech(ech_command, "dig", HIDDEN_NAME, "--doh", site.doh, "--ca", site.ca)
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"ech dig: no HTTPS record for {HIDDEN_NAME}; if the service is on another "
        f"port, give --port PORT (the record then lives at _PORT._https.{HIDDEN_NAME})"
    )
    found = ech(
        ech_command, "dig", HIDDEN_NAME, "--port", str(site.server.port),
        "--doh", site.doh, "--ca", site.ca,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert f"public_name': '{PUBLIC_NAME}'" in found.stdout


def test_dig_at_a_path_that_is_not_doh_says_check_the_path(
    ech_command: list[str], site: Site
) -> None:
    wrong = f"https://127.0.0.1:{site.server.port}/"  # the JSON status page
    result = ech(ech_command, "dig", HIDDEN_NAME, "--doh", wrong, "--ca", site.ca)
    assert result.returncode == 1
    line = last_line(result.stderr)
    assert line.endswith(
        "the URL did not answer with a DNS message (got application/json, HTTP "
        "200) - check the path, usually /dns-query"
    )
    assert "BadLabelType" not in line


def test_dig_with_an_untrusted_doh_server_says_pass_ca(
    ech_command: list[str], site: Site
) -> None:
    result = ech(ech_command, "dig", HIDDEN_NAME, "--doh", site.doh)
    assert result.returncode == 1
    assert "the DoH server's certificate is not trusted by the system store; " in (
        result.stderr
    )
    assert "pass --ca FILE" in result.stderr


# get and diagnose ------------------------------------------------------------------


def test_get_accepted_ends_with_the_plain_line(
    ech_command: list[str], site: Site
) -> None:
    result = ech(ech_command, "get", site.url, "--doh", site.doh, "--ca", site.ca)
    assert result.returncode == 0, result.stderr
    assert last_line(result.stderr) == ACCEPTED
    outcome = json.loads(result.stderr.splitlines()[0])
    assert outcome["summary"] == ACCEPTED
    assert outcome["name_visible_to_network"] is False


def test_get_failure_says_where_and_that_grease_followed_no_record(
    ech_command: list[str], site: Site
) -> None:
    port = free_port()  # nothing listens, and no record names it
    url = f"https://{HIDDEN_NAME}:{port}/"
    result = ech(
        ech_command, "get", url, "--doh", site.doh, "--ca", site.ca,
        "--address", "127.0.0.1", "--json",
    )  # fmt: skip
    assert result.returncode == 1
    outcome = json.loads(result.stdout)
    assert (outcome["address"], outcome["port"]) == ("127.0.0.1", port)
    assert outcome["ech_reason"] == "no_https_record"
    assert outcome["summary"] == (
        f"FAILED: connection refused by 127.0.0.1 port {port}: is the server "
        "running there?; nothing was sent (it would have been GREASE, no usable "
        "config: no HTTPS record was found)"
    )


def test_get_with_grease_after_no_record_says_the_name_was_in_clear(
    ech_command: list[str], site: Site
) -> None:
    # No record for this name: GREASE; the server's default certificate does
    # not name it, so the handshake fails after the name went out in clear.
    url = f"https://other.example:{site.server.port}/"
    result = ech(
        ech_command, "get", url, "--doh", site.doh, "--ca", site.ca,
        "--address", "127.0.0.1",
    )  # fmt: skip
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"FAILED: the certificate 127.0.0.1 port {site.server.port} sent does not "
        "name other.example; other.example was sent in clear (GREASE, no usable "
        "config: no HTTPS record was found)"
    )


def test_diagnose_ends_with_the_plain_line(ech_command: list[str], site: Site) -> None:
    configs = site.configs.to_base64()
    result = ech(
        ech_command, "diagnose", site.url, "--ech-config-list", configs,
        "--address", "127.0.0.1", "--ca", site.ca,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert last_line(result.stdout) == ACCEPTED
    data = ech(
        ech_command, "diagnose", site.url, "--ech-config-list", configs,
        "--address", "127.0.0.1", "--json",
    )  # fmt: skip
    assert data.returncode == 3  # nothing completed (untrusted), name not seen
    report = json.loads(data.stdout)
    assert report["name_visible_to_network"] is False
    assert report["summary"].startswith(
        f"FAILED: certificate for {HIDDEN_NAME} is not trusted by the system store"
    )


# colour --------------------------------------------------------------------------


def on_a_terminal(command: list[str], site: Site, env: dict[str, str]) -> str:
    """``ech connect``'s stdout when it is a terminal (a pty)."""
    controller, terminal = pty.openpty()
    try:
        subprocess.run(
            [*command, "connect", site.server.address, "--sni", HIDDEN_NAME,
             *map(str, trusted_ech(site))],
            stdout=terminal, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            env=env, timeout=COMMAND_TIMEOUT, check=True,
        )  # fmt: skip
        os.close(terminal)
        terminal = -1
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the pty's other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(
    ech_command: list[str], site: Site
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    coloured = on_a_terminal(ech_command, site, env)
    assert f"\033[32m{ACCEPTED}\033[0m" in coloured
    plain = on_a_terminal(ech_command, site, {**env, "NO_COLOR": "1"})
    assert ACCEPTED in plain
    assert "\033[" not in plain
    piped = connect(ech_command, site, *trusted_ech(site))
    assert last_line(piped.stdout) == ACCEPTED  # not a terminal: no colour
    assert "\033[" not in piped.stdout
