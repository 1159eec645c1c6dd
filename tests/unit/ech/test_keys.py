"""ech.keys: ECH key generation and the RFC 9934 PEM file."""

from __future__ import annotations

import base64
import itertools
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ech import hpke
from ech.config import (
    ECHConfig,
    ECHConfigExtension,
    ECHConfigList,
    HpkeSymmetricCipherSuite,
    InvalidECHConfigList,
)
from ech.keys import (
    DEFAULT_SUITES,
    ECHKey,
    generate_ech_key,
    load_ech_key,
    parse_ech_pem,
    write_ech_key,
)

ALL_KEMS = list(hpke.KEM)

# OpenSSL test/ech_test.c ``pem_pk1`` (its ``pem_kp1`` private key
# matches): the list alone.
OPENSSL_LIST_B64 = (
    "AD7+DQA6bAAgACCY7B0f/3KvHIFdoqFaObdU8YYU+MdBf4vzbLhAAL2QCwAEAAEA"
    "AQALZXhhbXBsZS5jb20AAA=="
)
# OpenSSL test/ech_test.c ``pem_kp1``: a published *test* key pair in the
# RFC 9934 layout, written by another implementation.
OPENSSL_PEM_KP1 = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEILDIeo9Eqc4K9/uQ0PNAyMaP60qrxiSHT2tNZL3ksIZS
-----END PRIVATE KEY-----
-----BEGIN ECHCONFIG-----
AD7+DQA6bAAgACCY7B0f/3KvHIFdoqFaObdU8YYU+MdBf4vzbLhAAL2QCwAEAAEA
AQALZXhhbXBsZS5jb20AAA==
-----END ECHCONFIG-----
"""


def counter_random(values: list[int]) -> Callable[[int], bytes]:
    it = iter(values)

    def random(n: int) -> bytes:
        assert n == 1
        return bytes([next(it)])

    return random


@pytest.mark.requirement("ECH-37")
@pytest.mark.parametrize("kem", ALL_KEMS, ids=lambda k: k.name)
def test_generate_every_kem(kem: hpke.KEM) -> None:
    key = generate_ech_key("public.example", kem_id=kem)
    contents = key.config.contents
    assert contents is not None
    assert contents.kem_id == kem
    assert contents.public_key == key.private_key.public_key_bytes()
    assert len(contents.public_key) == hpke.public_key_length(kem)
    assert contents.cipher_suites == DEFAULT_SUITES
    assert key.config.public_name == "public.example"
    assert key.config.unsupported_reason() is None
    # The generated config works end to end with its own key (ECH-37).
    suite = key.config.select_suite()
    assert suite is not None
    info = key.config.hpke_info()
    enc, sender = hpke.setup_base_sender(
        kem, suite.kdf_id, suite.aead_id, contents.public_key, info
    )
    recipient = hpke.setup_base_recipient(
        kem, suite.kdf_id, suite.aead_id, enc, key.private_key, info
    )
    assert recipient.open(b"aad", sender.seal(b"aad", b"inner")) == b"inner"


@pytest.mark.requirement("ECH-17")
def test_default_suites_mti_first() -> None:
    """ECH-17: DHKEM(X25519)+HKDF-SHA256+AES-128-GCM is the default."""
    assert DEFAULT_SUITES[0] == HpkeSymmetricCipherSuite(1, 1)
    assert DEFAULT_SUITES[1] == HpkeSymmetricCipherSuite(1, 3)
    key = generate_ech_key("public.example")
    assert key.config.contents is not None
    assert key.config.contents.kem_id == hpke.KEM.DHKEM_X25519_HKDF_SHA256


@pytest.mark.parametrize("kem", ALL_KEMS, ids=lambda k: k.name)
def test_pem_round_trip(kem: hpke.KEM, tmp_path: Path) -> None:
    key = generate_ech_key(
        "public.example",
        kem_id=kem,
        maximum_name_length=42,
        extensions=(ECHConfigExtension(0x2A2A, b"grease"),),
    )
    pem = key.to_pem()
    back = parse_ech_pem(pem)
    assert back == key
    assert back.config.raw == key.config.raw
    assert back.private_key.to_bytes() == key.private_key.to_bytes()
    path = tmp_path / "ech.pem"
    write_ech_key(path, key)
    assert path.read_bytes() == pem
    assert load_ech_key(path) == key
    assert load_ech_key(str(path)) == key


def test_pem_structure() -> None:
    """RFC 9934 §3: PRIVATE KEY block, then ECHCONFIG with the u16-prefixed list."""
    key = generate_ech_key(
        "public.example", extensions=(ECHConfigExtension(7, bytes(60)),)
    )
    lines = key.to_pem().decode("ascii").splitlines()
    begins = [line for line in lines if line.startswith("-----BEGIN ")]
    ends = [line for line in lines if line.startswith("-----END ")]
    assert begins == ["-----BEGIN PRIVATE KEY-----", "-----BEGIN ECHCONFIG-----"]
    assert ends == ["-----END PRIVATE KEY-----", "-----END ECHCONFIG-----"]
    start = lines.index("-----BEGIN ECHCONFIG-----") + 1
    end = lines.index("-----END ECHCONFIG-----")
    body = lines[start:end]
    assert len(body) > 1  # long enough to wrap
    assert all(len(line) == 64 for line in body[:-1])
    assert 0 < len(body[-1]) <= 64
    data = base64.b64decode("".join(body))
    assert data == ECHConfigList((key.config,)).encode()
    assert int.from_bytes(data[:2], "big") == len(data) - 2


def test_write_mode_0600(tmp_path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("POSIX modes")
    key = generate_ech_key("public.example")
    new = tmp_path / "new.pem"
    old_umask = os.umask(0)
    try:
        write_ech_key(new, key)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    existing = tmp_path / "existing.pem"
    existing.write_bytes(b"x" * 10_000)
    existing.chmod(0o644)
    write_ech_key(existing, key)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    assert existing.read_bytes() == key.to_pem()


def test_openssl_list_only() -> None:
    """OpenSSL's published vector: config id 108, public_name example.com."""
    lst = ECHConfigList.from_base64(OPENSSL_LIST_B64)
    (cfg,) = lst.configs
    assert cfg.config_id == 108
    assert cfg.public_name == "example.com"
    assert cfg.unsupported_reason() is None
    # Without its private key the list alone is not a key file.
    pem = (
        b"-----BEGIN ECHCONFIG-----\n"
        + OPENSSL_LIST_B64.encode()
        + b"\n-----END ECHCONFIG-----\n"
    )
    with pytest.raises(ValueError, match="PRIVATE KEY"):
        parse_ech_pem(pem)


def test_openssl_key_file() -> None:
    """An RFC 9934 file written by OpenSSL loads and re-encodes byte-exactly."""
    key = parse_ech_pem(OPENSSL_PEM_KP1)
    assert key.config.config_id == 108
    assert key.config.public_name == "example.com"
    assert key.to_pem() == OPENSSL_PEM_KP1


def test_several_configs_pick_matching_key() -> None:
    mine = generate_ech_key("public.example", config_id=1)
    other = generate_ech_key("public.example", config_id=2)
    unknown = ECHConfig(0xFE0C, None, b"\xfe\x0c\x00\x00")
    lst = ECHConfigList((unknown, other.config, mine.config))
    pem = mine.private_key.to_pkcs8_pem() + _echconfig_block(lst.encode())
    assert parse_ech_pem(pem) == mine
    lst2 = ECHConfigList((other.config,))
    with pytest.raises(ValueError, match="matches"):
        parse_ech_pem(mine.private_key.to_pkcs8_pem() + _echconfig_block(lst2.encode()))


def _echconfig_block(data: bytes) -> bytes:
    return (
        b"-----BEGIN ECHCONFIG-----\n"
        + base64.b64encode(data)
        + b"\n-----END ECHCONFIG-----\n"
    )


def test_parse_rejects_bad_files() -> None:
    key = generate_ech_key("public.example")
    pem = key.to_pem()
    key_block = key.private_key.to_pkcs8_pem()
    config_block = pem[len(key_block) :]
    with pytest.raises(ValueError, match="ECHCONFIG"):
        parse_ech_pem(key_block)
    with pytest.raises(ValueError, match="repeated"):
        parse_ech_pem(pem + config_block)
    with pytest.raises(InvalidECHConfigList):
        parse_ech_pem(key_block + _echconfig_block(b"\x00\x00"))
    with pytest.raises(InvalidECHConfigList):
        parse_ech_pem(
            key_block + b"-----BEGIN ECHCONFIG-----\n!!!\n-----END ECHCONFIG-----\n"
        )
    with pytest.raises(ValueError, match="cannot load"):
        parse_ech_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            + config_block
        )
    # Blocks in the other order are accepted.
    assert parse_ech_pem(config_block + key_block) == key


def test_ech_key_rejects_mismatch() -> None:
    a = generate_ech_key("public.example")
    b = generate_ech_key("public.example")
    with pytest.raises(ValueError, match="public_key"):
        ECHKey(a.config, b.private_key)
    p256 = hpke.PrivateKey.generate(hpke.KEM.DHKEM_P256_HKDF_SHA256)
    with pytest.raises(ValueError, match="KEM"):
        ECHKey(a.config, p256)
    with pytest.raises(ValueError, match="version"):
        ECHKey(ECHConfig(0xFE0C, None, b"\xfe\x0c\x00\x00"), a.private_key)


@pytest.mark.requirement("ECH-12")
def test_random_config_ids_avoid_taken() -> None:
    """ECH-12: rejection sampling until an unused id comes up."""
    random = counter_random([5, 5, 9, 200, 7])
    key = generate_ech_key("public.example", random=random, avoid_ids={5, 9, 200})
    assert key.config.config_id == 7
    ids: set[int] = set()
    for _ in range(20):
        ids.add(generate_ech_key("public.example", avoid_ids=ids).config.config_id)
    assert len(ids) == 20
    one_left = set(range(256)) - {77}
    assert generate_ech_key("p.example", avoid_ids=one_left).config.config_id == 77
    with pytest.raises(ValueError, match="256"):
        generate_ech_key("p.example", avoid_ids=range(256))


def test_random_config_ids_are_random() -> None:
    ids = {generate_ech_key("public.example").config.config_id for _ in range(16)}
    assert len(ids) > 4


def test_fixed_config_id() -> None:
    assert generate_ech_key("p.example", config_id=0).config.config_id == 0
    assert generate_ech_key("p.example", config_id=255).config.config_id == 255
    for bad in (-1, 256):
        with pytest.raises(ValueError, match="config_id"):
            generate_ech_key("p.example", config_id=bad)
    with pytest.raises(ValueError, match="in use"):
        generate_ech_key("p.example", config_id=3, avoid_ids=(3,))


@pytest.mark.requirement("ECH-13", "ECH-14")
@pytest.mark.parametrize(
    "name", ["", "a..b", "1.2.3.4", "example.0x1f", "ex_ample.com", "é.com"]
)
def test_generate_rejects_invalid_public_name(name: str) -> None:
    """ECH-13, ECH-14: we never publish a config clients must ignore."""
    with pytest.raises(ValueError, match="public_name"):
        generate_ech_key(name)


def test_generate_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="KEM"):
        generate_ech_key("p.example", kem_id=0x0040)
    with pytest.raises(ValueError, match="suite"):
        generate_ech_key(
            "p.example", cipher_suites=(HpkeSymmetricCipherSuite(1, 0xFFFF),)
        )
    with pytest.raises(ValueError, match="suite"):
        generate_ech_key("p.example", cipher_suites=())
    with pytest.raises(ValueError, match="maximum_name_length"):
        generate_ech_key("p.example", maximum_name_length=256)
    ext = ECHConfigExtension(0x1A1A, b"")
    with pytest.raises(ValueError, match="distinct"):
        generate_ech_key("p.example", extensions=(ext, ext))


@pytest.mark.requirement("ECH-16")
def test_mandatory_grease_config_is_generated_but_unusable() -> None:
    """ECH-16: servers may publish configs correct clients must ignore."""
    key = generate_ech_key("p.example", extensions=(ECHConfigExtension(0x8A8A, b""),))
    assert key.config.unsupported_reason() == "unsupported mandatory extension 0x8a8a"


@pytest.mark.parametrize("kem", ALL_KEMS, ids=lambda k: k.name)
def test_repr_hides_key(kem: hpke.KEM) -> None:
    key = generate_ech_key("public.example", kem_id=kem)
    text = repr(key)
    secret = key.private_key.to_bytes()
    assert "PrivateKey" in text
    for window in itertools.islice(_windows(secret, 8), 0, None, 4):
        assert window.hex() not in text
        assert repr(window)[2:-1] not in text
    assert base64.b64encode(secret).decode() not in text


def _windows(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(len(data) - size + 1)]
