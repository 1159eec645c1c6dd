"""The pieces of ``ech serve --workers``: sockets, metrics sums, options, flags."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest

from ech.aio import Limits
from ech.cli import build_parser
from ech.cli.serve import default_workers, serve_options
from ech.serve.app import ServeError, ServeOptions
from ech.serve.metrics import METRICS, Metrics
from ech.serve.worker import WorkerSpec, decode_message, encode_message
from ech.serve.workers import (
    WORKER_METRICS,
    listening_sockets,
    reuse_port_balances,
)
from tests.server.conftest import ServerPKI

# sockets ---------------------------------------------------------------------------


def test_port_zero_is_chosen_once_for_every_worker() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 3, udp=True)
    try:
        assert sockets.reuse_port is reuse_port_balances()
        ports = {s.getsockname()[1] for s in (*sockets.tcp, *sockets.udp)}
        assert ports == {sockets.port}
        assert sockets.port != 0
        if sockets.reuse_port:
            assert len(sockets.tcp) == len(sockets.udp) == 3
            tcp = [sockets.for_worker(i)[0] for i in range(3)]
            assert len({s.fileno() for s in tcp}) == 3  # a socket each
    finally:
        sockets.close()


def test_each_socket_of_the_group_gets_connections() -> None:
    """Every listening socket is in the group: none holds the port idly (Linux)."""
    sockets = listening_sockets("127.0.0.1", 0, 2, reuse_port=True)
    try:
        for listener in sockets.tcp:
            listener.setblocking(False)
        clients = [
            socket.create_connection(("127.0.0.1", sockets.port)) for _ in range(32)
        ]
        accepted = []
        for listener in sockets.tcp:
            count = 0
            while True:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    break
                conn.close()
                count += 1
            accepted.append(count)
        for client in clients:
            client.close()
        assert sum(accepted) == 32
        assert all(accepted), accepted  # 2 ** -31 odds of a false failure
    finally:
        sockets.close()


def test_shared_socket_without_reuse_port() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 3, udp=True, reuse_port=False)
    try:
        assert len(sockets.tcp) == len(sockets.udp) == 1
        assert {sockets.for_worker(i)[0] for i in range(3)} == {sockets.tcp[0]}
        # QUIC needs every datagram of a connection in one process: worker 0.
        assert sockets.for_worker(0)[1] is sockets.udp[0]
        assert sockets.for_worker(1)[1] is None
    finally:
        sockets.close()


@pytest.mark.parametrize("held", ["tcp", "udp"])
def test_a_port_held_by_another_server_is_refused(held: str) -> None:
    """A plain bind comes first, so no reuse-port group is joined by mistake."""
    kind = socket.SOCK_STREAM if held == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        if held == "tcp":
            other.listen()
        port = other.getsockname()[1]
        with pytest.raises(ServeError, match="cannot listen on") as refused:
            listening_sockets("127.0.0.1", port, 2, udp=True)
        assert ("UDP" in str(refused.value)) is (held == "udp")
        assert f":{port}: " in str(refused.value)
        assert "in use" in str(refused.value)


# metrics ----------------------------------------------------------------------------


def worker_metrics(accepted: int, open_now: int, keys: int) -> Metrics:
    metrics = Metrics()
    metrics.inc("ech_connections_total", accepted, ech_status="accepted")
    metrics.set("ech_connections_open", open_now)
    metrics.set("ech_keys", keys, policy="retry")
    metrics.observe("ech_handshake_seconds", 0.5)
    return metrics


def test_snapshots_add_up_and_survive_json() -> None:
    one, two = worker_metrics(3, 1, 2), worker_metrics(4, 2, 2)
    total = Metrics()
    for part in (one, two):
        total.add(json.loads(json.dumps(part.snapshot())))
    assert total.value("ech_connections_total", ech_status="accepted") == 7
    assert total.value("ech_connections_open") == 3
    assert "ech_handshake_seconds_count 2" in total.render()


def test_key_families_are_the_supervisors_not_a_sum() -> None:
    owned = {f.name for f in (*METRICS, *WORKER_METRICS) if f.workers == "supervisor"}
    assert owned == {
        "ech_keys",
        "ech_key_reloads_total",
        "ech_workers",
        "ech_worker_restarts_total",
    }
    total = Metrics()
    for part in (worker_metrics(1, 0, 2), worker_metrics(1, 0, 2)):
        total.add(part.snapshot(), only=lambda f: f.workers == "sum")
    assert total.value("ech_keys", policy="retry") == 0  # not 4: not added


@pytest.mark.parametrize(
    "bad",
    [
        {"series": [["ech_connections_open", [], "many"]]},
        {"series": [["ech_connections_open", "labels", 1]]},
        {"series": [["ech_connections_open"]]},
        {"summaries": [["ech_handshake_seconds", 1.0, 1.5]]},
        {"series": [["ech_connections_total", [["other", "x"]], 1]]},
    ],
)
def test_malformed_snapshots_are_refused(bad: dict[str, list[list[object]]]) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        Metrics().add(bad)


# options and the control channel ------------------------------------------------------


def test_options_survive_the_trip_to_a_worker(tmp_path: Path) -> None:
    options = ServeOptions(
        listen=("::1", 8443),
        certs=(tmp_path / "a.pem", tmp_path / "b.pem"),
        keys=(tmp_path / "a.key", tmp_path / "b.key"),
        ech_keys=(tmp_path / "e.pem",),
        ech_key_dirs=(tmp_path / "keys",),
        key_poll=0.5,
        trial_decryption=True,
        doh="/dns-query",
        require_ech=("secret.example",),
        metrics=("127.0.0.1", 9100),
        limits=Limits(
            handshake_timeout=1.5,
            idle_timeout=2.5,
            max_connections=7,
            max_client_hello=4096,
            buffer_size=8192,
            shutdown_timeout=0.25,
            max_connections_per_address=3,
        ),
        backends={"api.example": ("10.0.0.2", 443)},
        backend_mode=True,
        http3=True,
        workers=3,
        request_head_timeout=2.5,
        client_ca=tmp_path / "clients.pem",
        require_client_certificate=True,
        early_data=4096,
    )
    # Every field differs from its default, so a field the codec forgets fails.
    defaults = ServeOptions(listen=("", 0), certs=(), keys=())
    for field in dataclasses.fields(ServeOptions):
        if field.name not in ("listen", "certs", "keys"):
            assert getattr(options, field.name) != getattr(defaults, field.name)
    spec = WorkerSpec(
        2, options, tcp_fd=5, udp_fd=None, log_level=10, ticket_key=bytes(range(32))
    )
    line = encode_message(spec.to_json())
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert WorkerSpec.from_json(decode_message(line)) == spec
    # The shared session ticket key is a secret: never in a repr (logs).
    assert bytes(range(32)).hex() not in repr(spec)


def test_bad_control_messages() -> None:
    with pytest.raises(ValueError, match="object"):
        decode_message(b"[1, 2]\n")
    with pytest.raises(ValueError, match="worker spec"):
        WorkerSpec.from_json({"worker": 1})
    with pytest.raises(ValueError, match="workers"):
        ServeOptions(listen=("", 0), certs=(), keys=(), workers=0)


# the flag ---------------------------------------------------------------------------


def test_workers_default_is_one_per_cpu(server_pki: ServerPKI) -> None:
    base = ["serve", "--listen", "127.0.0.1:0", *server_pki.cert_args()[:4]]
    parser = build_parser()
    assert serve_options(parser.parse_args(base)).workers == default_workers()
    assert serve_options(parser.parse_args([*base, "--workers", "3"])).workers == 3
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    expected = len(allowed) if allowed else os.cpu_count()
    assert default_workers() == expected


def test_per_address_limit_default(server_pki: ServerPKI) -> None:
    """Half of --max-connections; all of it on a split-mode backend, whose
    clients are its few client-facing servers."""
    base = ["serve", "--listen", "127.0.0.1:0", *server_pki.cert_args()[:4]]
    base += ["--max-connections", "40"]
    parser = build_parser()

    def per_address(*args: str) -> int:
        return serve_options(parser.parse_args([*base, *args])).limits.per_address

    assert per_address() == 20
    assert per_address("--backend-mode") == 40
    assert per_address("--backend-mode", "--max-connections-per-address", "5") == 5
    assert per_address("--max-connections-per-address", "30") == 30
