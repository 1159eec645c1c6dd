"""ech.config: ECHConfigList codec and client-side validation (RFC 9849 §4, §6.1.7)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ech import hpke
from ech.config import (
    ECH_VERSION,
    ECHConfig,
    ECHConfigContents,
    ECHConfigExtension,
    ECHConfigList,
    HpkeSymmetricCipherSuite,
    InvalidECHConfigList,
    is_valid_public_name,
)
from ech.errors import DecodeError
from ech.tls.wire import Writer

MTI = HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
CHACHA = HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
X25519_PK = bytes(range(1, 33))

OPENSSL_LIST = "AD7+DQA6bAAgACCY7B0f/3KvHIFdoqFaObdU8YYU+MdBf4vzbLhAAL2QCwAEAAEAAQALZXhhbXBsZS5jb20AAA=="  # noqa: E501
# Published ECHConfigLists (RFC 9848 §3's example, OpenSSL's test/ech_test.c,
# defo.ie's and Cloudflare's), decoded by hand: base64, config_id,
# maximum_name_length, public_name.
KNOWN_LISTS = [
    pytest.param(
        "AEj+DQBEAQAgACAdd+scUi0IYFsXnUIU7ko2Nd9+F8M26pAGZVpz/KrWPgAEAAEAAWQVZWNoLXNpdGVzLmV4YW1wbGUubmV0AAA=",
        1,
        100,
        "ech-sites.example.net",
        id="rfc9848-example",
    ),
    pytest.param(
        OPENSSL_LIST,
        108,
        0,
        "example.com",
        id="openssl-ech_test",
    ),
    pytest.param(
        "AEb+DQBCqQAgACBlm7cfDx/gKuUAwRTe+Y9MExbIyuLpLcgTORIdi69uewAEAAEAAQATcHVibGljLnRlc3QuZGVmby5pZQAA",
        169,
        0,
        "public.test.defo.ie",
        id="defo",
    ),
    pytest.param(
        "AEX+DQBBrAAgACCInfIgdvp+4xqPkMYvPt1Rv7zxtllWm3SjIjWxBoEgfAAEAAEAAQASY2xvdWRmbGFyZS1lY2guY29tAAA=",
        172,
        0,
        "cloudflare-ech.com",
        id="cloudflare",
    ),
]


def make_contents(**changes: object) -> ECHConfigContents:
    base = ECHConfigContents(
        config_id=7,
        kem_id=hpke.KEM.DHKEM_X25519_HKDF_SHA256,
        public_key=X25519_PK,
        cipher_suites=(MTI,),
        maximum_name_length=0,
        public_name=b"public.example",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def make_config(**changes: object) -> ECHConfig:
    return ECHConfig.from_contents(make_contents(**changes))


def config_list_bytes(*configs: bytes) -> bytes:
    w = Writer()
    with w.vector(2):
        for c in configs:
            w.raw(c)
    return w.getvalue()


def raw_config(version: int, body: bytes) -> bytes:
    w = Writer()
    w.u16(version)
    w.opaque(2, body)
    return w.getvalue()


# --- known lists -------------------------------------------------------------


@pytest.mark.requirement("ECH-1", "ECH-2", "ECH-3", "ECH-4")
@pytest.mark.parametrize(("b64", "config_id", "max_len", "name"), KNOWN_LISTS)
def test_known_lists_decode_and_reencode(
    b64: str, config_id: int, max_len: int, name: str
) -> None:
    """ECH-1 to ECH-4: the wire layout; re-encoding is byte-exact."""
    lst = ECHConfigList.from_base64(b64)
    assert len(lst.configs) == 1
    cfg = lst.configs[0]
    assert cfg.version == ECH_VERSION
    assert cfg.contents is not None
    assert cfg.config_id == config_id
    assert cfg.contents.maximum_name_length == max_len
    assert cfg.public_name == name
    assert cfg.contents.kem_id == hpke.KEM.DHKEM_X25519_HKDF_SHA256
    assert cfg.contents.cipher_suites == (MTI,)
    assert cfg.contents.extensions == ()
    assert len(cfg.contents.public_key) == 32
    assert cfg.unsupported_reason() is None
    assert lst.usable() == (cfg,)
    assert cfg.select_suite() == MTI
    assert lst.to_base64() == b64
    raw = base64.b64decode(b64)
    assert lst.encode() == raw
    assert ECHConfig.from_contents(cfg.contents).raw == cfg.raw
    assert cfg.encode() == cfg.raw
    assert ECHConfigList.parse(raw) == lst


@pytest.mark.requirement("ECH-37")
def test_hpke_info_is_single_config() -> None:
    """ECH-37: info = "tls ech" || 0x00 || the one ECHConfig, not the list."""
    cfg = ECHConfigList.from_base64(OPENSSL_LIST).configs[0]
    assert cfg.hpke_info() == b"tls ech\x00" + cfg.raw
    assert cfg.raw[:2] == b"\xfe\x0d"


# --- skipping and usability ---------------------------------------------------


@pytest.mark.requirement("ECH-5")
def test_unknown_version_is_kept_and_skipped() -> None:
    """ECH-5: an unknown version is skipped, not fatal, and re-encodes."""
    good = make_config()
    unknown = raw_config(0xFE0C, b"\x01\x02\x03 anything at all")
    data = config_list_bytes(unknown, good.raw)
    lst = ECHConfigList.parse(data)
    assert lst.encode() == data
    assert lst.configs[0].version == 0xFE0C
    assert lst.configs[0].contents is None
    assert lst.configs[0].unsupported_reason() == "unsupported version 0xfe0c"
    assert lst.configs[0].select_suite() is None
    assert lst.usable() == (good,)
    with pytest.raises(ValueError, match="version"):
        _ = lst.configs[0].public_name
    with pytest.raises(ValueError, match="version"):
        _ = lst.configs[0].config_id


@pytest.mark.requirement("ECH-6")
def test_unknown_kem_parses_but_is_unusable() -> None:
    """ECH-6."""
    cfg = make_config(kem_id=0x0040, public_key=b"\x00" * 800)
    lst = ECHConfigList.parse(ECHConfigList((cfg,)).encode())
    assert lst.configs[0].contents == cfg.contents
    assert cfg.unsupported_reason() == "unsupported KEM 0x0040"
    assert lst.usable() == ()


def test_public_key_length_must_match_kem() -> None:
    assert make_config(public_key=bytes(31)).unsupported_reason() is not None
    assert make_config(public_key=bytes(65)).unsupported_reason() is not None


@pytest.mark.requirement("ECH-7")
def test_no_supported_suite_is_unusable() -> None:
    """ECH-7: a KEM alone is not enough; export-only AEAD cannot seal."""
    cfg = make_config(
        cipher_suites=(
            HpkeSymmetricCipherSuite(1, 0xFFFF),
            HpkeSymmetricCipherSuite(0x0010, 1),
        )
    )
    assert cfg.unsupported_reason() == "no supported HPKE cipher suite"
    assert cfg.select_suite() is None


@pytest.mark.requirement("ECH-7")
def test_select_suite_only_listed_suites() -> None:
    """ECH-7: never a suite the config does not list."""
    unknown = HpkeSymmetricCipherSuite(1, 0x0099)
    cfg = make_config(cipher_suites=(unknown, CHACHA, MTI))
    assert cfg.unsupported_reason() is None
    assert cfg.select_suite() == CHACHA  # first listed that we support
    assert cfg.select_suite([MTI, CHACHA]) == MTI
    aes256 = HpkeSymmetricCipherSuite(1, hpke.AEAD.AES_256_GCM)
    assert cfg.select_suite([aes256]) is None  # supported by us, but not listed
    assert cfg.select_suite([unknown]) is None  # listed, but not supported
    assert cfg.select_suite([]) is None


@pytest.mark.requirement("ECH-8")
def test_duplicate_extension_types_unusable() -> None:
    """ECH-8."""
    ext = ECHConfigExtension(0x1A1A, b"")
    cfg = make_config(extensions=(ext, ECHConfigExtension(0x0001, b"x"), ext))
    assert cfg.unsupported_reason() == "duplicate extension type 0x1a1a"
    # Parses fine: duplicates are a meaning check, not a codec one.
    assert ECHConfigList.parse(ECHConfigList((cfg,)).encode()).configs == (cfg,)


@pytest.mark.requirement("ECH-9", "ECH-15")
def test_mandatory_extension_unusable_optional_ignored() -> None:
    """ECH-9 (and ECH-15/#16: GREASE types with the high bit clear/set)."""
    optional = make_config(
        extensions=(ECHConfigExtension(0x1A1A, b"grease"), ECHConfigExtension(7, b""))
    )
    assert optional.unsupported_reason() is None
    mandatory = make_config(
        extensions=(ECHConfigExtension(0x1A1A, b""), ECHConfigExtension(0x8A8A, b""))
    )
    assert mandatory.unsupported_reason() == "unsupported mandatory extension 0x8a8a"
    assert make_config(
        extensions=(ECHConfigExtension(0x8000, b""),)
    ).unsupported_reason() == ("unsupported mandatory extension 0x8000")
    lst = ECHConfigList((mandatory, optional))
    assert ECHConfigList.parse(lst.encode()).usable() == (optional,)


@pytest.mark.requirement("ECH-13", "ECH-14")
def test_invalid_public_name_unusable() -> None:
    """ECH-13, ECH-14 via unsupported_reason."""
    assert make_config(public_name=b"1.2.3.4").unsupported_reason() == (
        "invalid public_name"
    )
    assert make_config(public_name=b"bad_name.example").unsupported_reason() == (
        "invalid public_name"
    )


@pytest.mark.requirement("ECH-4")
def test_usable_keeps_list_order() -> None:
    """ECH-4: list order is the server's preference order."""
    a, b = make_config(config_id=1), make_config(config_id=2)
    bad = make_config(config_id=3, kem_id=0x9999)
    lst = ECHConfigList((bad, b, a))
    assert ECHConfigList.parse(lst.encode()).usable() == (b, a)


# --- public_name rules ----------------------------------------------------------

VALID_NAMES = [
    b"example.com",
    b"public.example",
    b"localhost",
    b"a",
    b"xn--bcher-kva.example",
    b"1example.com",
    b"123.example.com",
    b"EXAMPLE.COM",
    b"a-b.c-d.ef",
    b"example.0xg",  # not hex after 0x: not an IPv4 literal
    b"example.1a",
    b"example.x0",
    b"a" * 63 + b".com",
    b".".join([b"a" * 63] * 3) + b"." + b"a" * 61,  # 253 octets
]
INVALID_NAMES = [
    b"",
    b".",
    b"a..b",
    b".a",
    b"a.",
    b"example.com.",
    b"-a.com",
    b"a-.com",
    b"a.-com",
    b"a.com-",
    b"a_b.com",
    b"a b.com",
    b"a*.com",
    b"\xc3\xa9.com",
    b"a\x00.com",
    b"1.2.3.4",
    b"123",
    b"example.123",
    b"example.0x1f",
    b"example.0X1F",
    b"example.0x",
    b"0x7f000001",
    b"a" * 64 + b".com",
    b".".join([b"a" * 63] * 3) + b"." + b"a" * 62,  # 254 octets
]


@pytest.mark.requirement("ECH-13", "ECH-14")
@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_public_names(name: bytes) -> None:
    """ECH-13, ECH-14."""
    assert is_valid_public_name(name)


@pytest.mark.requirement("ECH-13", "ECH-14")
@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_public_names(name: bytes) -> None:
    """ECH-13 (LDH, label lengths, dots) and ECH-14 (IPv4-looking last label)."""
    assert not is_valid_public_name(name)


# --- malformed lists ------------------------------------------------------------

GOOD_RAW = make_config().raw


def _contents_body(suites: bytes) -> bytes:
    w = Writer()
    w.u8(1)
    w.u16(0x20)
    w.opaque(2, X25519_PK)
    w.opaque(2, suites)
    w.u8(0)
    w.opaque(1, b"example.com")
    w.opaque(2, b"")
    return w.getvalue()


MALFORMED = [
    pytest.param(b"", id="empty-input"),
    pytest.param(b"\x00", id="short-length"),
    pytest.param(b"\x00\x00", id="empty-list"),  # ECH-4: at least one config
    pytest.param(config_list_bytes(GOOD_RAW)[:-1], id="truncated"),
    pytest.param(config_list_bytes(GOOD_RAW) + b"\x00", id="trailing-bytes"),
    pytest.param(config_list_bytes(GOOD_RAW, b"\xfe\x0d\x00"), id="truncated-header"),
    pytest.param(
        config_list_bytes(
            raw_config(ECH_VERSION, _contents_body(b"\x00\x01\x00\x01\x00\x01"))
        ),
        id="suites-not-multiple-of-4",
    ),
    pytest.param(
        config_list_bytes(raw_config(ECH_VERSION, _contents_body(b"\x00\x01\x00"))),
        id="suites-3-bytes",
    ),
    pytest.param(
        config_list_bytes(raw_config(ECH_VERSION, _contents_body(b""))),
        id="no-suites",
    ),
    pytest.param(
        config_list_bytes(
            raw_config(ECH_VERSION, _contents_body(b"\x00\x01\x00\x01") + b"\x00")
        ),
        id="trailing-inside-contents",
    ),
    pytest.param(
        config_list_bytes(
            raw_config(ECH_VERSION, _contents_body(b"\x00\x01\x00\x01")[:-1])
        ),
        id="contents-too-short",
    ),
    pytest.param(
        config_list_bytes(
            raw_config(ECH_VERSION, make_contents(public_name=b"").encode())
        ),
        id="empty-public-name",
    ),
    pytest.param(
        config_list_bytes(
            raw_config(ECH_VERSION, make_contents(public_key=b"").encode())
        ),
        id="empty-public-key",
    ),
    pytest.param(
        config_list_bytes(
            raw_config(
                ECH_VERSION,
                make_contents().encode()[:-2] + b"\x00\x03\x00\x01\x00",
            )
        ),
        id="truncated-extension",
    ),
]


@pytest.mark.requirement("ECH-1", "ECH-2", "ECH-3", "ECH-4")
@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_lists_raise_decode_error(data: bytes) -> None:
    """ECH-1 to ECH-4; DecodeError is what EE retry_configs need."""
    with pytest.raises(DecodeError):
        ECHConfigList.parse(data)
    with pytest.raises(InvalidECHConfigList):
        ECHConfigList.from_base64(base64.b64encode(data).decode())


def test_good_contents_body_parses() -> None:
    """The MALFORMED builders are right apart from the one defect."""
    data = config_list_bytes(
        raw_config(ECH_VERSION, _contents_body(b"\x00\x01\x00\x01"))
    )
    assert ECHConfigList.parse(data).configs[0].public_name == "example.com"
    assert ECHConfigList.parse(config_list_bytes(GOOD_RAW)).configs[0].raw == GOOD_RAW


@pytest.mark.parametrize("text", ["not base64!", "AAE", "AD7+DQ A6", "\u00e9"])
def test_from_base64_bad_base64(text: str) -> None:
    with pytest.raises(InvalidECHConfigList):
        ECHConfigList.from_base64(text)
    assert issubclass(InvalidECHConfigList, ValueError)


def test_encode_rejects_empty_list_and_oversized_fields() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ECHConfigList(()).encode()
    with pytest.raises(ValueError):
        make_contents(public_name=b"a" * 256).encode()


# --- properties -----------------------------------------------------------------


@given(st.binary(max_size=300))
def test_random_bytes_parse_or_decode_error(data: bytes) -> None:
    try:
        lst = ECHConfigList.parse(data)
    except DecodeError:
        return
    assert lst.encode() == data
    for cfg in lst.configs:
        cfg.unsupported_reason()  # never raises


@given(st.binary(min_size=4, max_size=200))
def test_random_list_body_parse_or_decode_error(body: bytes) -> None:
    """Random bytes behind a correct outer length: reaches the inner parsers."""
    data = config_list_bytes(b"\xfe\x0d" + len(body).to_bytes(2, "big") + body)
    try:
        lst = ECHConfigList.parse(data)
    except DecodeError:
        return
    assert lst.encode() == data


suites_st = st.lists(
    st.builds(
        HpkeSymmetricCipherSuite,
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
    ),
    min_size=1,
    max_size=5,
).map(tuple)
extensions_st = st.lists(
    st.builds(ECHConfigExtension, st.integers(0, 0xFFFF), st.binary(max_size=20)),
    max_size=4,
).map(tuple)
contents_st = st.builds(
    ECHConfigContents,
    config_id=st.integers(0, 255),
    kem_id=st.integers(0, 0xFFFF),
    public_key=st.binary(min_size=1, max_size=140),
    cipher_suites=suites_st,
    maximum_name_length=st.integers(0, 255),
    public_name=st.binary(min_size=1, max_size=255),
    extensions=extensions_st,
)


@given(st.lists(contents_st, min_size=1, max_size=4))
def test_generated_configs_round_trip(contents: list[ECHConfigContents]) -> None:
    lst = ECHConfigList(tuple(ECHConfig.from_contents(c) for c in contents))
    parsed = ECHConfigList.parse(lst.encode())
    assert parsed == lst
    assert [c.contents for c in parsed.configs] == contents
    assert ECHConfigList.from_base64(lst.to_base64()) == lst
