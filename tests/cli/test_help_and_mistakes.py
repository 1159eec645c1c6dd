"""``ech`` for people typing it: --help, --version, and what a mistake prints.

Parsing runs in-process (``main(argv)``: nothing touches the network before
the command line is accepted); each test checks the exit status and that
the message names the flag or file and the fix.
"""

from __future__ import annotations

import argparse
import re
import warnings
from importlib import metadata
from pathlib import Path

import pytest

from ech.cli import build_parser, main
from ech.cli import demo as demo_command
from ech.cli.parser import closest
from tests.cli.conftest import CLIPKI, HIDDEN_NAME, PUBLIC_NAME


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every ``ech`` command's parser, by name."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("ech has no commands")


COMMANDS = sorted(commands())


def fails(
    capsys: pytest.CaptureFixture[str], *argv: str | Path, status: int = 2
) -> str:
    """Run ``ech ARGV``, expect ``status``; its stderr, with no traceback."""
    try:
        code: int | str | None = main([str(a) for a in argv])
    except SystemExit as leaving:
        code = leaving.code
    assert code == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --help and --version ---------------------------------------------------------


def test_every_command_is_covered() -> None:
    assert {"keygen", "serve", "connect", "diagnose", "dig", "get"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_a_line_for_every_option_and_an_example(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as leaving:
        main([name, "--help"])
    assert leaving.value.code == 0
    text = capsys.readouterr().out
    for action in commands()[name]._actions:
        assert action.help, f"ech {name} {action.option_strings or action.dest}"
        shown = action.option_strings[0] if action.option_strings else action.metavar
        assert isinstance(shown, str)
        assert shown in text
    assert "example" in text
    # The example itself, as it would be typed.
    assert re.search(rf"^  ech {name}( |$)", text, re.MULTILINE), text


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["keygen"], "--kem KEM             the HPKE KEM"),
        (["keygen"], "(default: x25519)"),
        (["keygen"], "(0: the client decides) (default: 0)"),  # 0 is a default
        (["keygen"], "(-o FILE | --rotate DIR)"),  # one of them is required
        (["dns-record"], "(default: 443)"),
        (["dns-record"], "(default: h2 http/1.1)"),
        (["dig"], "DoH resolver URL (RFC 8484) (required)"),
        (["get"], "(--doh URL | --ech-config-list B64|@FILE)"),
        (["connect"], "--sni NAME            the real server name"),
        (["serve"], "close a connection idle this long (default 60)"),
    ],
)
def test_help_shows_defaults_and_what_is_required(
    argv: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(shown.split()) in text


def test_top_level_help_documents_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text
    for line in ("  0  the command did what was asked", "  1  it failed", "  2  the"):
        assert line in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(["--version"])
    assert leaving.value.code == 0
    assert capsys.readouterr().out == f"ech {metadata.version('tls-ech')} (tls-ech)\n"


# mistyped flags, commands and values ----------------------------------------------


def test_a_mistyped_flag_gets_the_closest_and_its_command_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = fails(
        capsys, "connect", "127.0.0.1:8443", "--sni", HIDDEN_NAME,
        "--ech-confg-list", "@ech.b64",
    )  # fmt: skip
    assert err.startswith("usage: ech connect ")
    assert last_line(err) == (
        "ech connect: error: unknown option --ech-confg-list; "
        "did you mean --ech-config-list?"
    )


def test_a_mistyped_flag_is_refused_before_the_values_are_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 'x' would fail as HOST:PORT; the unknown flag is what the person typed wrong.
    err = fails(capsys, "connect", "--ech-confg-list", "x")
    assert "unknown option --ech-confg-list" in last_line(err)


def test_abbreviations_are_refused_with_the_full_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = fails(capsys, "keygen", "--pub", PUBLIC_NAME, "-o", tmp_path / "k.pem")
    assert last_line(err) == (
        "ech keygen: error: unknown option --pub; did you mean --public-name?"
    )
    assert not (tmp_path / "k.pem").exists()


def test_an_unknown_flag_with_nothing_close_points_to_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = fails(capsys, "dig", "a.example", "--doh", "https://x/", "--zzzz")
    assert last_line(err) == (
        "ech dig: error: unknown option --zzzz; see ech dig --help"
    )


def test_a_mistyped_command_gets_the_closest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = fails(capsys, "conect", "127.0.0.1:8443")
    assert err.startswith("usage: ech ")
    assert "unknown command 'conect'; did you mean connect?" in last_line(err)


def test_a_mistyped_choice_gets_the_closest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = fails(
        capsys, "keygen", "--public-name", PUBLIC_NAME, "-o", tmp_path / "k.pem",
        "--kem", "x2519",
    )  # fmt: skip
    assert "unknown choice 'x2519'; did you mean x25519?" in last_line(err)


def test_a_config_id_out_of_range_says_the_range_not_every_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = fails(
        capsys, "keygen", "--public-name", PUBLIC_NAME, "-o", tmp_path / "k.pem",
        "--config-id", "300",
    )  # fmt: skip
    assert last_line(err) == (
        "ech keygen: error: argument --config-id: must be 0-255, got 300"
    )
    assert "17, 18" not in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["keygen", "--public-name", PUBLIC_NAME], "one of the arguments -o"),
        (["dig", "a.example"], "the following arguments are required: --doh"),
        (["get", "https://a.example/"], "one of the arguments --doh"),
        (["diagnose", "https://a.example/"], "one of the arguments --doh"),
    ],
)
def test_required_flags_are_required(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert needle in last_line(fails(capsys, *argv))


# files: named with their flag, and the fix -------------------------------------


def test_a_missing_certificate_names_the_flag_and_the_file(
    capsys: pytest.CaptureFixture[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    missing = tmp_path / "x.pem"
    err = fails(
        capsys, "serve", "--listen", "127.0.0.1:0", "--cert", missing,
        "--key", cli_pki.public_key,
    )  # fmt: skip
    assert last_line(err) == (
        f"ech serve: error: argument --cert: {missing}: No such file or directory"
    )


def test_a_key_that_is_a_certificate_says_so(
    capsys: pytest.CaptureFixture[str], cli_pki: CLIPKI
) -> None:
    err = fails(
        capsys, "serve", "--listen", "127.0.0.1:0", "--cert", cli_pki.public_cert,
        "--key", cli_pki.public_cert,
    )  # fmt: skip
    line = last_line(err)
    assert line.startswith(f"ech serve: error: argument --key: {cli_pki.public_cert}")
    assert "no PEM private key in it; give the PEM private key the certificate" in (
        line
    )


def test_the_printed_config_list_given_as_ech_key_says_which_file_is_meant(
    capsys: pytest.CaptureFixture[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    printed = tmp_path / "ech.b64"
    printed.write_text(cli_pki.served.config_list + "\n")
    err = fails(capsys, "dns-record", HIDDEN_NAME, "--ech-key", printed)
    line = last_line(err)
    assert line.startswith(f"ech dns-record: error: argument --ech-key: {printed}")
    assert line.endswith(
        "; this looks like the ECHConfigList ech keygen printed: give the key "
        "file it wrote with -o"
    )


def test_a_config_list_file_without_at_gets_the_hint(
    capsys: pytest.CaptureFixture[str], cli_pki: CLIPKI, tmp_path: Path
) -> None:
    err = fails(
        capsys, "connect", "127.0.0.1:8443", "--sni", HIDDEN_NAME,
        "--ech-config-list", "ech.b64",
    )  # fmt: skip
    line = last_line(err)
    assert line.startswith("ech connect: error: argument --ech-config-list: ")
    assert line.endswith("; to read a file, write @ech.b64")


def test_an_unwritable_key_file_names_the_flag_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing-dir" / "k.pem"
    err = fails(capsys, "keygen", "--public-name", PUBLIC_NAME, "-o", target)
    assert last_line(err) == (
        f"ech keygen: error: -o {target}: no such file or directory"
    )


def test_keep_without_rotate_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = fails(
        capsys, "keygen", "--public-name", PUBLIC_NAME, "-o", tmp_path / "k.pem",
        "--keep", "1",
    )  # fmt: skip
    assert last_line(err) == (
        "ech keygen: error: --keep and --retire-after need --rotate DIR"
    )


def test_a_url_that_is_not_https_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "get", "http://a.example/", "--doh", "https://x/dns-query")
    assert last_line(err) == "ech get: error: http://a.example/: give an https:// URL"


# library warnings ---------------------------------------------------------------


def test_library_warnings_are_not_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def noisy(args: argparse.Namespace) -> int:
        warnings.warn("a dependency's deprecation", DeprecationWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(demo_command, "cmd_demo", noisy)
    monkeypatch.setattr("sys.warnoptions", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # what a user's environment may say
        assert main(["demo"]) == 0
    assert caught == []
    assert capsys.readouterr().err == ""


def test_verbose_after_the_command_is_taken(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def record(args: argparse.Namespace) -> int:
        seen.append(args.verbose)
        return 0

    monkeypatch.setattr(demo_command, "cmd_demo", record)
    assert main(["demo", "-v"]) == 0
    assert main(["-v", "demo"]) == 0
    assert main(["demo"]) == 0
    assert seen == [True, True, False]


def test_the_alpn_default_in_help_is_the_published_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ech.dns.publish import DEFAULT_ALPN

    with pytest.raises(SystemExit):
        main(["dns-record", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {' '.join(DEFAULT_ALPN)})" in text


@pytest.mark.parametrize(
    ("word", "candidates", "expected"),
    [
        ("--pub", ["--public-name", "--port"], "--public-name"),  # a prefix
        ("--ech-confg-list", ["--ech-config-list", "--ca"], "--ech-config-list"),
        ("--p", ["--public-name", "--port"], "--port or --public-name"),
        ("--zzzz", ["--ca", "--doh"], None),
    ],
)
def test_closest(word: str, candidates: list[str], expected: str | None) -> None:
    assert closest(word, candidates) == expected
