"""Key directories, reloads and rotation, with handshakes running throughout."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ech.config import ECHConfigList
from ech.errors import ECHRejectedError
from ech.keys import generate_ech_key, load_ech_key, write_ech_key
from ech.serve.keyring import (
    KeyPolicy,
    Keyring,
    KeyringError,
    load_keyset,
    policy_of,
    rotate,
)
from tests.harness.serve import find_ech_command, run_ech, serve_process
from tests.server.conftest import (
    HIDDEN_NAME,
    PUBLIC_NAME,
    ServerPKI,
    config_list,
    ech_key,
    fetch,
    keygen_rotate,
    run_service,
)

ROTATION_WAIT = 10.0


def ids(configs: ECHConfigList | None) -> list[int]:
    assert configs is not None
    return [config.config_id for config in configs.configs]


def test_policy_from_file_name() -> None:
    assert policy_of(Path("a.pem")) is KeyPolicy.RETRY
    assert policy_of(Path("a.retry.pem")) is KeyPolicy.RETRY
    assert policy_of(Path("a.accept.pem")) is KeyPolicy.ACCEPT
    assert policy_of(Path(".a.pem.tmp")) is None
    assert policy_of(Path(".hidden.pem")) is None
    assert policy_of(Path("README")) is None


def test_load_order_and_retry_configs(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.pem"
    write_ech_key(explicit, ech_key(1))
    keys = tmp_path / "keys"
    keys.mkdir()
    for config_id, name, age in (
        (2, "old.accept.pem", 300),
        (3, "older.pem", 200),
        (4, "new.retry.pem", 100),
    ):
        write_ech_key(keys / name, ech_key(config_id))
        stamp = time.time() - age
        os.utime(keys / name, (stamp, stamp))
    (keys / "notes.txt").write_text("not a key")
    (keys / ".partial.pem").write_text("half written")

    keyset = load_keyset([explicit], [keys])
    # Advertised first: the explicit file, then the directory newest first.
    assert [k.config.config_id for k in keyset.keys] == [1, 4, 3, 2]
    assert ids(keyset.retry_configs) == [1, 4, 3]
    assert [e.path.name for e in keyset.accept_only] == ["old.accept.pem"]
    assert "PRIVATE" not in keyset.describe()


def test_accept_only_alone_is_refused(tmp_path: Path) -> None:
    write_ech_key(tmp_path / "a.accept.pem", ech_key(1))
    with pytest.raises(KeyringError, match="advertised"):
        load_keyset((), (tmp_path,))


def test_bad_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(KeyringError, match=r"broken\.pem"):
        load_keyset((), (tmp_path,))


@pytest.mark.requirement("ECH-11", "ECH-12", "ECH-100")
def test_rotate_policy(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    clock = [1_000_000.0]
    seen_ids: set[int] = set()
    for _ in range(4):
        rotation = rotate(keys, PUBLIC_NAME, now=lambda: clock[0])
        assert rotation.key.config.config_id not in seen_ids  # distinct ids
        seen_ids.add(rotation.key.config.config_id)
        assert ids(rotation.published) == [rotation.key.config.config_id]
        assert stat.S_IMODE(rotation.path.stat().st_mode) == 0o600
        clock[0] += 100
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    names = sorted(p.name for p in keys.iterdir())
    assert sum(n.endswith(".retry.pem") for n in names) == 1
    assert sum(n.endswith(".accept.pem") for n in names) == 3
    assert not [n for n in names if n.startswith(".")]  # no temporary left

    # Demotion times are the rotation times: 1_000_100, 1_000_200, 1_000_300.
    rotation = rotate(keys, PUBLIC_NAME, now=lambda: 1_000_450.0, retire_after=200)
    assert len(rotation.removed) == 2  # demoted at 1_000_100 and 1_000_200
    assert len(rotation.keyset.accept_only) == 2
    rotation = rotate(keys, PUBLIC_NAME, keep=1)
    assert len(rotation.keyset.accept_only) == 1
    assert len(rotation.keyset.advertised) == 1
    accepted = rotation.keyset.accept_only[0]
    assert accepted.path in rotation.demoted  # the key advertised just before


def test_rotate_refuses_a_broken_directory(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(KeyringError):
        rotate(tmp_path, PUBLIC_NAME)
    assert [p.name for p in tmp_path.iterdir()] == ["junk.pem"]


def test_reload_swaps_and_keeps_old_on_error(
    server_pki: ServerPKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = rotate(tmp_path, PUBLIC_NAME)
    results: list[str] = []
    keyring = Keyring(
        server_pki.server_config(),
        directories=[tmp_path],
        on_reload=lambda result, keyset: results.append(result),
    )
    before = keyring()
    assert not keyring.reload(force=False)  # nothing changed
    assert not keyring.changed()

    (tmp_path / "zz.pem").write_text("garbage")
    assert keyring.changed()
    assert not keyring.reload(force=False)
    assert keyring() is before  # the previous keys stay in use
    assert "zz.pem" in caplog.text
    caplog.clear()
    assert not keyring.reload(force=False)  # same error: not logged again
    assert "zz.pem" not in caplog.text
    (tmp_path / "zz.pem").unlink()

    second = rotate(tmp_path, PUBLIC_NAME)
    assert keyring.reload(force=False)
    after = keyring()
    assert after is not before
    assert ids(after.retry_configs) == [second.key.config.config_id]
    assert {k.config.config_id for k in after.ech_keys} == {
        first.key.config.config_id,
        second.key.config.config_id,
    }
    assert after.ticket_key == before.ticket_key  # tickets survive rotation
    assert after.certificates == before.certificates
    assert results == ["error", "ok"]  # the unchanged broken set is not retried


def test_keygen_rotate_command(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = keygen_rotate(keys)
    assert first.returncode == 0, first.stderr
    second = keygen_rotate(keys, "--keep", "1")
    assert second.returncode == 0, second.stderr
    third = keygen_rotate(keys, "--keep", "1", "--kem", "p256")
    assert third.returncode == 0, third.stderr
    published = ECHConfigList.from_base64(third.stdout.strip())
    files = sorted(keys.iterdir())
    assert len(files) == 2
    (retry,) = [p for p in files if p.name.endswith(".retry.pem")]
    assert load_ech_key(retry).config.raw == published.configs[0].raw
    assert "accept-only" in third.stderr
    assert "removed" in third.stderr
    assert "PRIVATE" not in third.stdout + third.stderr


@pytest.mark.parametrize(
    "args",
    [["--keep", "1"], ["--retire-after", "5"]],
    ids=["keep", "retire-after"],
)
def test_keygen_retirement_needs_rotate(tmp_path: Path, args: list[str]) -> None:

    result = run_ech(
        find_ech_command(),
        "keygen",
        "--public-name",
        PUBLIC_NAME,
        "-o",
        tmp_path / "k.pem",
        *args,
    )
    assert result.returncode != 0
    assert "--rotate" in result.stderr
    assert "Traceback" not in result.stderr


# handshakes across a rotation ------------------------------------------------------


class Load:
    """Clients with the pre-rotation config, and a prober for retry_configs."""

    def __init__(self, port: int, pki: ServerPKI, old: ECHConfigList) -> None:
        self.port = port
        self.client = pki.client_config()
        self.old = old
        # A config for a key no server holds: always rejected, shows retry_configs.
        taken = set(ids(old))
        self.stale = config_list(generate_ech_key(PUBLIC_NAME, avoid_ids=taken))
        self.accepted: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.advertised: list[list[int]] = []
        self.stop = asyncio.Event()

    async def old_client(self) -> None:
        while not self.stop.is_set():
            try:
                _, page = await fetch(
                    self.port,
                    self.client,
                    HIDDEN_NAME,
                    ech_configs=self.old,
                    ech_retry=False,
                )
            except Exception as error:
                self.failures.append(repr(error))
                continue
            if page["ech_status"] != "accepted" or page["server_name"] != HIDDEN_NAME:
                self.failures.append(f"old config: {page}")
            self.accepted["old"] += 1

    async def prober(self) -> None:
        while not self.stop.is_set():
            try:
                await fetch(
                    self.port,
                    self.client,
                    HIDDEN_NAME,
                    ech_configs=self.stale,
                    ech_retry=False,
                )
            except ECHRejectedError as rejection:
                self.advertised.append(ids(rejection.retry_configs))
            except Exception as error:
                self.failures.append(repr(error))
            else:
                self.failures.append("a config for an unknown key was accepted")
            await asyncio.sleep(0.02)

    async def until_advertised(self, expected: list[int]) -> None:
        async with asyncio.timeout(ROTATION_WAIT):
            while not self.advertised or self.advertised[-1] != expected:
                await asyncio.sleep(0.02)


async def drive_rotation(
    port: int,
    pki: ServerPKI,
    old: ECHConfigList,
    rotate_keys: Callable[[], Awaitable[ECHConfigList]],
    settled: Callable[[ECHConfigList], Awaitable[None]] | None = None,
) -> Load:
    """Clients run throughout; ``rotate_keys`` (a coroutine function) rotates.

    ``settled`` waits until every process serving has the new keys (a probe
    sees one worker's only).
    """
    load = Load(port, pki, old)
    tasks = [asyncio.create_task(load.old_client()) for _ in range(3)]
    tasks.append(asyncio.create_task(load.prober()))
    try:
        await load.until_advertised(ids(old))
        await asyncio.sleep(0.3)
        before = load.accepted["old"]
        new = await rotate_keys()
        await load.until_advertised(ids(new))
        if settled is not None:
            await settled(new)
        # The new key is accepted, and the old one still is (accept-only).
        _, page = await fetch(
            port, load.client, HIDDEN_NAME, ech_configs=new, ech_retry=False
        )
        assert page["ech_status"] == "accepted"
        during = load.accepted["old"]
        await asyncio.sleep(0.3)
        assert load.accepted["old"] > during > before > 0
    finally:
        load.stop.set()
        await asyncio.gather(*tasks)
    return load


@pytest.mark.requirement("ECH-11", "ECH-86")
def test_rotation_in_process_zero_failures(
    server_pki: ServerPKI, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    first = rotate(keys, PUBLIC_NAME)
    keyring = Keyring(server_pki.server_config(), directories=[keys])

    async def rotate_keys() -> ECHConfigList:
        return rotate(keys, PUBLIC_NAME).published

    async def main() -> None:
        async with run_service(keyring) as running:
            watcher = asyncio.create_task(keyring.watch(0.05))
            try:
                load = await drive_rotation(
                    running.port, server_pki, first.published, rotate_keys
                )
            finally:
                watcher.cancel()
        assert load.failures == []

    asyncio.run(main())


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("trigger", ["sighup", "mtime"])
def test_rotation_ech_serve_zero_failures(
    server_pki: ServerPKI, tmp_path: Path, trigger: str, workers: int
) -> None:
    """SIGHUP and file changes reach every worker; no handshake fails."""
    keys = tmp_path / "keys"
    first = keygen_rotate(keys)
    assert first.returncode == 0, first.stderr
    old = ECHConfigList.from_base64(first.stdout.strip())
    poll = "0" if trigger == "sighup" else "0.1"
    args = [*server_pki.cert_args(), "--ech-key-dir", str(keys), "--key-poll", poll]
    with serve_process(args, tmp_path / "serve.log", workers=workers) as server:

        async def rotate_keys() -> ECHConfigList:
            result = await asyncio.to_thread(keygen_rotate, keys)
            assert result.returncode == 0, result.stderr
            if trigger == "sighup":
                server.process.send_signal(signal.SIGHUP)
            return ECHConfigList.from_base64(result.stdout.strip())

        async def every_worker_has(new: ECHConfigList) -> None:
            (config_id,) = ids(new)
            for index in range(workers):
                loaded = (
                    rf"\[worker {index}\] .*ECH keys loaded: "
                    rf".*\(config_id {config_id}, retry\)"
                )
                await asyncio.to_thread(server.wait_log, loaded)

        async def main() -> Load:
            settled = every_worker_has if workers > 1 else None
            return await drive_rotation(
                server.port, server_pki, old, rotate_keys, settled
            )

        load = asyncio.run(main())
        assert load.failures == []
        outcomes = collections.Counter(c["outcome"] for c in server.connections())
        # Probes end with the client's ech_required alert; nothing else fails.
        assert set(outcomes) <= {"completed", "peer_alert"}, outcomes
        if workers > 1:
            # Both workers served throughout, old keys and new.
            assert {c["worker"] for c in server.connections()} == {0, 1}
        assert server.stop() == 0
    assert "Traceback" not in server.log()
