"""``ech probe``: test any ECH server against RFC 9849 and RFC 8446, check by check.

The probe connects many times, each time with a ClientHello built to
exercise one requirement (:mod:`ech.probe.server_checks`), and reports for
each check its id, requirement numbers (``ECH-N``), RFC section, result, and on failure
what was expected and what came back. Exit status 0 only when every check
that applies passes.
"""

from __future__ import annotations

import argparse
import json
import sys

from ech.arguments import ca_file, config_list, host_port, server_name
from ech.client.config import ClientConfig
from ech.config import ECHConfigList
from ech.probe.attempt import Target
from ech.probe.report import Report
from ech.probe.server_checks import ServerProbe, run_checks
from ech.tls.enums import NamedGroup

#: ALPN over QUIC unless ``--alpn`` says otherwise (HTTP/3, RFC 9114 §3.1).
QUIC_ALPN = ("h3",)


def probe_server(
    target: Target,
    server_name: str,
    configs: ECHConfigList,
    *,
    cafile: str | None = None,
    alpn: tuple[str, ...] = (),
    only: list[str] | None = None,
) -> Report:
    """Run the server checks against ``target``; the report.

    Args:
        target: the server, its transport and the silence timeout.
        server_name: the name served behind ECH (``--sni``).
        configs: the server's published ECHConfigList.
        cafile: CA certificates to verify the server with (None: system).
        alpn: ALPN protocols to offer (over QUIC, ``h3`` by default).
        only: check ids (or prefixes before a dash) to run; None runs all.
    """
    if target.quic and not alpn:
        alpn = QUIC_ALPN
    base = ClientConfig(
        cafile=cafile,
        alpn_protocols=alpn,
        # One X25519 share keeps each attempt cheap; the server may still
        # pick another group, or ask for one (RFC 8446 §4.2.8).
        key_share_groups=(NamedGroup.X25519,),
    )
    probe = ServerProbe(target, server_name, configs, base)
    report = Report("server", f"{target.host}:{target.port}", target.transport)
    report.facts["server_name"] = server_name
    if probe.config is not None:
        report.facts["public_name"] = probe.config.public_name
        report.facts["config_id"] = probe.config.config_id
    report.facts["ech_config_list"] = configs.to_base64()
    report.results = run_checks(probe, only)
    return report


def _resolve(args: argparse.Namespace) -> ECHConfigList | None:
    """The configs from ``--ech-config-list``, or looked up over ``--doh``."""
    if args.ech_config_list is not None:
        configs: ECHConfigList = args.ech_config_list
        return configs
    from ech.dns.resolver import DNSLookupError, DoHResolver

    _, port = args.address
    try:
        with DoHResolver(args.doh, cafile=args.ca) as resolver:
            return resolver.resolve_https(args.sni, port).ech_configs()
    except DNSLookupError as error:
        print(f"ech probe: DoH lookup failed: {error}", file=sys.stderr)
        return None


def cmd_probe(args: argparse.Namespace) -> int:
    """Run ``ech probe``; 0 iff every check that applies passed."""
    if (args.ech_config_list is None) == (args.doh is None):
        print("ech probe: give --ech-config-list or --doh", file=sys.stderr)
        return 2
    configs = _resolve(args)
    if configs is None:
        print("ech probe: no ECH configs for that name", file=sys.stderr)
        return 2
    host, port = args.address
    target = Target(host, port, "quic" if args.quic else "tcp", args.timeout)
    report = probe_server(
        target,
        args.sni,
        configs,
        cafile=args.ca,
        alpn=tuple(args.alpn or ()),
        only=args.only,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render())
    return 0 if report.ok else 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech probe`` and its flags."""
    probe = commands.add_parser(
        "probe", help="test an ECH server against RFC 9849, check by check"
    )
    probe.add_argument("address", type=host_port, metavar="HOST:PORT")
    probe.add_argument(
        "--sni",
        required=True,
        type=server_name,
        help="the name the server serves behind ECH",
    )
    probe.add_argument(
        "--ech-config-list",
        type=config_list,
        metavar="B64|@FILE",
        help="the server's ECHConfigList",
    )
    probe.add_argument(
        "--doh", metavar="URL", help="look the configs up over DoH (RFC 8484)"
    )
    probe.add_argument(
        "--ca", type=ca_file, metavar="CA.pem", help="CA to verify the server with"
    )
    probe.add_argument(
        "--quic", action="store_true", help="probe over QUIC (RFC 9001), ALPN h3"
    )
    probe.add_argument("--alpn", action="append", metavar="ID")
    probe.add_argument(
        "--only",
        nargs="+",
        metavar="ID",
        help="run these checks (an id, or a prefix such as hrr)",
    )
    probe.add_argument(
        "--timeout", type=float, default=5.0, help="seconds of silence per attempt"
    )
    probe.add_argument("--json", action="store_true", help="one JSON object")
    probe.set_defaults(func=cmd_probe)


__all__ = ["add_parser", "cmd_probe", "probe_server"]
