"""ech.dns.publish: zone-file lines and publication warnings."""

from __future__ import annotations

import re
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.zone
import pytest

from ech import hpke
from ech.cli import main
from ech.config import ECHConfig, ECHConfigList
from ech.dns.publish import (
    DEFAULT_DNS_TTL,
    https_rdata,
    https_record_line,
    warnings_for,
)
from ech.dns.records import endpoint_from_rdata
from ech.keys import generate_ech_key, write_ech_key
from tests.unit.dnsrecords.dns_fakes import p256_configs, x25519_configs


def parse_line(line: str) -> tuple[dns.name.Name, int, dns.rdtypes.svcbbase.SVCBBase]:
    zone = dns.zone.from_text(
        line + "\n", origin="test.", relativize=False, check_origin=False
    )
    ((name, ttl, rdata),) = [
        (n, t, r) for n, t, r in zone.iterate_rdatas(dns.rdatatype.HTTPS)
    ]
    assert isinstance(rdata, dns.rdtypes.svcbbase.SVCBBase)
    return name, ttl, rdata


def test_line_for_port_443() -> None:
    configs = x25519_configs()
    line = https_record_line("example.test", configs)
    assert line == (
        f'example.test. 300 IN HTTPS 1 . alpn="h2,http/1.1" ech="{configs.to_base64()}"'
    )
    name, ttl, rdata = parse_line(line)
    assert (name.to_text(), ttl) == ("example.test.", 300)
    endpoint = endpoint_from_rdata(rdata, name)
    assert endpoint.ech == configs
    assert (endpoint.target, endpoint.port) == ("example.test", 443)


def test_line_for_other_port_uses_prefix_port_param_dot_target_and_hints() -> None:
    """RFC 9460 §9.1; interop.md lesson 4.

    TargetName is ``.``: curl 8.23 ignores ``_PORT._https`` records with any
    other target. The owner has no addresses, so the hints carry them.
    """
    configs = p256_configs()
    line = https_record_line(
        "www.example.test",
        configs,
        port=8443,
        alpn=("h2",),
        priority=2,
        ttl=60,
        ipv4hint=("127.0.0.1",),
        ipv6hint=("::1",),
    )
    assert line == (
        '_8443._https.www.example.test. 60 IN HTTPS 2 . alpn="h2" port="8443"'
        f' ipv4hint="127.0.0.1" ech="{configs.to_base64()}" ipv6hint="::1"'
    )
    name, _, rdata = parse_line(line)
    assert rdata.target == dns.name.root
    endpoint = endpoint_from_rdata(rdata, name, 443)
    assert endpoint.port == 8443
    assert endpoint.target == "_8443._https.www.example.test"  # "." is the owner
    assert endpoint.alpn == ("h2",)
    assert endpoint.ipv4hint == ("127.0.0.1",)
    assert endpoint.ipv6hint == ("::1",)
    assert endpoint.ech == configs


def test_line_for_other_port_without_hints_has_dot_target_and_no_hints() -> None:
    configs = x25519_configs()
    line = https_record_line("www.example.test", configs, port=8443)
    assert line == (
        '_8443._https.www.example.test. 300 IN HTTPS 1 . alpn="h2,http/1.1"'
        f' port="8443" ech="{configs.to_base64()}"'
    )
    assert "hint" not in line
    name, _, rdata = parse_line(line)
    endpoint = endpoint_from_rdata(rdata, name, 8443)
    assert endpoint.target == "_8443._https.www.example.test"
    assert (endpoint.ipv4hint, endpoint.ipv6hint) == ((), ())


def test_explicit_target_for_other_port_is_kept() -> None:
    line = https_record_line(
        "a.test", x25519_configs(), port=9443, target="backend.example.test"
    )
    assert line.startswith("_9443._https.a.test. 300 IN HTTPS 1 backend.example.test. ")


@pytest.mark.requirement("ECH-18")
def test_presentation_value_is_plain_base64() -> None:
    """ECH-18: standard Base64 of the list, no escape sequences."""
    configs = x25519_configs()
    line = https_record_line("example.test", configs, alpn=())
    assert f'ech="{configs.to_base64()}"' in line
    assert "\\" not in line
    assert "alpn" not in line


def test_explicit_target() -> None:
    line = https_record_line("a.test", x25519_configs(), target="svc.example.net")
    assert " 1 svc.example.net. " in line


@pytest.mark.parametrize(
    "kwargs",
    [
        {"priority": 0},
        {"priority": 65536},
        {"port": 0},
        {"ttl": -1},
        {"ipv4hint": ("::1",)},
        {"ipv6hint": ("127.0.0.1",)},
    ],
)
def test_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        https_record_line("a.test", x25519_configs(), **kwargs)  # type: ignore[arg-type]


def test_rdata_without_ech() -> None:
    rdata = https_rdata(None, alpn=("h2",))
    assert rdata.to_text() == '1 . alpn="h2"'


def test_no_warnings_for_the_default_key() -> None:
    assert warnings_for(x25519_configs()) == []
    assert warnings_for(p256_configs()) == []  # has an X25519 config too


def test_warns_without_x25519() -> None:
    p256 = generate_ech_key("public.test", kem_id=hpke.KEM.DHKEM_P256_HKDF_SHA256)
    warnings = warnings_for(ECHConfigList((p256.config,)))
    assert any("BoringSSL" in w for w in warnings)
    assert any("mandatory-to-implement" in w for w in warnings)


def test_warns_for_unusable_and_repeated_configs() -> None:
    unknown = ECHConfig(0xFE0C, None, b"\xfe\x0c\x00\x00")
    key = x25519_configs().configs[0]
    warnings = warnings_for(ECHConfigList((unknown, key, key)))
    assert any("config #0 (version 0xfe0c) is not usable" in w for w in warnings)
    assert any("repeated config_id 1" in w for w in warnings)
    assert not any("BoringSSL" in w for w in warnings)


# -- ech dns-record ----------------------------------------------------------------


HINT_WARNING = (
    "warning: for a port other than 443 give --ipv4hint/--ipv6hint: the"
    " record's owner _8443._https.www.example.test has no addresses\n"
)


def dns_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[str, str]:
    """``ech dns-record www.example.test`` for an X25519 key; (stdout, stderr)."""
    key_path = tmp_path / "ech.pem"
    write_ech_key(key_path, generate_ech_key("public.test", config_id=7))
    status = main(["dns-record", "www.example.test", "--ech-key", str(key_path), *args])
    assert status == 0
    out, err = capsys.readouterr()
    return out, err


def test_dns_record_for_443_needs_no_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = dns_record(tmp_path, capsys)
    assert err == ""
    assert out.startswith('www.example.test. 300 IN HTTPS 1 . alpn="h2,http/1.1" ech=')


def test_dns_record_for_other_port_warns_without_hints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = dns_record(tmp_path, capsys, "--port", "8443")
    assert err == HINT_WARNING
    assert out.startswith(
        '_8443._https.www.example.test. 300 IN HTTPS 1 . alpn="h2,http/1.1"'
        ' port="8443" ech='
    )
    assert "hint" not in out


@pytest.mark.parametrize(
    ("args", "v4", "v6"),
    [
        (["--ipv4hint", "127.0.0.1"], ("127.0.0.1",), ()),
        (["--ipv6hint", "::1"], (), ("::1",)),
        (
            ["--ipv4hint", "192.0.2.1", "--ipv4hint", "192.0.2.2", "--ipv6hint", "::1"],
            ("192.0.2.1", "192.0.2.2"),
            ("::1",),
        ),
    ],
)
def test_dns_record_for_other_port_with_hints(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    v4: tuple[str, ...],
    v6: tuple[str, ...],
) -> None:
    out, err = dns_record(tmp_path, capsys, "--port", "8443", *args)
    assert err == ""
    name, _, rdata = parse_line(out.strip())
    assert name.to_text() == "_8443._https.www.example.test."
    assert rdata.target == dns.name.root
    endpoint = endpoint_from_rdata(rdata, name, 8443)
    assert endpoint.target == "_8443._https.www.example.test"
    assert (endpoint.port, endpoint.ipv4hint, endpoint.ipv6hint) == (8443, v4, v6)


def test_dns_record_rejects_a_bad_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "ech.pem"
    assert main(["keygen", "--public-name", "public.test", "-o", str(key)]) == 0
    capsys.readouterr()
    args = ["--port", "8443", "--ipv4hint", "::1"]
    with pytest.raises(SystemExit) as leaving:
        main(["dns-record", "www.example.test", "--ech-key", str(key), *args])
    assert leaving.value.code == 2
    assert re.match(r"^ech dns-record: error: .*::1", capsys.readouterr().err)


def ech_of(line: str) -> ECHConfigList:
    """The ``ech`` SvcParam of a printed record line."""
    name, _, rdata = parse_line(line.strip())
    endpoint = endpoint_from_rdata(rdata, name, 443)
    assert endpoint.ech is not None
    return endpoint.ech


def test_dns_record_publishes_what_keygen_rotate_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--ech-key-dir`` reads the directory as ``ech serve`` does: the
    advertised keys, not the accept-only ones ``--rotate`` demoted."""
    keys = tmp_path / "keys"
    for _ in range(2):
        assert (
            main(["keygen", "--public-name", "public.test", "--rotate", str(keys)]) == 0
        )
    printed, _ = capsys.readouterr()
    published = ECHConfigList.from_base64(printed.splitlines()[-1])
    assert len(list(keys.glob("*.accept.pem"))) == 1
    assert main(["dns-record", "www.example.test", "--ech-key-dir", str(keys)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert ech_of(out) == published
    assert len(published.configs) == 1


def test_dns_record_ttl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = dns_record(tmp_path, capsys)
    assert out.split()[1] == str(DEFAULT_DNS_TTL)
    out, _ = dns_record(tmp_path, capsys, "--ttl", "42")
    assert out.split()[1] == "42"


def test_dns_record_help_names_the_shared_default_ttl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The help states the number without importing it (dnspython stays unloaded)."""
    with pytest.raises(SystemExit):
        main(["dns-record", "--help"])
    assert f"default {DEFAULT_DNS_TTL}," in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("make", ["nothing", "empty-dir", "not-a-key"])
def test_dns_record_without_a_key_says_which_flag(
    tmp_path: Path, make: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["dns-record", "www.example.test"]
    if make == "empty-dir":
        args += ["--ech-key-dir", str(tmp_path)]
    elif make == "not-a-key":
        (tmp_path / "cert.pem").write_text("not a key\n")
        args += ["--ech-key-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as leaving:
        main(args)
    assert leaving.value.code == 2  # a usage error
    message = capsys.readouterr().err
    assert message.startswith("ech dns-record: error: ")
    expected = {
        "nothing": "--ech-key-dir DIR",
        "empty-dir": f"no ECH key (*.pem) in {tmp_path}",
        "not-a-key": str(tmp_path / "cert.pem"),
    }[make]
    assert expected in message
