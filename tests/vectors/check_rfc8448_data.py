"""Independent check of the RFC 8448 data files in ``tests/vectors/data``.

Recomputes the TLS 1.3 key schedule (RFC 8446 section 7.1), the traffic keys,
every protected record, the Finished MACs, the CertificateVerify signatures,
the resumption PSK and the PSK binder from the transcribed values, using only
the ``cryptography`` package for cryptography (and the standard library for
JSON/structure).  Any transcription slip in a hex value shows up as a failed
check.  Run with::

    .venv/bin/python tests/vectors/check_rfc8448_data.py

Exit status 0 means every check passed.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import load_der_x509_certificate

DATA = Path(__file__).resolve().parent / "data"
HASH_LEN = 32
ZEROS = bytes(HASH_LEN)

CT_ALERT = 0x15
CT_HANDSHAKE = 0x16
CT_APPLICATION_DATA = 0x17

EXT_NAMES = {
    0: "server_name",
    10: "supported_groups",
    13: "signature_algorithms",
    21: "padding",
    28: "record_size_limit",
    35: "session_ticket",
    41: "pre_shared_key",
    42: "early_data",
    43: "supported_versions",
    44: "cookie",
    45: "psk_key_exchange_modes",
    51: "key_share",
    0xFF01: "renegotiation_info",
}


class Checker:
    """Collects and prints check results."""

    def __init__(self) -> None:
        self.failures = 0
        self.passes = 0

    def eq(self, what: str, got: bytes, want: bytes) -> None:
        """Record a check that ``got == want``."""
        if got == want:
            self.passes += 1
            print(f"  ok    {what}")
        else:
            self.failures += 1
            print(f"  FAIL  {what}")
            print(f"          got  {got.hex()}")
            print(f"          want {want.hex()}")

    def true(self, what: str, cond: bool) -> None:
        """Record a boolean check."""
        if cond:
            self.passes += 1
            print(f"  ok    {what}")
        else:
            self.failures += 1
            print(f"  FAIL  {what}")


# --- primitives (RFC 5869 / RFC 8446 section 7.1) -------------------------------------


def sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac_sha256(salt if salt else ZEROS, ikm)


def hkdf_label(label: str, context: bytes, length: int) -> bytes:
    full = b"tls13 " + label.encode("ascii")
    return (
        struct.pack(">HB", length, len(full))
        + full
        + struct.pack(">B", len(context))
        + context
    )


def hkdf_expand_label(secret: bytes, label: str, context: bytes, length: int) -> bytes:
    info = hkdf_label(label, context, length)
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(
        secret
    )


def derive_secret(secret: bytes, label: str, transcript: bytes) -> bytes:
    return hkdf_expand_label(secret, label, sha256(transcript), HASH_LEN)


def traffic_keys(secret: bytes) -> tuple[bytes, bytes]:
    return hkdf_expand_label(secret, "key", b"", 16), hkdf_expand_label(
        secret, "iv", b"", 12
    )


def nonce(iv: bytes, seq: int) -> bytes:
    padded = seq.to_bytes(len(iv), "big")
    return bytes(a ^ b for a, b in zip(iv, padded, strict=True))


def finished_mac(base_key: bytes, transcript: bytes) -> bytes:
    return hmac_sha256(
        hkdf_expand_label(base_key, "finished", b"", HASH_LEN), sha256(transcript)
    )


# --- structure helpers ---------------------------------------------------------------


def handshake_messages(data: bytes) -> list[bytes]:
    """Split ``data`` into complete handshake messages; raise if it does not split."""
    out = []
    i = 0
    while i < len(data):
        if i + 4 > len(data):
            raise ValueError("truncated handshake header")
        n = int.from_bytes(data[i + 1 : i + 4], "big")
        if i + 4 + n > len(data):
            raise ValueError("truncated handshake body")
        out.append(data[i : i + 4 + n])
        i += 4 + n
    return out


def parse_extensions(block: bytes) -> list[tuple[int, bytes]]:
    """Parse ``extensions<..>`` (with its 2-octet length) into (type, data) pairs."""
    total = int.from_bytes(block[:2], "big")
    if total != len(block) - 2:
        raise ValueError(f"extensions length {total} != {len(block) - 2}")
    out = []
    i = 2
    while i < len(block):
        t, n = struct.unpack(">HH", block[i : i + 4])
        out.append((t, block[i + 4 : i + 4 + n]))
        i += 4 + n
    if i != len(block):
        raise ValueError("extension overrun")
    return out


def hello_extensions(msg: bytes, client: bool) -> list[tuple[int, bytes]]:
    """Extensions of a ClientHello (``client``) or ServerHello/HelloRetryRequest."""
    i = 4 + 2 + 32
    sid = msg[i]
    i += 1 + sid
    if client:
        cs = int.from_bytes(msg[i : i + 2], "big")
        i += 2 + cs
        comp = msg[i]
        i += 1 + comp
    else:
        i += 2 + 1
    return parse_extensions(msg[i:])


def u16_list(data: bytes) -> list[str]:
    return [
        f"0x{int.from_bytes(data[j : j + 2], 'big'):04x}"
        for j in range(0, len(data), 2)
    ]


def describe_hello(name: str, msg: bytes, client: bool) -> None:
    """Print a decoded summary of a hello message (informational)."""
    i = 4 + 2 + 32
    sid = msg[i]
    i += 1 + sid
    if client:
        cs = int.from_bytes(msg[i : i + 2], "big")
        suites = u16_list(msg[i + 2 : i + 2 + cs])
        print(f"  info  {name}: cipher_suites={suites}")
    else:
        suite = int.from_bytes(msg[i : i + 2], "big")
        print(f"  info  {name}: cipher_suite=0x{suite:04x}")
    for t, d in hello_extensions(msg, client):
        extra = ""
        if t == 10:
            extra = f" groups={u16_list(d[2:])}"
        elif t == 13:
            extra = f" schemes={u16_list(d[2:])}"
        elif t == 43:
            extra = f" versions={u16_list(d[1:]) if client else u16_list(d)}"
        elif t == 51 and client:
            extra = " shares=" + str(_key_share_groups(d[2:]))
        elif t == 51:
            extra = f" group=0x{int.from_bytes(d[:2], 'big'):04x}"
        elif t == 28:
            extra = f" limit={int.from_bytes(d, 'big')}"
        elif t == 21:
            extra = f" {len(d)} zero octets"
        elif t == 0:
            extra = f" host={d[5:].decode()!r}"
        print(
            f"          ext {t:#06x} {EXT_NAMES.get(t, '?')} ({len(d)} octets){extra}"
        )


def describe_encrypted_extensions(msg: bytes) -> None:
    """Print the extension types of an EncryptedExtensions message (informational)."""
    exts = [f"{t:#06x} {EXT_NAMES.get(t, '?')}" for t, _ in parse_extensions(msg[4:])]
    print(f"  info  encrypted_extensions: {exts}")


def _key_share_groups(d: bytes) -> list[str]:
    out = []
    i = 0
    while i < len(d):
        g, n = struct.unpack(">HH", d[i : i + 4])
        out.append(f"0x{g:04x}/{n}B")
        i += 4 + n
    return out


# --- record protection ---------------------------------------------------------------


def check_plain_record(
    c: Checker, name: str, record: bytes, payload: bytes, legacy: bytes
) -> None:
    want = bytes([CT_HANDSHAKE]) + legacy + len(payload).to_bytes(2, "big") + payload
    c.eq(f"{name}: plaintext record = header({legacy.hex()}) || payload", record, want)


def check_protected_record(
    c: Checker,
    name: str,
    record: bytes,
    payload: bytes,
    ctype: int,
    key: bytes,
    iv: bytes,
    seq: int,
) -> None:
    """Decrypt ``record`` and compare with ``payload``; also re-encrypt and compare."""
    header = record[:5]
    c.true(
        f"{name}: header 17 03 03 + length",
        header[:3] == b"\x17\x03\x03"
        and int.from_bytes(header[3:5], "big") == len(record) - 5,
    )
    aead = AESGCM(key)
    try:
        inner = aead.decrypt(nonce(iv, seq), record[5:], header)
    except InvalidTag:
        c.true(f"{name}: AES-128-GCM decrypt (seq {seq})", False)
        return
    c.true(f"{name}: AES-128-GCM decrypt (seq {seq})", True)
    stripped = inner.rstrip(b"\x00")
    c.true(f"{name}: inner content type {ctype:#04x}", stripped[-1:] == bytes([ctype]))
    c.eq(f"{name}: decrypted content = printed payload", stripped[:-1], payload)
    c.eq(
        f"{name}: re-encryption = printed record",
        header + aead.encrypt(nonce(iv, seq), payload + bytes([ctype]), header),
        record,
    )


# --- common key-schedule checks ----------------------------------------------------


def load(name: str) -> tuple[dict[str, bytes], dict[str, str]]:
    doc = json.loads((DATA / f"{name}.json").read_text())
    steps: dict[str, bytes] = {}
    for k, v in doc["steps"].items():
        if not re.fullmatch(r"(?:[0-9a-f]{2})*", v):
            raise ValueError(f"{name}: {k} is not lowercase contiguous hex")
        steps[k] = bytes.fromhex(v)
    labels: dict[str, str] = doc["labels"]
    if set(labels) != set(steps):
        raise ValueError(f"{name}: labels and steps keys differ")
    return steps, labels


def check_messages(c: Checker, v: dict[str, bytes], names: list[str]) -> None:
    for n in names:
        m = v[n]
        c.true(
            f"{n}: 4-octet header length matches ({len(m)} octets)",
            int.from_bytes(m[1:4], "big") == len(m) - 4,
        )


def check_schedule_common(
    c: Checker,
    v: dict[str, bytes],
    early: bytes,
    ecdhe: bytes,
    th_sh: bytes,
    th_sf: bytes,
) -> None:
    """Handshake/master secrets, traffic secrets, keys and printed HKDF inputs."""
    c.eq("early_secret = HKDF-Extract(0, early_secret_ikm)", v["early_secret"], early)
    c.eq(
        "derived_for_handshake_prk = early_secret",
        v["derived_for_handshake_prk"],
        early,
    )
    c.eq("empty_transcript_hash = SHA-256('')", v["empty_transcript_hash"], sha256(b""))
    c.eq(
        "derived_info = HkdfLabel(32, 'tls13 derived', H(''))",
        v["derived_info"],
        hkdf_label("derived", sha256(b""), 32),
    )
    d_hs = derive_secret(early, "derived", b"")
    c.eq(
        "derived_for_handshake_secret = Derive-Secret(early, 'derived', '')",
        v["derived_for_handshake_secret"],
        d_hs,
    )
    c.eq(
        "handshake_extract_salt = derived_for_handshake_secret",
        v["handshake_extract_salt"],
        d_hs,
    )
    c.eq(
        "ecdhe_shared_secret = (EC)DHE(client priv, server pub)",
        v["ecdhe_shared_secret"],
        ecdhe,
    )
    hs = hkdf_extract(d_hs, ecdhe)
    c.eq("handshake_secret = HKDF-Extract(derived, ecdhe)", v["handshake_secret"], hs)
    c.eq(
        "transcript_hash_through_server_hello",
        v["transcript_hash_through_server_hello"],
        sha256(th_sh),
    )
    for base, label, name in (
        ("c_hs_traffic", "c hs traffic", "client_handshake_traffic_secret"),
        ("s_hs_traffic", "s hs traffic", "server_handshake_traffic_secret"),
    ):
        c.eq(f"{base}_prk = handshake_secret", v[f"{base}_prk"], hs)
        c.eq(f"{base}_info", v[f"{base}_info"], hkdf_label(label, sha256(th_sh), 32))
        c.eq(
            f"{name} = Derive-Secret(hs, '{label}', CH..SH)",
            v[name],
            derive_secret(hs, label, th_sh),
        )
    c.eq("derived_for_master_prk = handshake_secret", v["derived_for_master_prk"], hs)
    d_ms = derive_secret(hs, "derived", b"")
    c.eq("derived_for_master_secret", v["derived_for_master_secret"], d_ms)
    c.eq(
        "master_extract_salt = derived_for_master_secret",
        v["master_extract_salt"],
        d_ms,
    )
    c.eq("master_extract_ikm = 0^32", v["master_extract_ikm"], ZEROS)
    ms = hkdf_extract(d_ms, ZEROS)
    c.eq("master_secret = HKDF-Extract(derived, 0)", v["master_secret"], ms)
    c.eq(
        "transcript_hash_through_server_finished",
        v["transcript_hash_through_server_finished"],
        sha256(th_sf),
    )
    for base, label, name in (
        ("c_ap_traffic", "c ap traffic", "client_application_traffic_secret"),
        ("s_ap_traffic", "s ap traffic", "server_application_traffic_secret"),
        ("exp_master", "exp master", "exporter_master_secret"),
    ):
        c.eq(f"{base}_prk = master_secret", v[f"{base}_prk"], ms)
        c.eq(f"{base}_info", v[f"{base}_info"], hkdf_label(label, sha256(th_sf), 32))
        c.eq(
            f"{name} = Derive-Secret(ms, '{label}', CH..SF)",
            v[name],
            derive_secret(ms, label, th_sf),
        )
    c.eq(
        "key_info = HkdfLabel(16, 'tls13 key', '')",
        v["key_info"],
        hkdf_label("key", b"", 16),
    )
    c.eq(
        "iv_info = HkdfLabel(12, 'tls13 iv', '')",
        v["iv_info"],
        hkdf_label("iv", b"", 12),
    )
    for who, phase, secret in (
        ("server", "handshake", "server_handshake_traffic_secret"),
        ("client", "handshake", "client_handshake_traffic_secret"),
        ("server", "application", "server_application_traffic_secret"),
        ("client", "application", "client_application_traffic_secret"),
    ):
        key, iv = traffic_keys(v[secret])
        c.eq(
            f"{who}_{phase}_traffic_keys_prk = {secret}",
            v[f"{who}_{phase}_traffic_keys_prk"],
            v[secret],
        )
        c.eq(f"{who}_{phase}_write_key", v[f"{who}_{phase}_write_key"], key)
        c.eq(f"{who}_{phase}_write_iv", v[f"{who}_{phase}_write_iv"], iv)


def check_finished(
    c: Checker, v: dict[str, bytes], side: str, transcript: bytes
) -> None:
    base = v[f"{side}_handshake_traffic_secret"]
    c.eq(
        f"{side}_finished_prk = {side}_handshake_traffic_secret",
        v[f"{side}_finished_prk"],
        base,
    )
    c.eq(
        "finished_info = HkdfLabel(32, 'tls13 finished', '')",
        v["finished_info"],
        hkdf_label("finished", b"", 32),
    )
    c.eq(
        f"{side}_finished_key",
        v[f"{side}_finished_key"],
        hkdf_expand_label(base, "finished", b"", 32),
    )
    mac = finished_mac(base, transcript)
    c.eq(
        f"{side}_finished_verify_data = HMAC(finished_key, transcript hash)",
        v[f"{side}_finished_verify_data"],
        mac,
    )
    c.eq(
        f"{side}_finished = 14 00 00 20 || verify_data",
        v[f"{side}_finished"],
        b"\x14\x00\x00\x20" + mac,
    )


def check_rsa_and_cv(c: Checker, v: dict[str, bytes], transcript: bytes) -> None:
    """Rebuild the RSA key from its printed components; verify the CertificateVerify."""
    n, e, d = (
        int.from_bytes(v[k], "big")
        for k in ("rsa_modulus", "rsa_public_exponent", "rsa_private_exponent")
    )
    p, q = (
        int.from_bytes(v["rsa_prime1"], "big"),
        int.from_bytes(v["rsa_prime2"], "big"),
    )
    dp, dq, qi = (
        int.from_bytes(v[k], "big")
        for k in ("rsa_exponent1", "rsa_exponent2", "rsa_coefficient")
    )
    c.true("RSA: n = p * q", n == p * q)
    c.true(
        "RSA: e * d = 1 mod lcm(p-1, q-1)",
        (e * d) % ((p - 1) * (q - 1) // _gcd(p - 1, q - 1)) == 1,
    )
    c.true(
        "RSA: exponent1 = d mod (p-1), exponent2 = d mod (q-1)",
        dp == d % (p - 1) and dq == d % (q - 1),
    )
    c.true("RSA: coefficient = q^-1 mod p", (qi * q) % p == 1)
    priv = rsa.RSAPrivateNumbers(
        p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n)
    ).private_key()
    cert = load_der_x509_certificate(v["certificate_der"])
    cert_pub = cert.public_key()
    c.true(
        "certificate_der public key = printed modulus/exponent",
        isinstance(cert_pub, rsa.RSAPublicKey)
        and cert_pub.public_numbers() == rsa.RSAPublicNumbers(e, n),
    )
    cert_msg = v["certificate"]
    entry = v["certificate_der"]
    want_cert = (
        b"\x0b"
        + (len(entry) + 9).to_bytes(3, "big")
        + b"\x00"
        + (len(entry) + 5).to_bytes(3, "big")
        + len(entry).to_bytes(3, "big")
        + entry
        + b"\x00\x00"
    )
    c.eq(
        "certificate = Certificate{ctx '', [cert_data=certificate_der, no extensions]}",
        cert_msg,
        want_cert,
    )
    cv = v["certificate_verify"]
    c.true(
        "certificate_verify: scheme 0x0804 rsa_pss_rsae_sha256, 128-octet signature",
        cv[4:8] == b"\x08\x04\x00\x80",
    )
    c.eq(
        "certificate_verify_signature = certificate_verify[8:]",
        v["certificate_verify_signature"],
        cv[8:],
    )
    content = (
        b" " * 64 + b"TLS 1.3, server CertificateVerify" + b"\x00" + sha256(transcript)
    )
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    for what, pub in (
        ("key rebuilt from §2 components", priv.public_key()),
        ("certificate key", cert_pub),
    ):
        try:
            assert isinstance(pub, rsa.RSAPublicKey)
            pub.verify(cv[8:], content, pss, hashes.SHA256())
            ok = True
        except InvalidSignature:
            ok = False
        c.true(f"CertificateVerify RSA-PSS-SHA256 signature verifies ({what})", ok)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def check_random_slices(c: Checker, v: dict[str, bytes], ch: str, sh: str) -> None:
    c.eq("client_random = ClientHello.random", v["client_random"], v[ch][6:38])
    c.eq("server_random = ServerHello.random", v["server_random"], v[sh][6:38])


# --- sections ------------------------------------------------------------------------


def check_simple_1rtt(c: Checker) -> None:
    print("RFC 8448 §3 Simple 1-RTT Handshake (rfc8448_simple_1rtt.json)")
    v, _ = load("rfc8448_simple_1rtt")
    check_messages(
        c,
        v,
        [
            "client_hello",
            "server_hello",
            "encrypted_extensions",
            "certificate",
            "certificate_verify",
            "server_finished",
            "client_finished",
            "new_session_ticket",
        ],
    )
    describe_hello("client_hello", v["client_hello"], client=True)
    describe_hello("server_hello", v["server_hello"], client=False)
    describe_encrypted_extensions(v["encrypted_extensions"])

    cpriv = x25519.X25519PrivateKey.from_private_bytes(v["client_x25519_private_key"])
    spriv = x25519.X25519PrivateKey.from_private_bytes(v["server_x25519_private_key"])
    c.eq(
        "client_x25519_public_key = X25519(priv)",
        cpriv.public_key().public_bytes_raw(),
        v["client_x25519_public_key"],
    )
    c.eq(
        "server_x25519_public_key = X25519(priv)",
        spriv.public_key().public_bytes_raw(),
        v["server_x25519_public_key"],
    )
    shared = cpriv.exchange(
        x25519.X25519PublicKey.from_public_bytes(v["server_x25519_public_key"])
    )
    c.eq(
        "X25519 shared secret is symmetric", spriv.exchange(cpriv.public_key()), shared
    )
    ks_ch = dict(hello_extensions(v["client_hello"], client=True))[51]
    ks_sh = dict(hello_extensions(v["server_hello"], client=False))[51]
    c.eq(
        "ClientHello key_share carries client_x25519_public_key",
        ks_ch[-32:],
        v["client_x25519_public_key"],
    )
    c.eq(
        "ServerHello key_share carries server_x25519_public_key",
        ks_sh[-32:],
        v["server_x25519_public_key"],
    )
    check_random_slices(c, v, "client_hello", "server_hello")

    c.eq("early_secret_ikm = 0^32 (no PSK)", v["early_secret_ikm"], ZEROS)
    early = hkdf_extract(ZEROS, ZEROS)
    ch, sh = v["client_hello"], v["server_hello"]
    ee, cert, cv, sfin, cfin = (
        v[k]
        for k in (
            "encrypted_extensions",
            "certificate",
            "certificate_verify",
            "server_finished",
            "client_finished",
        )
    )
    th_sf = ch + sh + ee + cert + cv + sfin
    check_schedule_common(c, v, early, shared, ch + sh, th_sf)
    check_rsa_and_cv(c, v, ch + sh + ee + cert)
    check_finished(c, v, "server", ch + sh + ee + cert + cv)
    check_finished(c, v, "client", th_sf)
    th_cf = th_sf + cfin
    c.eq(
        "transcript_hash_through_client_finished",
        v["transcript_hash_through_client_finished"],
        sha256(th_cf),
    )
    ms = v["master_secret"]
    c.eq("res_master_prk = master_secret", v["res_master_prk"], ms)
    c.eq(
        "res_master_info",
        v["res_master_info"],
        hkdf_label("res master", sha256(th_cf), 32),
    )
    rms = derive_secret(ms, "res master", th_cf)
    c.eq(
        "resumption_master_secret = Derive-Secret(ms, 'res master', CH..CF)",
        v["resumption_master_secret"],
        rms,
    )

    nst = v["new_session_ticket"]
    lifetime, age_add, nlen = struct.unpack(">IIB", nst[4:13])
    nonce_ = nst[13 : 13 + nlen]
    tlen = int.from_bytes(nst[13 + nlen : 15 + nlen], "big")
    ticket = nst[15 + nlen : 15 + nlen + tlen]
    exts = nst[15 + nlen + tlen :]
    print(
        f"  info  NewSessionTicket: lifetime={lifetime}s age_add=0x{age_add:08x}"
        f" nonce={nonce_.hex()} ticket={tlen} octets"
    )
    for t, d in parse_extensions(exts):
        value = int.from_bytes(d, "big")
        print(f"          ext {t:#06x} {EXT_NAMES.get(t, '?')} = {d.hex()} ({value})")
    c.eq("ticket_nonce = NewSessionTicket.ticket_nonce", v["ticket_nonce"], nonce_)
    c.eq("ticket = NewSessionTicket.ticket", v["ticket"], ticket)
    c.eq(
        "ticket_lifetime / ticket_age_add slices",
        v["ticket_lifetime"] + v["ticket_age_add"],
        nst[4:12],
    )
    c.eq(
        "new_session_ticket_extensions slice", v["new_session_ticket_extensions"], exts
    )
    c.eq("resumption_prk = resumption_master_secret", v["resumption_prk"], rms)
    c.eq("resumption_info", v["resumption_info"], hkdf_label("resumption", nonce_, 32))
    c.eq(
        "resumption_psk = HKDF-Expand-Label(rms, 'resumption', nonce, 32)",
        v["resumption_psk"],
        hkdf_expand_label(rms, "resumption", nonce_, 32),
    )

    # records
    check_plain_record(
        c,
        "client_hello_record",
        v["client_hello_record"],
        v["client_hello_record_payload"],
        b"\x03\x01",
    )
    c.eq(
        "client_hello_record_payload = client_hello",
        v["client_hello_record_payload"],
        ch,
    )
    check_plain_record(
        c,
        "server_hello_record",
        v["server_hello_record"],
        v["server_hello_record_payload"],
        b"\x03\x03",
    )
    c.eq(
        "server_hello_record_payload = server_hello",
        v["server_hello_record_payload"],
        sh,
    )
    c.eq(
        "server_encrypted_handshake_record_payload = EE||Cert||CV||Fin",
        v["server_encrypted_handshake_record_payload"],
        ee + cert + cv + sfin,
    )
    sk, si = v["server_handshake_write_key"], v["server_handshake_write_iv"]
    ck, ci = v["client_handshake_write_key"], v["client_handshake_write_iv"]
    sak, sai = v["server_application_write_key"], v["server_application_write_iv"]
    cak, cai = v["client_application_write_key"], v["client_application_write_iv"]
    check_protected_record(
        c,
        "server_encrypted_handshake_record",
        v["server_encrypted_handshake_record"],
        ee + cert + cv + sfin,
        CT_HANDSHAKE,
        sk,
        si,
        0,
    )
    c.eq(
        "client_finished_record_payload = client_finished",
        v["client_finished_record_payload"],
        cfin,
    )
    check_protected_record(
        c,
        "client_finished_record",
        v["client_finished_record"],
        cfin,
        CT_HANDSHAKE,
        ck,
        ci,
        0,
    )
    c.eq(
        "new_session_ticket_record_payload = new_session_ticket",
        v["new_session_ticket_record_payload"],
        nst,
    )
    check_protected_record(
        c,
        "new_session_ticket_record",
        v["new_session_ticket_record"],
        nst,
        CT_HANDSHAKE,
        sak,
        sai,
        0,
    )
    c.eq(
        "application data payload = 00..31",
        v["client_application_data_record_payload"],
        bytes(range(50)),
    )
    check_protected_record(
        c,
        "client_application_data_record",
        v["client_application_data_record"],
        v["client_application_data_record_payload"],
        CT_APPLICATION_DATA,
        cak,
        cai,
        0,
    )
    check_protected_record(
        c,
        "server_application_data_record",
        v["server_application_data_record"],
        v["server_application_data_record_payload"],
        CT_APPLICATION_DATA,
        sak,
        sai,
        1,
    )
    c.eq(
        "alert payloads = close_notify (01 00)",
        v["client_alert_record_payload"] + v["server_alert_record_payload"],
        b"\x01\x00" * 2,
    )
    check_protected_record(
        c,
        "client_alert_record",
        v["client_alert_record"],
        b"\x01\x00",
        CT_ALERT,
        cak,
        cai,
        1,
    )
    check_protected_record(
        c,
        "server_alert_record",
        v["server_alert_record"],
        b"\x01\x00",
        CT_ALERT,
        sak,
        sai,
        2,
    )


def check_resumption(c: Checker) -> None:
    print("RFC 8448 §4 Resumed 0-RTT Handshake (rfc8448_resumption.json)")
    v, _ = load("rfc8448_resumption")
    ch = v["client_hello"]
    check_messages(
        c,
        v,
        [
            "client_hello",
            "server_hello",
            "encrypted_extensions",
            "server_finished",
            "client_finished",
            "end_of_early_data",
        ],
    )
    describe_hello("client_hello", ch, client=True)
    describe_hello("server_hello", v["server_hello"], client=False)
    describe_encrypted_extensions(v["encrypted_extensions"])
    check_random_slices(c, v, "client_hello", "server_hello")

    # §3 linkage
    s3, _ = load("rfc8448_simple_1rtt")
    for k in (
        "new_session_ticket",
        "resumption_master_secret",
        "ticket_nonce",
        "resumption_psk",
        "ticket",
        "ticket_age_add",
        "ticket_lifetime",
    ):
        c.eq(f"s3_{k} = §3 {k}", v[f"s3_{k}"], s3[k])
    c.eq("psk = §3 resumption_psk", v["psk"], v["s3_resumption_psk"])

    # ClientHello / pre_shared_key
    exts = hello_extensions(ch, client=True)
    c.true("pre_shared_key is the last ClientHello extension", exts[-1][0] == 41)
    psk_ext = exts[-1][1]
    ids_len = int.from_bytes(psk_ext[:2], "big")
    ids = psk_ext[2 : 2 + ids_len]
    id_len = int.from_bytes(ids[:2], "big")
    identity, obf = ids[2 : 2 + id_len], ids[2 + id_len : 6 + id_len]
    binders = psk_ext[2 + ids_len :]
    c.eq("psk_identity = pre_shared_key identity", v["psk_identity"], identity)
    c.eq("psk_identity = §3 ticket", identity, v["s3_ticket"])
    c.eq("obfuscated_ticket_age slice", v["obfuscated_ticket_age"], obf)
    age_ms = (
        int.from_bytes(obf, "big") - int.from_bytes(v["s3_ticket_age_add"], "big")
    ) % 2**32
    print(f"  info  obfuscated_ticket_age=0x{obf.hex()} -> ticket age {age_ms} ms")
    c.eq("binders slice", v["binders"], binders)
    prefix = ch[: len(ch) - len(binders)]
    c.eq(
        "client_hello_prefix = ClientHello minus binders",
        v["client_hello_prefix"],
        prefix,
    )
    c.eq(
        "client_hello_truncated (RFC 'ClientHello (477 octets)') = prefix",
        v["client_hello_truncated"],
        prefix,
    )

    early = hkdf_extract(ZEROS, v["psk"])
    c.eq("binder_hash = SHA-256(prefix)", v["binder_hash"], sha256(prefix))
    binder_key = derive_secret(early, "res binder", b"")
    c.eq(
        "binder_key = Derive-Secret(early_secret, 'res binder', '')",
        v["binder_key"],
        binder_key,
    )
    c.eq("finished_info", v["finished_info"], hkdf_label("finished", b"", 32))
    c.eq(
        "binder_finished_key",
        v["binder_finished_key"],
        hkdf_expand_label(binder_key, "finished", b"", 32),
    )
    binder = finished_mac(binder_key, prefix)
    c.eq("binder = HMAC(finished_key, Hash(prefix))", v["binder"], binder)
    c.eq("ClientHello binders = 00 21 20 || binder", binders, b"\x00\x21\x20" + binder)

    # early data
    c.eq(
        "c_e_traffic_prk / e_exp_master_prk = early_secret",
        v["c_e_traffic_prk"] + v["e_exp_master_prk"],
        early * 2,
    )
    c.eq("transcript_hash_client_hello", v["transcript_hash_client_hello"], sha256(ch))
    c.eq(
        "c_e_traffic_info",
        v["c_e_traffic_info"],
        hkdf_label("c e traffic", sha256(ch), 32),
    )
    c.eq(
        "e_exp_master_info",
        v["e_exp_master_info"],
        hkdf_label("e exp master", sha256(ch), 32),
    )
    cets = derive_secret(early, "c e traffic", ch)
    c.eq("client_early_traffic_secret", v["client_early_traffic_secret"], cets)
    c.eq(
        "early_exporter_master_secret",
        v["early_exporter_master_secret"],
        derive_secret(early, "e exp master", ch),
    )
    ek, ei = traffic_keys(cets)
    c.eq("client_early_traffic_keys_prk", v["client_early_traffic_keys_prk"], cets)
    c.eq(
        "client_early_write_key / iv",
        v["client_early_write_key"] + v["client_early_write_iv"],
        ek + ei,
    )
    check_protected_record(
        c,
        "client_early_data_record",
        v["client_early_data_record"],
        v["client_early_data_record_payload"],
        CT_APPLICATION_DATA,
        ek,
        ei,
        0,
    )
    c.eq(
        "end_of_early_data_record_payload = end_of_early_data = 05 00 00 00",
        v["end_of_early_data_record_payload"] + v["end_of_early_data"],
        b"\x05\x00\x00\x00" * 2,
    )
    check_protected_record(
        c,
        "end_of_early_data_record",
        v["end_of_early_data_record"],
        v["end_of_early_data"],
        CT_HANDSHAKE,
        ek,
        ei,
        1,
    )

    # handshake
    cpriv = x25519.X25519PrivateKey.from_private_bytes(v["client_x25519_private_key"])
    spriv = x25519.X25519PrivateKey.from_private_bytes(v["server_x25519_private_key"])
    c.eq(
        "client_x25519_public_key = X25519(priv)",
        cpriv.public_key().public_bytes_raw(),
        v["client_x25519_public_key"],
    )
    c.eq(
        "server_x25519_public_key = X25519(priv)",
        spriv.public_key().public_bytes_raw(),
        v["server_x25519_public_key"],
    )
    shared = cpriv.exchange(
        x25519.X25519PublicKey.from_public_bytes(v["server_x25519_public_key"])
    )
    sh, ee, sfin, eoed, cfin = (
        v[k]
        for k in (
            "server_hello",
            "encrypted_extensions",
            "server_finished",
            "end_of_early_data",
            "client_finished",
        )
    )
    sh_exts = dict(hello_extensions(sh, client=False))
    c.eq("ServerHello pre_shared_key selected_identity = 0", sh_exts[41], b"\x00\x00")
    th_sf = ch + sh + ee + sfin
    check_schedule_common(c, v, early, shared, ch + sh, th_sf)
    check_finished(c, v, "server", ch + sh + ee)
    th_cf_pre = th_sf + eoed
    check_finished(c, v, "client", th_cf_pre)
    th_cf = th_cf_pre + cfin
    c.eq(
        "transcript_hash_through_client_finished (incl. EndOfEarlyData)",
        v["transcript_hash_through_client_finished"],
        sha256(th_cf),
    )
    c.eq(
        "res_master_info",
        v["res_master_info"],
        hkdf_label("res master", sha256(th_cf), 32),
    )
    c.eq("res_master_prk = master_secret", v["res_master_prk"], v["master_secret"])
    c.eq(
        "resumption_master_secret",
        v["resumption_master_secret"],
        derive_secret(v["master_secret"], "res master", th_cf),
    )

    check_plain_record(
        c, "client_hello_record", v["client_hello_record"], ch, b"\x03\x01"
    )
    c.eq(
        "client_hello_record_payload = client_hello",
        v["client_hello_record_payload"],
        ch,
    )
    check_plain_record(
        c, "server_hello_record", v["server_hello_record"], sh, b"\x03\x03"
    )
    c.eq(
        "server_hello_record_payload = server_hello",
        v["server_hello_record_payload"],
        sh,
    )
    sk, si = v["server_handshake_write_key"], v["server_handshake_write_iv"]
    ck, ci = v["client_handshake_write_key"], v["client_handshake_write_iv"]
    sak, sai = v["server_application_write_key"], v["server_application_write_iv"]
    cak, cai = v["client_application_write_key"], v["client_application_write_iv"]
    c.eq(
        "server_encrypted_handshake_record_payload = EE||Fin",
        v["server_encrypted_handshake_record_payload"],
        ee + sfin,
    )
    check_protected_record(
        c,
        "server_encrypted_handshake_record",
        v["server_encrypted_handshake_record"],
        ee + sfin,
        CT_HANDSHAKE,
        sk,
        si,
        0,
    )
    c.eq(
        "client_finished_record_payload = client_finished",
        v["client_finished_record_payload"],
        cfin,
    )
    check_protected_record(
        c,
        "client_finished_record",
        v["client_finished_record"],
        cfin,
        CT_HANDSHAKE,
        ck,
        ci,
        0,
    )
    check_protected_record(
        c,
        "client_application_data_record",
        v["client_application_data_record"],
        v["client_application_data_record_payload"],
        CT_APPLICATION_DATA,
        cak,
        cai,
        0,
    )
    check_protected_record(
        c,
        "server_application_data_record",
        v["server_application_data_record"],
        v["server_application_data_record_payload"],
        CT_APPLICATION_DATA,
        sak,
        sai,
        0,
    )
    check_protected_record(
        c,
        "client_alert_record",
        v["client_alert_record"],
        v["client_alert_record_payload"],
        CT_ALERT,
        cak,
        cai,
        1,
    )
    check_protected_record(
        c,
        "server_alert_record",
        v["server_alert_record"],
        v["server_alert_record_payload"],
        CT_ALERT,
        sak,
        sai,
        1,
    )


def check_hrr(c: Checker) -> None:
    print("RFC 8448 §5 HelloRetryRequest (rfc8448_hrr.json)")
    v, _ = load("rfc8448_hrr")
    ch1, hrr, ch2, sh = (
        v[k]
        for k in (
            "client_hello_1",
            "hello_retry_request",
            "client_hello_2",
            "server_hello",
        )
    )
    ee, cert, cv, sfin, cfin = (
        v[k]
        for k in (
            "encrypted_extensions",
            "certificate",
            "certificate_verify",
            "server_finished",
            "client_finished",
        )
    )
    check_messages(
        c,
        v,
        [
            "client_hello_1",
            "hello_retry_request",
            "client_hello_2",
            "server_hello",
            "encrypted_extensions",
            "certificate",
            "certificate_verify",
            "server_finished",
            "client_finished",
        ],
    )
    describe_hello("client_hello_1", ch1, client=True)
    describe_hello("hello_retry_request", hrr, client=False)
    describe_hello("client_hello_2", ch2, client=True)
    describe_hello("server_hello", sh, client=False)
    describe_encrypted_extensions(ee)
    hrr_random = sha256(b"HelloRetryRequest")
    c.eq(
        "hello_retry_request random = SHA-256('HelloRetryRequest')",
        hrr[6:38],
        hrr_random,
    )
    c.eq(
        "hello_retry_request_random slice", v["hello_retry_request_random"], hrr_random
    )
    c.eq("client_random (same in both ClientHellos)", v["client_random"], ch2[6:38])
    c.eq("server_random slice", v["server_random"], sh[6:38])
    hrr_exts = dict(hello_extensions(hrr, client=False))
    c.eq("HRR key_share selects secp256r1 (0x0017)", hrr_exts[51], b"\x00\x17")
    c.eq("cookie slice = HRR cookie", v["cookie"], hrr_exts[44][2:])
    c.eq(
        "ClientHello2 echoes the cookie",
        dict(hello_extensions(ch2, client=True))[44],
        hrr_exts[44],
    )
    x_priv = x25519.X25519PrivateKey.from_private_bytes(v["client_x25519_private_key"])
    c.eq(
        "client_x25519_public_key = X25519(priv)",
        x_priv.public_key().public_bytes_raw(),
        v["client_x25519_public_key"],
    )

    curve = ec.SECP256R1()
    cpriv = ec.derive_private_key(
        int.from_bytes(v["client_p256_private_key"], "big"), curve
    )
    spriv = ec.derive_private_key(
        int.from_bytes(v["server_p256_private_key"], "big"), curve
    )

    def pub(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    c.eq("client_p256_public_key = d*G", pub(cpriv), v["client_p256_public_key"])
    c.eq("server_p256_public_key = d*G", pub(spriv), v["server_p256_public_key"])
    spub = ec.EllipticCurvePublicKey.from_encoded_point(
        curve, v["server_p256_public_key"]
    )
    shared = cpriv.exchange(ec.ECDH(), spub)
    c.eq("ECDH P-256 symmetric", spriv.exchange(ec.ECDH(), cpriv.public_key()), shared)
    c.eq(
        "ClientHello2 key_share carries client_p256_public_key",
        dict(hello_extensions(ch2, client=True))[51][-65:],
        v["client_p256_public_key"],
    )
    c.eq(
        "ServerHello key_share carries server_p256_public_key",
        dict(hello_extensions(sh, client=False))[51][-65:],
        v["server_p256_public_key"],
    )

    message_hash = b"\xfe\x00\x00\x20" + sha256(ch1)
    prefix = message_hash + hrr + ch2
    c.eq("early_secret_ikm = 0^32", v["early_secret_ikm"], ZEROS)
    early = hkdf_extract(ZEROS, ZEROS)
    th_sf = prefix + sh + ee + cert + cv + sfin
    check_schedule_common(c, v, early, shared, prefix + sh, th_sf)
    check_rsa_and_cv(c, v, prefix + sh + ee + cert)
    check_finished(c, v, "server", prefix + sh + ee + cert + cv)
    check_finished(c, v, "client", th_sf)
    th_cf = th_sf + cfin
    c.eq(
        "transcript_hash_through_client_finished",
        v["transcript_hash_through_client_finished"],
        sha256(th_cf),
    )
    c.eq("res_master_prk = master_secret", v["res_master_prk"], v["master_secret"])
    c.eq(
        "res_master_info",
        v["res_master_info"],
        hkdf_label("res master", sha256(th_cf), 32),
    )
    c.eq(
        "resumption_master_secret",
        v["resumption_master_secret"],
        derive_secret(v["master_secret"], "res master", th_cf),
    )

    check_plain_record(
        c, "client_hello_1_record", v["client_hello_1_record"], ch1, b"\x03\x01"
    )
    c.eq("client_hello_1_record_payload", v["client_hello_1_record_payload"], ch1)
    check_plain_record(
        c,
        "hello_retry_request_record",
        v["hello_retry_request_record"],
        hrr,
        b"\x03\x03",
    )
    c.eq(
        "hello_retry_request_record_payload",
        v["hello_retry_request_record_payload"],
        hrr,
    )
    check_plain_record(
        c, "client_hello_2_record", v["client_hello_2_record"], ch2, b"\x03\x03"
    )
    c.eq("client_hello_2_record_payload", v["client_hello_2_record_payload"], ch2)
    check_plain_record(
        c, "server_hello_record", v["server_hello_record"], sh, b"\x03\x03"
    )
    c.eq("server_hello_record_payload", v["server_hello_record_payload"], sh)
    sk, si = v["server_handshake_write_key"], v["server_handshake_write_iv"]
    ck, ci = v["client_handshake_write_key"], v["client_handshake_write_iv"]
    sak, sai = v["server_application_write_key"], v["server_application_write_iv"]
    cak, cai = v["client_application_write_key"], v["client_application_write_iv"]
    c.eq(
        "server_encrypted_handshake_record_payload = EE||Cert||CV||Fin",
        v["server_encrypted_handshake_record_payload"],
        ee + cert + cv + sfin,
    )
    check_protected_record(
        c,
        "server_encrypted_handshake_record",
        v["server_encrypted_handshake_record"],
        ee + cert + cv + sfin,
        CT_HANDSHAKE,
        sk,
        si,
        0,
    )
    c.eq("client_finished_record_payload", v["client_finished_record_payload"], cfin)
    check_protected_record(
        c,
        "client_finished_record",
        v["client_finished_record"],
        cfin,
        CT_HANDSHAKE,
        ck,
        ci,
        0,
    )
    check_protected_record(
        c,
        "client_alert_record",
        v["client_alert_record"],
        v["client_alert_record_payload"],
        CT_ALERT,
        cak,
        cai,
        0,
    )
    check_protected_record(
        c,
        "server_alert_record",
        v["server_alert_record"],
        v["server_alert_record_payload"],
        CT_ALERT,
        sak,
        sai,
        0,
    )


def main() -> int:
    """Run every check; print a summary; return the process exit status."""
    c = Checker()
    for section in (check_simple_1rtt, check_resumption, check_hrr):
        try:
            section(c)
        except (
            Exception
        ) as exc:  # a malformed value must fail loudly, not crash silently
            c.failures += 1
            print(f"  FAIL  {section.__name__} raised {type(exc).__name__}: {exc}")
    print(f"\n{c.passes} checks passed, {c.failures} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
