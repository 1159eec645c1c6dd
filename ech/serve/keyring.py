"""Several ECH keys at once, their retry policy, reloading and rotation.

Key files are RFC 9934 PEM files (:mod:`ech.keys`). Their names say how the
server uses them:

* ``NAME.accept.pem``: **accept-only**. ClientHellos encrypted to it are
  decrypted, but its config is never sent in ``retry_configs``. A key
  recently replaced stays like this for the DNS TTL, so clients holding the
  old HTTPS record still get ECH accepted.
* any other ``NAME.pem`` (``ech keygen --rotate`` writes ``NAME.retry.pem``):
  **advertised**. Accepted, and its config is in ``retry_configs``
  (``ServerConfig.ech_retry_configs``); it is what DNS should publish.

A key directory (``ech serve --ech-key-dir DIR``) holds such files; names
starting with ``.`` and not ending in ``.pem`` are ignored, so a file
written as ``.NAME.tmp`` and renamed into place is never read half-written.
Files given one by one (``--ech-key FILE``) follow the same naming rule and
come first, in the order given; directory keys follow, newest (by mtime)
first. A key set with accept-only keys but no advertised one is refused:
it would leave nothing to send as retry configs.

:class:`Keyring` holds the current :class:`ServerConfig` and is itself the
config provider given to the server (a callable read once per connection).
:meth:`Keyring.reload` reads every file again and swaps the config in one
assignment; a connection keeps the config it started with, so handshakes in
flight are never disturbed. A reload that fails (a file that does not parse)
keeps the previous keys. Reload on SIGHUP, or let :meth:`Keyring.watch` poll
the files' mtimes.

:func:`rotate` is the usual policy, as ``ech keygen --rotate DIR``: a new
advertised key with a fresh random config_id distinct from every key in the
directory, every previously advertised key demoted to accept-only (its mtime
set to the demotion time), and accept-only keys dropped once more than
``keep`` newer ones exist or ``retire_after`` seconds after their demotion.
Choose ``retire_after`` of at least the HTTPS record's TTL plus the time it
takes to publish the new record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ech import hpke
from ech.config import ECHConfigList
from ech.keys import ECHKey, generate_ech_key, load_ech_key, write_ech_key
from ech.server.config import ServerConfig

__all__ = [
    "ACCEPT_SUFFIX",
    "RETRY_SUFFIX",
    "KeyEntry",
    "KeyPolicy",
    "KeySet",
    "Keyring",
    "KeyringError",
    "Rotation",
    "exposure",
    "load_keyset",
    "policy_of",
    "rotate",
    "warn_if_exposed",
]

log = logging.getLogger("ech.serve")

#: Accept-only key files end with this.
ACCEPT_SUFFIX: Final = ".accept.pem"
#: What ``rotate`` names advertised key files (any other ``.pem`` also is).
RETRY_SUFFIX: Final = ".retry.pem"
_PEM: Final = ".pem"


class KeyringError(ValueError):
    """A key set that cannot be served (the message names the file)."""


def exposure(path: Path) -> str | None:
    """Who besides its owner may read the private key file ``path``, or None.

    ``"group"``, ``"others"`` or ``"group and others"``, from the file's
    mode bits (POSIX only; None where they mean nothing, or when the file
    cannot be examined: reading it reports that).

    ``ech serve`` warns rather than refuses (its docstring says why): keys
    are written 0600 by ``ech keygen`` and our test PKI, and anyone who can
    read a TLS key can impersonate the server, anyone who can read an ECH
    key can read every name its clients hid (RFC 9849 §10.1 rests on that
    key staying secret).
    """
    if os.name != "posix":
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    readers = [
        who
        for who, bit in (("group", stat.S_IRGRP), ("others", stat.S_IROTH))
        if mode & bit
    ]
    return " and ".join(readers) or None


def warn_if_exposed(path: Path, what: str) -> None:
    """Log a warning when the private key file ``path`` is not owner-only."""
    readers = exposure(path)
    if readers is not None:
        mode = stat.S_IMODE(path.stat().st_mode)
        log.warning(
            "%s %s is readable by %s (mode %04o): a private key should be "
            "readable by its owner only (chmod 600)",
            what,
            path,
            readers,
            mode,
        )


class KeyPolicy(enum.Enum):
    """How the server uses one key."""

    #: Decrypt with it and send its config in retry_configs.
    RETRY = "retry"
    #: Decrypt with it only.
    ACCEPT = "accept"

    def __str__(self) -> str:
        return self.value


def policy_of(path: Path) -> KeyPolicy | None:
    """The policy a file name gives, or None if the file is not a key file."""
    name = path.name
    if name.startswith(".") or not name.endswith(_PEM):
        return None
    return KeyPolicy.ACCEPT if name.endswith(ACCEPT_SUFFIX) else KeyPolicy.RETRY


@dataclass(frozen=True)
class KeyEntry:
    """One loaded key file. ``repr`` shows no key material (see ECHKey)."""

    path: Path
    key: ECHKey
    policy: KeyPolicy
    mtime: float


@dataclass(frozen=True)
class KeySet:
    """The keys a server holds, advertised ones first."""

    entries: tuple[KeyEntry, ...] = ()

    @property
    def keys(self) -> tuple[ECHKey, ...]:
        """Every key, advertised first."""
        return tuple(entry.key for entry in self.entries)

    @property
    def advertised(self) -> tuple[KeyEntry, ...]:
        """The keys whose configs are sent as retry_configs."""
        return tuple(e for e in self.entries if e.policy is KeyPolicy.RETRY)

    @property
    def accept_only(self) -> tuple[KeyEntry, ...]:
        """The keys only decrypted with."""
        return tuple(e for e in self.entries if e.policy is KeyPolicy.ACCEPT)

    @property
    def retry_configs(self) -> ECHConfigList | None:
        """The advertised keys' configs, or None without keys."""
        advertised = self.advertised
        if not advertised:
            return None
        return ECHConfigList(tuple(entry.key.config for entry in advertised))

    def apply(self, base: ServerConfig) -> ServerConfig:
        """``base`` with these keys (everything else, ticket keys too, kept)."""
        return dataclasses.replace(
            base, ech_keys=self.keys, ech_retry_configs=self.retry_configs
        )

    def describe(self) -> str:
        """A log-safe summary: config ids, policies, file names; no keys."""
        if not self.entries:
            return "no ECH keys"
        return ", ".join(
            f"{e.path.name} (config_id {e.key.config.config_id}, {e.policy})"
            for e in self.entries
        )


def _key_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if policy_of(p) is not None)
    except OSError as error:
        raise KeyringError(f"cannot list {directory}: {error}") from None


def _load(path: Path, policy: KeyPolicy) -> KeyEntry:
    try:
        mtime = path.stat().st_mtime
        key = load_ech_key(path)
    except (OSError, ValueError) as error:
        raise KeyringError(f"{path}: {error}") from None
    return KeyEntry(path, key, policy, mtime)


def load_keyset(files: Sequence[Path] = (), directories: Sequence[Path] = ()) -> KeySet:
    """Read every key: ``files`` in order, then each directory newest first.

    Raises:
        KeyringError: a file does not parse, a directory cannot be listed,
            or there are accept-only keys but no advertised one.
    """
    explicit = [_load(path, policy_of(path) or KeyPolicy.RETRY) for path in files]
    found: list[KeyEntry] = []
    for directory in directories:
        for path in _key_files(directory):
            found.append(_load(path, policy_of(path) or KeyPolicy.RETRY))
    found.sort(key=lambda e: (-e.mtime, e.path.name))
    entries = explicit + found
    advertised = [e for e in entries if e.policy is KeyPolicy.RETRY]
    accept = [e for e in entries if e.policy is KeyPolicy.ACCEPT]
    if accept and not advertised:
        raise KeyringError(
            "only accept-only ECH keys: at least one must be advertised "
            f"(a key file not named *{ACCEPT_SUFFIX})"
        )
    ids = [e.key.config.config_id for e in entries]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        # Legal (both keys are tried), but it costs a trial per shared id.
        log.warning("ECH keys share config_id %s", repeated)
    return KeySet(tuple(advertised + accept))


def _signature(
    files: Sequence[Path], directories: Sequence[Path]
) -> tuple[tuple[str, int, int, int], ...]:
    """What changes when a key file is added, removed, replaced or written."""
    paths = list(files)
    for directory in directories:
        with contextlib.suppress(OSError):
            paths.extend(p for p in directory.iterdir() if policy_of(p) is not None)
    out: list[tuple[str, int, int, int]] = []
    for path in sorted(set(paths)):
        try:
            st = path.stat()
        except OSError:
            out.append((str(path), -1, -1, -1))
            continue
        out.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class Keyring:
    """The current ServerConfig, with keys reloaded from files; a config provider.

    Call it (``keyring()``) for the config to use for a new connection.

    Args:
        base: everything but the ECH keys (certificates, limits, ...).
        files: key files, in order (``--ech-key``).
        directories: key directories (``--ech-key-dir``).
        on_reload: called after each reload attempt with ``"ok"`` or
            ``"error"`` and the key set now in use (for metrics).
        audit: warn about key files others may read (:func:`exposure`),
            once per file and mode, and about key directories without
            keys at the start. One process of a service audits: the
            supervisor of ``--workers``, not each worker.

    Raises:
        KeyringError: the initial key set cannot be loaded.
    """

    def __init__(
        self,
        base: ServerConfig,
        files: Iterable[Path] = (),
        directories: Iterable[Path] = (),
        *,
        on_reload: Callable[[str, KeySet], None] | None = None,
        audit: bool = False,
    ) -> None:
        self._base = base
        self._files = tuple(Path(p) for p in files)
        self._directories = tuple(Path(p) for p in directories)
        self._on_reload = on_reload
        self._audit = audit
        self._audited: set[tuple[Path, int]] = set()
        self._signature = _signature(self._files, self._directories)
        self._failed: tuple[tuple[str, int, int, int], ...] | None = None
        self.keyset = load_keyset(self._files, self._directories)
        self._config = self.keyset.apply(base)
        if audit:
            for directory in self._directories:
                if not _key_files(directory):
                    log.warning(
                        "--ech-key-dir %s holds no ECH key files (*.pem): ECH is "
                        "not offered until one is added (ech keygen --rotate)",
                        directory,
                    )
            self._audit_files(self.keyset)

    def _audit_files(self, keyset: KeySet) -> None:
        if not self._audit:
            return
        for entry in keyset.entries:
            with contextlib.suppress(OSError):
                seen = (entry.path, entry.path.stat().st_mode)
                if seen not in self._audited:
                    self._audited.add(seen)
                    warn_if_exposed(entry.path, "ECH key")

    def __call__(self) -> ServerConfig:
        """The config for a new connection."""
        return self._config

    @property
    def config(self) -> ServerConfig:
        """The config in use now."""
        return self._config

    @property
    def sources(self) -> tuple[Path, ...]:
        """The key files and directories read."""
        return self._files + self._directories

    def changed(self) -> bool:
        """Whether a key file changed since the last reload (by mtime, size, inode)."""
        return _signature(self._files, self._directories) != self._signature

    def reload(self, *, force: bool = True) -> bool:
        """Read the keys again and swap the config; keep the old one on error.

        Args:
            force: reload even if no file seems to have changed (SIGHUP).

        Returns:
            Whether a new config is in use.
        """
        signature = _signature(self._files, self._directories)
        if not force and (signature == self._signature or signature == self._failed):
            return False
        try:
            keyset = load_keyset(self._files, self._directories)
        except KeyringError as error:
            # Same files, same error: log it once, not on every poll.
            if force or signature != self._failed:
                log.error("ECH key reload failed, keeping the previous keys: %s", error)
            self._failed = signature
            if self._on_reload is not None:
                self._on_reload("error", self.keyset)
            return False
        self._signature = signature
        self._failed = None
        self.keyset = keyset
        self._config = keyset.apply(self._base)  # one assignment: atomic
        self._audit_files(keyset)
        if not keyset.entries and self._directories:
            log.warning("no ECH keys left in %s", ", ".join(map(str, self.sources)))
        log.info("ECH keys loaded: %s", keyset.describe())
        if self._on_reload is not None:
            self._on_reload("ok", keyset)
        return True

    async def watch(self, interval: float) -> None:
        """Reload whenever a key file changes, polling every ``interval`` s."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.reload(force=False)
            except Exception:  # a bug must not stop the watching
                log.exception("ECH key reload failed")


# rotation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate` did."""

    key: ECHKey
    path: Path
    demoted: tuple[Path, ...]
    removed: tuple[Path, ...]
    keyset: KeySet

    @property
    def published(self) -> ECHConfigList:
        """The ECHConfigList to publish in DNS now: the advertised configs."""
        configs = self.keyset.retry_configs
        if configs is None:  # pragma: no cover - the new key is advertised
            raise RuntimeError("no advertised key after a rotation")
        return configs


def _accept_name(path: Path) -> Path:
    name = path.name
    stem = name[: -len(RETRY_SUFFIX)] if name.endswith(RETRY_SUFFIX) else name[:-4]
    return path.with_name(stem + ACCEPT_SUFFIX)


def _unique(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        suffix = "".join(path.suffixes[-2:])
        candidate = path.with_name(f"{path.name[: -len(suffix)]}-{n}{suffix}")
    return candidate


def rotate(
    directory: Path,
    public_name: str,
    *,
    kem_id: int = hpke.KEM.DHKEM_X25519_HKDF_SHA256,
    config_id: int | None = None,
    maximum_name_length: int = 0,
    keep: int | None = None,
    retire_after: float | None = None,
    now: Callable[[], float] = time.time,
) -> Rotation:
    """Add a new advertised key, demote the advertised ones, retire old ones.

    Every step leaves a valid key set (the new key is in place, written to
    a hidden temporary file and renamed, before anything is demoted), so a
    server may reload at any moment.

    Args:
        directory: the key directory (created, mode 0700, if missing).
        public_name: the new config's public_name.
        kem_id: HPKE KEM of the new key.
        config_id: a fixed config_id, else a random one not in the directory.
        maximum_name_length: the new config's maximum_name_length.
        keep: keep at most this many accept-only keys (the newest).
        retire_after: drop accept-only keys demoted more than this many
            seconds ago (their mtime is the demotion time).
        now: the clock (seconds since the epoch).

    Returns:
        What was written, demoted and removed, and the resulting key set.

    Raises:
        KeyringError: the directory holds a file that does not parse.
        ValueError: bad key parameters, or ``config_id`` is taken.
        OSError: the files cannot be written.
    """
    if keep is not None and keep < 0:
        raise ValueError("keep must not be negative")
    if retire_after is not None and retire_after < 0:
        raise ValueError("retire_after must not be negative")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = load_keyset((), (directory,)).entries
    key = generate_ech_key(
        public_name,
        kem_id=kem_id,
        config_id=config_id,
        maximum_name_length=maximum_name_length,
        avoid_ids={entry.key.config.config_id for entry in existing},
    )
    stamp = now()
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(stamp))
    path = _unique(directory / f"ech-{name}-{key.config.config_id:03d}{RETRY_SUFFIX}")
    temporary = directory / f".{path.name}.tmp"
    write_ech_key(temporary, key)
    os.replace(temporary, path)

    demoted: list[Path] = []
    for entry in existing:
        if entry.policy is KeyPolicy.RETRY:
            target = _unique(_accept_name(entry.path))
            os.replace(entry.path, target)
            os.utime(target, (stamp, stamp))
            demoted.append(target)

    accept_only = sorted(
        (p.stat().st_mtime, p.name, p)
        for p in _key_files(directory)
        if policy_of(p) is KeyPolicy.ACCEPT
    )
    accept_only.reverse()  # newest first
    removed: list[Path] = []
    for index, (mtime, _, accepted) in enumerate(accept_only):
        too_many = keep is not None and index >= keep
        too_old = retire_after is not None and stamp - mtime > retire_after
        if too_many or too_old:
            accepted.unlink()
            removed.append(accepted)
    return Rotation(
        key,
        path,
        tuple(demoted),
        tuple(removed),
        load_keyset((), (directory,)),
    )
