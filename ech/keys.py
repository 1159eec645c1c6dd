"""ECH keys of the client-facing server: generation and the RFC 9934 PEM file.

An ECH key file (RFC 9934 §3) holds two PEM blocks (RFC 7468): the HPKE
private key as PKCS#8 ``PRIVATE KEY``, then an ``ECHCONFIG`` block whose body
is the Base64 of an ECHConfigList, including its 2-byte length, that carries
the matching public key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ech import hpke
from ech.config import (
    ECHConfig,
    ECHConfigContents,
    ECHConfigExtension,
    ECHConfigList,
    HpkeSymmetricCipherSuite,
    InvalidECHConfigList,
    is_valid_public_name,
)
from ech.errors import DecodeError

__all__ = [
    "DEFAULT_SUITES",
    "ECHKey",
    "generate_ech_key",
    "load_ech_key",
    "parse_ech_pem",
    "write_ech_key",
    "write_owner_only",
]

#: The (KDF, AEAD) pairs a new key's config lists, in preference order.
DEFAULT_SUITES: Final[tuple[HpkeSymmetricCipherSuite, ...]] = (
    # The mandatory-to-implement suite first (RFC 9849 §9; ECH-17).
    HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
    HpkeSymmetricCipherSuite(hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
)

_PEM_BLOCK: Final = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)
_PRIVATE_KEY_LABEL: Final = b"PRIVATE KEY"
_ECHCONFIG_LABEL: Final = b"ECHCONFIG"
_PEM_LINE: Final = 64  # RFC 7468 §2


@dataclass(frozen=True)
class ECHKey:
    """One ECHConfig and its HPKE private key.

    ``repr`` shows the config and the KEM, never key material.

    Raises:
        ValueError: The config is not version 0xfe0d, or its KEM or public
            key does not match the private key.
    """

    config: ECHConfig
    private_key: hpke.PrivateKey

    def __post_init__(self) -> None:
        contents = self.config.contents
        if contents is None:
            raise ValueError(
                f"unsupported ECHConfig version 0x{self.config.version:04x}"
            )
        if contents.kem_id != self.private_key.kem_id:
            raise ValueError("ECHConfig KEM does not match the private key")
        if contents.public_key != self.private_key.public_key_bytes():
            raise ValueError("ECHConfig public_key does not match the private key")

    def to_pem(self) -> bytes:
        """The RFC 9934 §3 file: PKCS#8 ``PRIVATE KEY`` then ``ECHCONFIG``."""
        config_list = ECHConfigList((self.config,)).encode()
        return self.private_key.to_pkcs8_pem() + _pem_block(
            _ECHCONFIG_LABEL, config_list
        )


def _pem_block(label: bytes, data: bytes) -> bytes:
    body = base64.b64encode(data)
    lines = [body[i : i + _PEM_LINE] for i in range(0, len(body), _PEM_LINE)]
    return b"".join(
        [b"-----BEGIN " + label + b"-----\n"]
        + [line + b"\n" for line in lines]
        + [b"-----END " + label + b"-----\n"]
    )


def generate_ech_key(
    public_name: str,
    *,
    kem_id: int = hpke.KEM.DHKEM_X25519_HKDF_SHA256,
    config_id: int | None = None,
    maximum_name_length: int = 0,
    cipher_suites: tuple[HpkeSymmetricCipherSuite, ...] = DEFAULT_SUITES,
    extensions: tuple[ECHConfigExtension, ...] = (),
    random: Callable[[int], bytes] = os.urandom,
    avoid_ids: Collection[int] = (),
) -> ECHKey:
    """Generate a fresh HPKE key pair and its ECHConfig.

    Args:
        public_name: The client-facing server's name (RFC 9849 §4); must pass
            :func:`ech.config.is_valid_public_name` (ECH-13, ECH-14).
        kem_id: HPKE KEM; X25519 by default (RFC 9849 §9).
        config_id: A fixed id, or ``None`` to draw a random one not in
            ``avoid_ids`` by rejection sampling (RFC 9849 §4.1; ECH-12).
        maximum_name_length: Longest backend name if known, else 0 (§4; ECH-10).
        cipher_suites: (KDF, AEAD) pairs in preference order.
        extensions: ECHConfig extensions, e.g. GREASE (§6.2.2; ECH-15, ECH-16).
        random: Source of the random config id (the key uses the OS RNG).
        avoid_ids: Config ids already in the server's known set.

    Returns:
        The new key.

    Raises:
        ValueError: Invalid name, unsupported KEM or suite, a repeated
            extension type, an out-of-range or taken ``config_id``.
    """
    try:
        name = public_name.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"public_name {public_name!r} is not ASCII") from None
    if not is_valid_public_name(name):
        raise ValueError(f"public_name {public_name!r} is not a valid host name")
    if not hpke.is_supported(kem_id):
        raise ValueError(f"unsupported HPKE KEM 0x{kem_id:04x}")
    if not cipher_suites:
        raise ValueError("at least one cipher suite is required")
    for suite in cipher_suites:
        if not hpke.is_supported(kem_id, suite.kdf_id, suite.aead_id):
            raise ValueError(f"unsupported HPKE suite {suite}")
    if not 0 <= maximum_name_length <= 0xFF:
        raise ValueError("maximum_name_length must fit in a uint8")
    types = [ext.type for ext in extensions]
    if len(set(types)) != len(types):
        raise ValueError("ECHConfig extension types must be distinct (RFC 9849 §4.2)")
    taken = frozenset(avoid_ids)
    if config_id is None:
        config_id = _random_config_id(random, taken)
    elif not 0 <= config_id <= 0xFF:
        raise ValueError("config_id must fit in a uint8")
    elif config_id in taken:
        raise ValueError(f"config_id {config_id} is already in use")

    private_key = hpke.PrivateKey.generate(kem_id)
    contents = ECHConfigContents(
        config_id=config_id,
        kem_id=kem_id,
        public_key=private_key.public_key_bytes(),
        cipher_suites=tuple(cipher_suites),
        maximum_name_length=maximum_name_length,
        public_name=name,
        extensions=tuple(extensions),
    )
    return ECHKey(ECHConfig.from_contents(contents), private_key)


def _random_config_id(random: Callable[[int], bytes], taken: frozenset[int]) -> int:
    # RFC 9849 §4.1: "randomly select config_id values until one is found
    # that is not in use".
    if taken.issuperset(range(256)):
        raise ValueError("all 256 config ids are in use")
    while True:
        candidate = random(1)[0]
        if candidate not in taken:
            return candidate


def parse_ech_pem(data: bytes) -> ECHKey:
    """Parse an RFC 9934 ECH key file.

    The ``ECHCONFIG`` list may hold several configs; the first one whose KEM
    and public key match the private key is taken.

    Raises:
        ValueError: Missing or repeated blocks, a bad private key, a
            malformed ECHConfigList, or no config matching the key.
    """
    blocks: dict[bytes, re.Match[bytes]] = {}
    for match in _PEM_BLOCK.finditer(bytes(data)):
        label = match.group(1)
        if label in blocks:
            raise ValueError(f"repeated PEM block {label.decode()}")
        blocks[label] = match
    missing = {_PRIVATE_KEY_LABEL, _ECHCONFIG_LABEL} - blocks.keys()
    if missing:
        names = ", ".join(sorted(m.decode() for m in missing))
        raise ValueError(f"ECH key file lacks PEM block(s): {names}")

    private_key = hpke.PrivateKey.from_pkcs8_pem(blocks[_PRIVATE_KEY_LABEL].group(0))
    try:
        body = b"".join(blocks[_ECHCONFIG_LABEL].group(2).split())
        config_list = ECHConfigList.parse(base64.b64decode(body, validate=True))
    except (binascii.Error, DecodeError) as err:
        raise InvalidECHConfigList(f"bad ECHCONFIG block: {err}") from err

    public = private_key.public_key_bytes()
    for config in config_list.configs:
        contents = config.contents
        if (
            contents is not None
            and contents.kem_id == private_key.kem_id
            and contents.public_key == public
        ):
            return ECHKey(config, private_key)
    raise ValueError("no ECHConfig in the file matches the private key")


def load_ech_key(path: str | Path) -> ECHKey:
    """Read an RFC 9934 ECH key file (see :func:`parse_ech_pem`).

    Raises:
        OSError: The file cannot be read.
        ValueError: The file is malformed.
    """
    return parse_ech_pem(Path(path).read_bytes())


def write_ech_key(path: str | Path, key: ECHKey) -> None:
    """Write ``key`` as an RFC 9934 file readable by its owner only (mode 0600)."""
    write_owner_only(path, key.to_pem())


def write_owner_only(path: str | Path, data: bytes) -> None:
    """Write a secret to ``path``, readable by its owner only (mode 0600).

    The data goes to a new file beside ``path``, created with mode 0600, which
    is then renamed over ``path``: a reader (``ech serve`` watching a key
    directory) never sees half of it, and an existing file's looser mode
    never applies to the new secret, not even for a moment.

    Raises:
        OSError: the directory cannot be written.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
