"""``ech keygen``: an RFC 9934 ECH key file, or a key directory rotation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ech import hpke
from ech.arguments import in_range, non_negative, usage_error
from ech.config import ECHConfigList
from ech.keys import generate_ech_key, write_ech_key
from ech.serve.keyring import KeyringError, rotate

__all__ = ["KEMS", "add_parser", "cmd_keygen"]

KEMS: dict[str, int] = {
    "x25519": hpke.KEM.DHKEM_X25519_HKDF_SHA256,
    "p256": hpke.KEM.DHKEM_P256_HKDF_SHA256,
    "p384": hpke.KEM.DHKEM_P384_HKDF_SHA384,
    "p521": hpke.KEM.DHKEM_P521_HKDF_SHA512,
    "x448": hpke.KEM.DHKEM_X448_HKDF_SHA512,
    # Post-quantum, draft-ietf-hpke-pq: Go 1.27 takes them; BoringSSL-based
    # clients use only X25519 configs, so publish one of those too.
    "mlkem768": hpke.KEM.ML_KEM_768,
    "mlkem1024": hpke.KEM.ML_KEM_1024,
    "x25519mlkem768": hpke.KEM.MLKEM768_X25519,
    "mlkem768p256": hpke.KEM.MLKEM768_P256,
    "mlkem1024p384": hpke.KEM.MLKEM1024_P384,
}


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write an RFC 9934 ECH key file and print its base64 ECHConfigList.

    With ``--rotate DIR``, rotate the keys of a key directory instead (see
    :mod:`ech.serve.keyring`) and print the configs to publish.
    """
    if args.rotate is not None:
        return _rotate(args)
    if args.keep is not None or args.retire_after is not None:
        usage_error("keygen", "--keep and --retire-after need --rotate DIR")
    if args.output.exists() and not args.force:
        # A new key in place of the published one: every client holding the
        # old HTTPS record is rejected until DNS catches up.
        usage_error(
            "keygen",
            f"-o {args.output} exists; pass --force to replace it (the"
            " ECHConfigList published for it then stops working), or use"
            " --rotate DIR to rotate keys without breaking clients",
        )
    try:
        key = generate_ech_key(
            args.public_name,
            kem_id=KEMS[args.kem],
            config_id=args.config_id,
            maximum_name_length=args.max_name_length,
        )
        write_ech_key(args.output, key)
    except ValueError as error:
        usage_error("keygen", str(error))
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        usage_error("keygen", f"-o {args.output}: {reason}")
    print(ECHConfigList((key.config,)).to_base64())
    print(
        f"ech keygen: wrote the ECH private key to {args.output} (mode 0600);"
        " publish the ECHConfigList printed on stdout (ech dns-record, or give"
        " it to clients with --ech-config-list)",
        file=sys.stderr,
    )
    return 0


def _warn_short_retirement(retire_after: float | None) -> None:
    """Warn when keys retire sooner than resolvers may hold their configs.

    A client may use a config for as long as a resolver caches the HTTPS
    record carrying it; a key dropped earlier makes its ECH fail, and the
    client pay a retry (RFC 9849 §4.1, §6.1.6; ECH-11).
    """
    from ech.dns.publish import DEFAULT_DNS_TTL  # dnspython, only when needed

    if retire_after is not None and retire_after < DEFAULT_DNS_TTL:
        print(
            f"ech keygen: warning: --retire-after {retire_after:g} is shorter than "
            f"the DNS TTL ech serve --doh and ech dns-record publish "
            f"({DEFAULT_DNS_TTL} s): clients may still hold a retired key's "
            f"config; use --retire-after {DEFAULT_DNS_TTL} or more",
            file=sys.stderr,
        )


def _rotate(args: argparse.Namespace) -> int:
    try:
        rotation = rotate(
            args.rotate,
            args.public_name,
            kem_id=KEMS[args.kem],
            config_id=args.config_id,
            maximum_name_length=args.max_name_length,
            keep=args.keep,
            retire_after=args.retire_after,
        )
    except (KeyringError, ValueError) as error:
        usage_error("keygen", f"--rotate {args.rotate}: {error}")
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        usage_error("keygen", f"--rotate {args.rotate}: {reason}")
    _warn_short_retirement(args.retire_after)
    config_id = rotation.key.config.config_id
    print(f"advertised: {rotation.path} (config_id {config_id})", file=sys.stderr)
    for path in rotation.demoted:
        print(f"accept-only: {path}", file=sys.stderr)
    for path in rotation.removed:
        print(f"removed: {path}", file=sys.stderr)
    print(rotation.published.to_base64())
    return 0


EXAMPLES = """\
examples:
  ech keygen --public-name public.example -o ech.pem > ech.b64
  ech keygen --public-name public.example --rotate keys/ --retire-after 3600
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech keygen`` and its flags."""
    keygen = commands.add_parser(
        "keygen",
        help="make an ECH key file (RFC 9934 PEM)",
        description="Make an ECH key: write the key file (RFC 9934 PEM, mode "
        "0600) and print the base64 ECHConfigList to publish.",
        epilog=EXAMPLES,
    )
    keygen.add_argument(
        "--public-name",
        required=True,
        metavar="NAME",
        help="the name the network sees (the client-facing server's certificate "
        "must cover it)",
    )
    keygen.add_argument(
        "--kem",
        choices=sorted(KEMS),
        default="x25519",
        metavar="KEM",
        help="the HPKE KEM: " + ", ".join(sorted(KEMS)) + " (BoringSSL-based "
        "clients use only x25519)",
    )
    keygen.add_argument(
        "--config-id",
        type=in_range(0, 255),
        metavar="N",
        help="the config_id, 0-255 (default: random)",
    )
    keygen.add_argument(
        "--max-name-length",
        type=in_range(0, 255),
        default=0,
        metavar="N",
        help="pad the inner name to this length (0: the client decides)",
    )
    where = keygen.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the key file here",
    )
    where.add_argument(
        "--rotate",
        type=Path,
        metavar="DIR",
        help="add an advertised key to key directory DIR, demote the others "
        "to accept-only (*.accept.pem); prints the configs to publish",
    )
    keygen.add_argument(
        "--force", action="store_true", help="with -o: replace an existing key file"
    )
    retire = keygen.add_mutually_exclusive_group()
    retire.add_argument(
        "--keep",
        type=non_negative(int),
        metavar="N",
        help="with --rotate: keep the N newest accept-only keys, drop older ones",
    )
    retire.add_argument(
        "--retire-after",
        type=non_negative(float),
        metavar="SECONDS",
        help="with --rotate: drop accept-only keys demoted longer ago "
        "(at least the HTTPS record's TTL)",
    )
    keygen.set_defaults(func=cmd_keygen)
