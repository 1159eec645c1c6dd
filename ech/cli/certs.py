"""``ech certs DIR``: a throwaway CA and certificates, then the commands to try.

The first thing anyone trying ECH needs is certificates for two names (the
public name the network sees, and the name ECH hides), trusted by the
client; making them by hand with openssl took most of a first hour
(issue 17). This writes them (:func:`ech.pki.write_certificates`) and
prints the next commands with the real file names, so that the README's
quickstart is exactly what this prints (``tests/cli/test_quickstart.py``
holds them to it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from ech.arguments import server_name, usage_error
from ech.pki import (
    DEFAULT_NAMES,
    DEFAULT_PUBLIC_NAME,
    LOOPBACK_NAMES,
    CertificateFiles,
    write_certificates,
)

__all__ = ["QUICKSTART_PORT", "add_parser", "cmd_certs", "next_commands"]

QUICKSTART_PORT = 8443
"""The port the printed commands serve and connect on."""

DOH_PATH = "/dns-query"
"""Where the printed ``ech serve`` answers DoH (RFC 8484 §4.1's example)."""


def ech_program() -> str:
    """How the user ran ``ech``, to write the next commands the same way.

    ``ech`` when that is what PATH finds, the path typed (``.venv/bin/ech``)
    otherwise, and ``python -m ech`` when run as a module.
    """
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name != "ech":
        return f"{shlex.quote(sys.executable)} -m ech"
    found = shutil.which("ech")
    try:
        on_path = found is not None and os.path.samefile(found, argv0)
    except OSError:
        on_path = False
    return "ech" if on_path else shlex.quote(argv0)


def next_commands(
    files: CertificateFiles, program: str = "ech", port: int = QUICKSTART_PORT
) -> list[str]:
    """keygen, serve (in the background) with DoH, connect, get: shell lines.

    The ECH key and its published ECHConfigList go beside the certificates
    (``DIR/ech.pem``, ``DIR/ech.b64``). ``ech serve`` gets the public name's
    certificate first: a DoH client connecting to 127.0.0.1 sends no SNI
    and gets the first certificate, which also covers the address.
    """
    directory = files.ca.parent
    q = shlex.quote
    ech_key, published = directory / "ech.pem", directory / "ech.b64"
    hidden = files.names[0].name if files.names else files.public.name
    certs = " ".join(
        f"--cert {q(str(f.certificate))} --key {q(str(f.key))}"
        for f in (files.public, *files.names)
    )
    ca = q(str(files.ca))
    return [
        f"{program} keygen --public-name {q(files.public.name)}"
        f" -o {q(str(ech_key))} > {q(str(published))}",
        f"{program} serve --listen 127.0.0.1:{port} --doh {DOH_PATH}"
        f" --ech-key {q(str(ech_key))} {certs} &",
        f"{program} connect 127.0.0.1:{port} --sni {q(hidden)}"
        f" --ech-config-list @{q(str(published))} --ca {ca}",
        f"{program} get https://{hidden}:{port}/"
        f" --doh https://127.0.0.1:{port}{DOH_PATH} --ca {ca}",
    ]


def wrap(line: str, width: int = 88, indent: str = "    ") -> str:
    """``line`` as continued (backslash) lines of ``width``, broken before options."""
    chunks: list[str] = []
    for word in line.split(" "):
        # Values stay with their option, "--key K" with its "--cert C", and
        # a redirection or "&" with the command.
        joins = not word.startswith("-") or word == "--key"
        if chunks and (joins or word == "&" or word == ">"):
            chunks[-1] += " " + word
        else:
            chunks.append(word)
    out: list[str] = []
    current = ""
    for chunk in chunks:
        if current and len(current) + 1 + len(chunk) > width - 2:
            out.append(current + " \\")
            current = indent + chunk
        else:
            current = f"{current} {chunk}" if current else chunk
    return "\n".join([*out, current])


def cmd_certs(args: argparse.Namespace) -> int:
    """Write the CA and certificates, then print what they are and what next."""
    directory: Path = args.directory
    try:
        files = write_certificates(
            directory, args.public_name, args.name or DEFAULT_NAMES, force=args.force
        )
    except FileExistsError as error:
        usage_error(
            "certs", f"{error}; pass --force to replace them, or choose another DIR"
        )
    except (ValueError, OSError) as error:
        usage_error("certs", f"{directory}: {error}")
    loopback = ", ".join(LOOPBACK_NAMES)
    print(f"A throwaway CA and certificates in {directory}/ (keys 0600):")
    print(f"  {files.ca}  the CA to trust (--ca); its own key was not kept")
    public = files.public
    print(f"  {public.certificate}, {public.key}")
    print(f"      {public.name}, the name the network sees (also {loopback})")
    for issued in files.names:
        print(f"  {issued.certificate}, {issued.key}")
        print(f"      {issued.name}, a name ECH hides")
    print("\nNext: an ECH key, a server (with DNS over HTTPS), two clients:")
    for line in next_commands(files, ech_program()):
        print(wrap(line))
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech certs`` and its flags."""
    certs = commands.add_parser(
        "certs",
        help="make a throwaway CA and certificates for trying ECH",
        description="Write DIR/ca.pem (a new CA), and DIR/NAME.pem and "
        "DIR/NAME.key (mode 0600) for the public name and each --name; then "
        "print the commands to try next. For tests and trials only.",
        epilog="example:\n  ech certs quickstart --name secret.example "
        "--name other.example",
    )
    certs.add_argument("directory", type=Path, metavar="DIR", help="created if missing")
    certs.add_argument(
        "--public-name",
        type=server_name,
        default=DEFAULT_PUBLIC_NAME,
        metavar="NAME",
        help="the client-facing name the network sees; its certificate also "
        f"covers {', '.join(LOOPBACK_NAMES)} (default %(default)s)",
    )
    certs.add_argument(
        "--name",
        action="append",
        type=server_name,
        metavar="NAME",
        help="a name served behind it, hidden by ECH; repeatable "
        f"(default {' '.join(DEFAULT_NAMES)})",
    )
    certs.add_argument(
        "--force", action="store_true", help="replace files that already exist"
    )
    certs.set_defaults(func=cmd_certs)
