"""The ``ech`` command line, run as subprocesses: keygen, serve, connect, demo.

The flags, the ``--json`` field names and the exit statuses are a contract
other tools rely on (README.md), so these tests hold the command to it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ech.cli.certs import next_commands
from ech.config import ECHConfigList
from ech.keys import load_ech_key
from ech.pki import certificate_files
from tests.cli.conftest import (
    CLIPKI,
    HIDDEN_NAME,
    PUBLIC_NAME,
    STOP_TIMEOUT,
    shell_lines,
)
from tests.harness.serve import (
    ServeProcess,
    find_ech_command,
    free_port,
    run_ech,
    serve_process,
)

# RFC 9180 §7.1 code points, written out so the CLI's own table is checked.
KEM_IDS = {
    "p256": 0x0010,
    "p384": 0x0011,
    "p521": 0x0012,
    "x25519": 0x0020,
    "x448": 0x0021,
}
STATUS_FIELDS = (
    "ech_status",
    "outer_server_name",
    "server_name",
    "tls_version",
    "cipher_suite",
    "group",
    "alpn",
    "resumed",
    "hello_retry",
)


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A failed command: non-zero, a message on stderr naming ``needles``, no trace."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "no message on stderr"
    for needle in needles:
        assert needle in result.stderr, result.stderr


def config_bytes(b64: str) -> bytes:
    """The wire form of a base64 ECHConfigList (fails if it does not parse)."""
    return ECHConfigList.from_base64(b64).encode()


def connect(
    command: list[str], server: ServeProcess, ca: Path, *args: str | os.PathLike[str]
) -> tuple[int, dict[str, Any]]:
    """``ech connect SERVER --sni HIDDEN --ca CA --json ARGS``: status, JSON."""
    result = run_ech(
        command, "connect", server.address, "--sni", HIDDEN_NAME, "--ca", ca,
        "--json", *args,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"--json printed no JSON object: {result.stdout!r} {result.stderr}")
    return result.returncode, report


# keygen ---------------------------------------------------------------------


@pytest.mark.parametrize("kem", sorted(KEM_IDS))
def test_keygen_each_kem(ech_command: list[str], tmp_path: Path, kem: str) -> None:
    out = tmp_path / "key.pem"
    result = run_ech(
        ech_command, "keygen", "--public-name", "cover.example.net", "--kem", kem,
        "--config-id", "77", "--max-name-length", "42", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    printed = result.stdout.strip()
    assert len(printed.splitlines()) == 1
    (config,) = ECHConfigList.from_base64(printed).configs
    assert config.contents is not None
    assert config.contents.public_name == b"cover.example.net"
    assert config.contents.config_id == 77
    assert config.contents.maximum_name_length == 42
    assert config.contents.kem_id == KEM_IDS[kem]
    assert config.unsupported_reason() is None

    pem = out.read_bytes()
    assert pem.index(b"-----BEGIN PRIVATE KEY-----") < pem.index(
        b"-----BEGIN ECHCONFIG-----"
    )
    key = load_ech_key(out)
    assert key.config.raw == config.raw
    assert key.private_key.kem_id == KEM_IDS[kem]


def test_keygen_defaults(ech_command: list[str], tmp_path: Path) -> None:
    out = tmp_path / "key.pem"
    result = run_ech(ech_command, "keygen", "--public-name", PUBLIC_NAME, "-o", out)
    assert result.returncode == 0, result.stderr
    (config,) = ECHConfigList.from_base64(result.stdout).configs
    assert config.contents is not None
    assert config.contents.kem_id == KEM_IDS["x25519"]
    assert config.contents.maximum_name_length == 0
    assert load_ech_key(out).config.raw == config.raw


def test_keygen_makes_an_existing_file_private(
    ech_command: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "key.pem"
    out.write_text("old contents\n")
    out.chmod(0o644)
    result = run_ech(
        ech_command, "keygen", "--public-name", PUBLIC_NAME, "-o", out, "--force"
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert load_ech_key(out).config.raw == config_bytes(result.stdout)[2:]


def test_keygen_refuses_to_overwrite_a_key(
    ech_command: list[str], tmp_path: Path
) -> None:
    """The published record would stop matching: only with --force."""
    out = tmp_path / "key.pem"
    first = run_ech(ech_command, "keygen", "--public-name", PUBLIC_NAME, "-o", out)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    again = run_ech(ech_command, "keygen", "--public-name", PUBLIC_NAME, "-o", out)
    assert again.returncode == 2
    assert again.stdout == ""  # nothing to publish
    assert "Traceback" not in again.stderr
    assert str(out) in again.stderr
    assert "--force" in again.stderr
    assert out.read_bytes() == before


def test_keygen_says_where_the_key_is_and_what_to_publish(
    ech_command: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "key.pem"
    result = run_ech(ech_command, "keygen", "--public-name", PUBLIC_NAME, "-o", out)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stderr
    assert "publish the ECHConfigList printed on stdout" in result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    ECHConfigList.from_base64(result.stdout)  # stdout is the list alone


@pytest.mark.parametrize(
    "name",
    [
        "1.2.3.4",  # an IPv4 address
        "a..b",  # empty label
        "-lead.example",  # label starts with a hyphen
        "under_score.example",  # not LDH
        "example.com.",  # trailing dot
        "host.0x7f",  # last label parses as a number
        "ex\u00e4mple.com",  # not ASCII
        "a" * 64 + ".example",  # label too long
    ],
    ids=[
        "ipv4",
        "empty-label",
        "leading-hyphen",
        "underscore",
        "trailing-dot",
        "numeric-tld",
        "non-ascii",
        "long-label",
    ],
)
def test_keygen_rejects_bad_public_name(
    ech_command: list[str], tmp_path: Path, name: str
) -> None:
    out = tmp_path / "key.pem"
    # "=" so that argparse takes "-lead.example" as a value, not an option.
    result = run_ech(ech_command, "keygen", f"--public-name={name}", "-o", out)
    assert_clean_error(result, name)
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-name-length", "256"], "length"),
        (["--max-name-length", "-1"], "length"),
        (["--config-id", "256"], "config-id"),
        (["--kem", "rsa"], "kem"),
    ],
)
def test_keygen_rejects_bad_numbers(
    ech_command: list[str], tmp_path: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "key.pem"
    result = run_ech(
        ech_command, "keygen", "--public-name", PUBLIC_NAME, *args, "-o", out
    )
    assert_clean_error(result, needle)
    assert not out.exists()


def test_keygen_unwritable_output(ech_command: list[str], tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "key.pem"
    result = run_ech(ech_command, "keygen", "--public-name", PUBLIC_NAME, "-o", out)
    assert_clean_error(result, str(out))


# connect to a running ech serve -----------------------------------------------


def test_connect_accepted(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI
) -> None:
    status, report = connect(
        ech_command, server, cli_pki.ca, "--ech-config-list", cli_pki.served.config_list
    )
    assert status == 0, report
    assert report["ech_status"] == "accepted"
    assert report["server_name"] == HIDDEN_NAME
    assert report["outer_server_name"] == PUBLIC_NAME
    assert report["tls_version"] == "TLSv1.3"
    assert report["alpn"] == "http/1.1"
    assert report["cipher_suite"].startswith("TLS_")
    assert report["group"]
    assert report["retried"] is False
    assert report["retry_configs"] is None
    assert report["resumed"] is False
    assert report["http_status"] == "HTTP/1.1 200 OK"
    assert "error" not in report
    view = report["server_view"]
    assert {name: view[name] for name in STATUS_FIELDS} == {
        name: report[name] for name in STATUS_FIELDS
    }


def test_connect_config_list_from_file(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI, tmp_path: Path
) -> None:
    published = tmp_path / "ech.b64"
    published.write_text(cli_pki.served.config_list + "\n")
    status, report = connect(
        ech_command, server, cli_pki.ca, "--ech-config-list", f"@{published}"
    )
    assert status == 0, report
    assert report["ech_status"] == "accepted"
    assert report["server_view"]["server_name"] == HIDDEN_NAME


def test_connect_human_output(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI
) -> None:
    result = run_ech(
        ech_command, "connect", server.address, "--sni", HIDDEN_NAME,
        "--ca", cli_pki.ca, "--ech-config-list", cli_pki.served.config_list,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accepted" in result.stdout
    assert HIDDEN_NAME in result.stdout
    with pytest.raises(ValueError):
        json.loads(result.stdout)


def test_connect_stale_config_retries(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI
) -> None:
    status, report = connect(
        ech_command, server, cli_pki.ca, "--ech-config-list", cli_pki.stale.config_list
    )
    assert status == 0, report
    assert report["ech_status"] == "accepted"
    assert report["retried"] is True
    assert config_bytes(report["retry_configs"]) == config_bytes(
        cli_pki.served.config_list
    )
    assert report["server_name"] == HIDDEN_NAME
    assert report["server_view"]["ech_status"] == "accepted"


def test_connect_stale_config_no_retry(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI
) -> None:
    status, report = connect(
        ech_command, server, cli_pki.ca,
        "--ech-config-list", cli_pki.stale.config_list, "--no-retry",
    )  # fmt: skip
    assert status == 1, report
    assert report["ech_status"] == "rejected"
    assert report["retried"] is False
    assert report["outer_server_name"] == PUBLIC_NAME
    assert config_bytes(report["retry_configs"]) == config_bytes(
        cli_pki.served.config_list
    )
    assert report["error"]
    assert "server_view" not in report


def test_connect_grease(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI
) -> None:
    status, report = connect(ech_command, server, cli_pki.ca, "--grease")
    assert status == 0, report
    assert report["ech_status"] == "grease"
    assert report["server_name"] == HIDDEN_NAME
    assert report["retried"] is False
    # The server cannot tell GREASE from a config it cannot decrypt.
    assert report["server_view"]["ech_status"] == "rejected"
    assert report["server_view"]["server_name"] == HIDDEN_NAME


def test_connect_without_ech(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI
) -> None:
    status, report = connect(ech_command, server, cli_pki.ca)
    assert status == 0, report
    assert report["ech_status"] == "not_offered"
    assert report["server_name"] == HIDDEN_NAME
    assert report["outer_server_name"] == HIDDEN_NAME
    assert report["retry_configs"] is None
    assert report["server_view"]["ech_status"] == "not_offered"


@pytest.mark.parametrize("with_ech", [True, False], ids=["ech", "no-ech"])
def test_connect_untrusted_ca(
    ech_command: list[str], server: ServeProcess, cli_pki: CLIPKI, with_ech: bool
) -> None:
    args = ["--ech-config-list", cli_pki.served.config_list] if with_ech else []
    status, report = connect(ech_command, server, cli_pki.other_ca, *args)
    assert status != 0, report
    assert report["error"]
    assert report["ech_status"] is None
    assert "server_view" not in report


@pytest.mark.parametrize(
    "value", ["@/nonexistent/ech.b64", "not base64!", "AAA="], ids=str
)
def test_connect_bad_config_list_argument(ech_command: list[str], value: str) -> None:
    result = run_ech(
        ech_command, "connect", "127.0.0.1:9", "--sni", HIDDEN_NAME,
        "--ech-config-list", value,
    )  # fmt: skip
    assert result.returncode == 2
    assert_clean_error(result, "ECHConfigList")


def test_connect_server_without_ech(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    """Exit status follows the outcome asked for, not just a finished handshake."""
    with serve_process(
        cli_pki.cert_args(),
        tmp_path / "serve.log",
        port=free_port(),
        command=ech_command,
    ) as plain:
        status, report = connect(
            ech_command,
            plain,
            cli_pki.ca,
            "--ech-config-list",
            cli_pki.served.config_list,
        )
        assert status == 1, report
        assert report["ech_status"] == "rejected"
        assert report["outer_server_name"] == PUBLIC_NAME
        assert report["retry_configs"] is None

        status, report = connect(ech_command, plain, cli_pki.ca, "--grease")
        assert status == 0, report
        assert report["ech_status"] == "grease"


# serve ----------------------------------------------------------------------


def test_serve_two_ech_keys(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    args = [
        *cli_pki.cert_args(),
        "--ech-key", str(cli_pki.served.path),
        "--ech-key", str(cli_pki.second.path),
    ]  # fmt: skip
    with serve_process(
        args, tmp_path / "serve.log", port=free_port(), command=ech_command
    ) as both:
        for key in (cli_pki.served, cli_pki.second):
            status, report = connect(
                ech_command, both, cli_pki.ca, "--ech-config-list", key.config_list
            )
            assert status == 0, report
            assert report["ech_status"] == "accepted"
            assert report["retried"] is False
            assert report["server_view"]["server_name"] == HIDDEN_NAME


def test_serve_mismatched_cert_key_counts(
    ech_command: list[str], cli_pki: CLIPKI
) -> None:
    result = run_ech(
        ech_command, "serve", "--listen", "127.0.0.1:0",
        "--cert", cli_pki.public_cert, "--key", cli_pki.public_key,
        "--cert", cli_pki.hidden_cert,
        "--ech-key", cli_pki.served.path,
    )  # fmt: skip
    assert_clean_error(result, "--key")
    assert "listening on" not in result.stdout


def test_serve_missing_ech_key_file(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pem"
    result = run_ech(
        ech_command, "serve", "--listen", "127.0.0.1:0", *cli_pki.cert_args(),
        "--ech-key", missing,
    )  # fmt: skip
    assert_clean_error(result, str(missing))
    assert "listening on" not in result.stdout


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"]
)
def test_serve_stops_on_signal(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path, sig: signal.Signals
) -> None:
    args = [*cli_pki.cert_args(), "--ech-key", str(cli_pki.served.path)]
    with serve_process(
        args, tmp_path / "serve.log", port=free_port(), command=ech_command
    ) as running:
        status, report = connect(
            ech_command, running, cli_pki.ca,
            "--ech-config-list", cli_pki.served.config_list,
        )  # fmt: skip
        assert status == 0, report
        started = time.monotonic()
        running.process.send_signal(sig)
        try:
            code = running.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ech serve ignored {sig.name} for {STOP_TIMEOUT} s")
        assert time.monotonic() - started < STOP_TIMEOUT
        assert code == 0, running.log()
        assert "Traceback" not in running.log()


# demo -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["script", "module"])
def test_demo(how: str) -> None:
    if how == "script":
        command = find_ech_command()
        if command[0] == sys.executable:
            pytest.fail(
                "no ech console script next to this interpreter: "
                "install the project with `pip install -e .` (make test does)"
            )
    else:
        command = [sys.executable, "-m", "ech"]
    result = run_ech(command, "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert PUBLIC_NAME in result.stdout
    assert HIDDEN_NAME in result.stdout
    assert "all checks passed" in result.stdout
    assert "SOME CHECKS FAILED" not in result.stdout
    assert "5. The same over HTTP/3" in result.stdout
    assert f"checked: {HIDDEN_NAME} appears nowhere in the" in result.stdout
    assert "bytes the client sent over UDP" in result.stdout
    assert_demo_explains_itself(result.stdout)


def assert_demo_explains_itself(out: str) -> None:
    """ECH in a sentence, seen next to hidden, GREASE in words, what to run next."""
    assert "ECH encrypts the name of the site a client asks for" in out.replace(
        "\n", " "
    )
    # Beside each other, on one line: what the network sees, what it does not.
    assert "the network sees      hidden from the network" in out
    seen_hidden = [line.split() for line in out.splitlines() if "(SNI)" in line]
    assert [words[-2:] for words in seen_hidden] == [
        [PUBLIC_NAME, HIDDEN_NAME],  # accepted
        [PUBLIC_NAME, HIDDEN_NAME],  # accepted after the retry
        [HIDDEN_NAME, "nothing"],  # GREASE
        [PUBLIC_NAME, HIDDEN_NAME],  # HTTP/3
    ]
    accepted = f"ECH accepted: the network saw {PUBLIC_NAME}; {HIDDEN_NAME} stayed"
    assert out.count(accepted) == 3
    assert "GREASE: a client with no ECH key for a server sends a decoy" in out
    assert f"WARNING: {HIDDEN_NAME} was sent in clear (GREASE" in out
    # No Python in the words: no reprs, no booleans, no identifiers.
    python = (f"'{HIDDEN_NAME}'", f"'{PUBLIC_NAME}'", "True", "False", "None")
    for word in (*python, "retry_configs", "ech_status", "ECHConfigList("):
        assert word not in out, word
    # It ends with the README's quickstart, however ech was started.
    tail = shell_lines(out[out.index("Try it") :])[1:]
    commands = next_commands(certificate_files(Path("quickstart")))
    expected = ["ech certs quickstart", *commands]
    assert len(tail) == len(expected)
    for printed, command in zip(tail, expected, strict=True):
        words = shlex.split(command)[1:]  # the program is however ech was run
        assert shlex.split(printed)[-len(words) :] == words


# bad command-line input: one clear line, a non-zero exit, never a traceback ----


def _bad_input(ech_command: list[str], *args: str) -> str:
    result = run_ech(ech_command, *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "no message"
    assert lines[-1].startswith("ech"), lines  # the one line saying what is wrong
    return lines[-1]


@pytest.mark.parametrize(
    "address", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:-1", "nocolon"]
)
def test_connect_refuses_ports_outside_1_to_65535(
    ech_command: list[str], address: str
) -> None:
    """``connect HOST:99999`` used to connect to 99999 mod 65536 (34463)."""
    line = _bad_input(ech_command, "connect", address, "--sni", HIDDEN_NAME)
    assert "argument HOST:PORT" in line


def test_serve_refuses_a_port_above_65535(
    ech_command: list[str], cli_pki: CLIPKI
) -> None:
    line = _bad_input(
        ech_command,
        "serve",
        "--listen",
        "127.0.0.1:70000",
        "--cert",
        str(cli_pki.public_cert),
        "--key",
        str(cli_pki.public_key),
    )
    assert "port 70000 is outside 0-65535" in line


@pytest.mark.parametrize(
    "name", ["a..b", "a b", "a\x01b", "-a.example", "a" * 64 + ".example"]
)
def test_connect_refuses_what_is_not_a_host_name(
    ech_command: list[str], name: str
) -> None:
    """RFC 6066 §3: SNI is a DNS host name; the command says so, once."""
    line = _bad_input(ech_command, "connect", "127.0.0.1:1", f"--sni={name}")
    assert "is not a host name" in line
    assert line.count("ech connect") == 1  # no repeated prefixes


def test_connect_takes_idna_and_a_trailing_dot(
    ech_command: list[str], cli_pki: CLIPKI
) -> None:
    """Non-ASCII becomes A-labels (IDNA2008); the absolute form loses its dot."""
    for name in ("bücher.example", f"{HIDDEN_NAME}."):
        result = run_ech(
            ech_command,
            "connect",
            "127.0.0.1:1",  # nothing listens: the name was accepted
            "--sni",
            name,
            "--ca",
            str(cli_pki.ca),
            "--json",
        )
        assert "Traceback" not in result.stderr
        assert "not a host name" not in result.stderr
        assert "ConnectionRefusedError" in json.loads(result.stdout)["error"]


@pytest.mark.parametrize("what", ["not_pem", "private_key", "missing"])
def test_ca_that_is_not_certificates_is_refused(
    ech_command: list[str], cli_pki: CLIPKI, tmp_path: Path, what: str
) -> None:
    path = tmp_path / "ca.pem"
    if what == "not_pem":
        path.write_text("hello\n")
    elif what == "private_key":
        path.write_bytes(cli_pki.public_key.read_bytes())
    for command in (
        ["connect", "127.0.0.1:1", "--sni", HIDDEN_NAME, "--ca", str(path)],
        [
            "get",
            "https://a.example/",
            "--doh",
            "https://127.0.0.1:1/q",
            "--ca",
            str(path),
        ],
        ["dig", "a.example", "--doh", "https://127.0.0.1:1/q", "--ca", str(path)],
    ):
        line = _bad_input(ech_command, *command)
        assert "argument --ca" in line
        expected = "No such file" if what == "missing" else "no PEM certificate"
        assert expected in line
