"""``ech fuzz``: the argparse wiring, kept apart from the engine.

:func:`add_fuzz_command` adds the subcommand to ``ech``'s parser;
:func:`run_fuzz` runs it. Neither imports hypothesis until it runs, so the
``ech`` command works without the ``testing`` extra until someone fuzzes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ech.arguments import ca_file, config_list, host_port, positive, server_name

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2

_EPILOG = """\
Each example opens one TCP connection and sends an ECH ClientHello built by
our client for the given config: valid, broken (the server must answer with
a fatal alert) or tampered (the server must not accept ECH). A violation is
shrunk to a minimal example and written to --out as a reproducer; replay it
with: ech fuzz --replay FILE HOST:PORT. --examples and --seconds
bound the search; shrinking a violation takes at most hypothesis' own limit
(minutes). Exit status: 0 no violation, 1 a violation (or the reproducer
still reproduces), 2 usage.
Only point it at servers you run: loopback or a test namespace.
"""


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``ech fuzz``'s arguments to ``parser``."""
    parser.add_argument("address", type=host_port, metavar="HOST:PORT")
    parser.add_argument(
        "--sni", type=server_name, help="the inner server name to ask for"
    )
    parser.add_argument("--ech-config-list", type=config_list, metavar="B64|@FILE")
    parser.add_argument(
        "--ca", type=ca_file, metavar="CA.pem", help="verify the server with it"
    )
    parser.add_argument("--examples", type=positive(int), default=200, metavar="N")
    parser.add_argument("--seconds", type=positive(float), default=300.0, metavar="S")
    parser.add_argument("--seed", type=int, metavar="N", help="reproducible run")
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=5.0,
        metavar="S",
        help="seconds the server has to answer each flight (default 5)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON report")
    parser.add_argument("--out", type=Path, default=Path("ech-fuzz-out"), metavar="DIR")
    parser.add_argument(
        "--replay", type=Path, metavar="FILE", help="replay a reproducer instead"
    )
    parser.set_defaults(func=run_fuzz)
    return parser


def add_fuzz_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``fuzz`` on ``ech``'s subcommands (an ``add_subparsers()`` result)."""
    parser = subparsers.add_parser(
        "fuzz",
        help="fuzz a live ECH server with hypothesis",
        description="Fuzz a live ECH server (RFC 9849) with hypothesis.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return configure_parser(parser)


def run_fuzz(args: argparse.Namespace) -> int:
    """Run ``ech fuzz`` (or its ``--replay``); return the exit status."""
    try:
        from ech.fuzz import engine, replay
    except ImportError as error:  # hypothesis is the testing extra's
        print(
            f"ech fuzz needs hypothesis: pip install 'tls-ech[testing]' ({error})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    host, port = args.address
    if args.replay is not None:
        try:
            replayed = replay.replay(args.replay, host, port, args.timeout)
        except (OSError, ValueError, KeyError) as error:
            print(f"ech fuzz: cannot replay: {error}", file=sys.stderr)
            return EXIT_USAGE
        _print(args, replayed.to_json(), _replay_text(replayed.to_json()))
        return EXIT_VIOLATION if replayed.reproduced else EXIT_OK
    if args.sni is None or args.ech_config_list is None:
        print("ech fuzz: --sni and --ech-config-list are required", file=sys.stderr)
        return EXIT_USAGE
    target = engine.Target(
        host, port, args.sni, args.ech_config_list, args.ca, args.timeout
    )
    try:
        target.config  # noqa: B018  # fail early on an unusable list
    except ValueError as error:
        print(f"ech fuzz: {error}", file=sys.stderr)
        return EXIT_USAGE
    result = engine.run(
        target, examples=args.examples, seconds=args.seconds, seed=args.seed
    )
    report: dict[str, Any] = {"target": f"{host}:{port}", **result.to_json()}
    if result.violation is not None:
        path = replay.write_reproducer(args.out, target, result.violation)
        report["reproducer"] = str(path)
        report["replay"] = f"ech fuzz --replay {path} {host}:{port}"
    _print(args, report, _run_text(report))
    if result.violation is not None or not result.healthy:
        return EXIT_VIOLATION
    return EXIT_OK


def _print(args: argparse.Namespace, report: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(text)


def _run_text(report: dict[str, Any]) -> str:
    lines = [
        f"ech fuzz {report['target']}: {report['examples']} examples in "
        f"{report['seconds']} s",
        "  sent:    "
        + ", ".join(f"{k} {v}" for k, v in sorted(report["kinds"].items())),
        "  answers: "
        + ", ".join(f"{k} {v}" for k, v in sorted(report["answers"].items())),
    ]
    for mismatch, count in sorted(report["alert_mismatches"].items()):
        lines.append(f"  note: other alert than the RFC names: {mismatch} ({count})")
    for mutation, count in sorted(report["lenient_accepted"].items()):
        lines.append(f"  note: answered (no duty to refuse): {mutation} ({count})")
    for note, count in sorted(report["notes"].items()):
        lines.append(f"  note: {note} ({count})")
    violation = report["violation"]
    if violation is None:
        lines.append("  no invariant violated")
    else:
        lines.append(
            f"  VIOLATION {violation['invariant']}: {violation['detail']}"
            f" [{violation['kind']}: {violation['mutation'] or 'no mutation'}]"
        )
        lines.append(f"  reproducer: {report['reproducer']}")
        lines.append(f"  replay: {report['replay']}")
    health = "ok" if report["healthy"] else "FAILED"
    lines.append(f"  after the run: {health} ({report['health_detail']})")
    return "\n".join(lines)


def _replay_text(report: dict[str, Any]) -> str:
    state = "reproduced" if report["reproduced"] else "did not reproduce"
    return (
        f"replay {report['invariant']}: {state}; the server answered "
        f"{report['answer']} ({report['detail']})"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m ech.fuzz ...``: the same arguments as ``ech fuzz``."""
    parser = argparse.ArgumentParser(
        prog="python -m ech.fuzz",
        description="Fuzz a live ECH server (RFC 9849) with hypothesis.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    args = configure_parser(parser).parse_args(argv)
    return run_fuzz(args)


__all__ = ["add_fuzz_command", "configure_parser", "main", "run_fuzz"]
