"""How :class:`ech.aio.TLSStream` coalesces writes, seen from the server's transport.

Each write is a system call and a TCP segment. The NewSessionTicket goes
out with the first response and the last response with close_notify when
they come in the same event-loop step; nothing queued waits for the peer,
nor past the end of the step.
"""

from __future__ import annotations

import asyncio

from ech.aio import Server, TLSStream, open_connection
from ech.aio.tcp import StreamReader, StreamWriter
from ech.http import fetch_async
from ech.server.connection import ServerConnection
from tests.harness.http import page_json
from tests.server.conftest import (
    HIDDEN_NAME,
    IO_TIMEOUT,
    ServerPKI,
    config_list,
    ech_key,
    run_service,
)

REQUEST = f"GET / HTTP/1.1\r\nHost: {HIDDEN_NAME}\r\nConnection: close\r\n\r\n"


class LoggedWriter:
    """A :class:`~ech.aio.tcp.StreamWriter` that logs each write, then makes it."""

    def __init__(self, writer: StreamWriter, writes: list[bytes]) -> None:
        self._writer = writer
        self._writes = writes

    @property
    def transport(self) -> asyncio.WriteTransport:
        return self._writer.transport

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._writer.get_extra_info(name, default)


class WriteLog:
    """Records every write of the server's connections, in order."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def attach(self, server: Server) -> None:
        """Wrap ``server.new_stream`` so that its writers log here."""
        new_stream = server.new_stream

        def logged(
            reader: StreamReader, writer: StreamWriter
        ) -> tuple[TLSStream, ServerConnection]:
            return new_stream(reader, LoggedWriter(writer, self.writes))

        server.new_stream = logged  # type: ignore[method-assign]


def test_ticket_response_and_close_notify_leave_in_one_write(
    server_pki: ServerPKI,
) -> None:
    """A request sent with the client's Finished is answered in one write."""
    key = ech_key(1)
    log = WriteLog()

    async def main() -> None:
        async with run_service(server_pki.server_config([key])) as running:
            log.attach(running.service)
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1",
                    running.port,
                    server_pki.client_config(),
                    HIDDEN_NAME,
                    ech_configs=config_list(key),
                )
                # The same step: our Finished and the request, one write.
                await stream.send(REQUEST.encode())
                received = bytearray()
                while chunk := await stream.recv():
                    received += chunk
                await stream.close()
        assert b'"ech_status": "accepted"' in received
        assert stream.session_tickets  # the ticket came, before close_notify
        assert stream.alert_received is None

    asyncio.run(main())
    _flight, rest = log.writes  # ServerHello..Finished; ticket+response+close
    assert len(rest) > len(REQUEST)


def test_the_ticket_does_not_wait_for_a_request(server_pki: ServerPKI) -> None:
    """A server waiting for the request has sent its ticket already."""
    log = WriteLog()

    async def main() -> None:
        async with run_service(server_pki.server_config()) as running:
            log.attach(running.service)
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, server_pki.client_config(), HIDDEN_NAME
                )
                while len(log.writes) < 2:  # the flight, then the ticket alone
                    await asyncio.sleep(0.01)
                page = page_json(await fetch_async(stream, "/", host=HIDDEN_NAME))
                await stream.close()
        assert page["server_name"] == HIDDEN_NAME
        assert stream.session_tickets

    asyncio.run(main())
    assert len(log.writes) == 3  # the response came with close_notify


def test_data_sent_is_written_by_the_end_of_the_step(server_pki: ServerPKI) -> None:
    """A server that sends, then waits on something else, has sent it."""
    read = asyncio.Event()

    async def app(stream: TLSStream) -> None:
        await stream.send(b"hello")
        await read.wait()  # not a read: only the end of the step writes it

    async def main() -> bytes:
        async with run_service(server_pki.server_config(), app=app) as running:
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, server_pki.client_config(), HIDDEN_NAME
                )
                data = await stream.recv()
                read.set()
                await stream.close()
        return data

    assert asyncio.run(main()) == b"hello"


def test_a_large_send_is_written_before_it_returns(server_pki: ServerPKI) -> None:
    """Past 64 KiB queued, :meth:`TLSStream.send` writes (and drains) at once."""
    log = WriteLog()
    big = bytes(200_000)
    written_when_send_returned: list[int] = []

    async def app(stream: TLSStream) -> None:
        before = sum(map(len, log.writes))
        await stream.send(big)
        written_when_send_returned.append(sum(map(len, log.writes)) - before)

    async def main() -> int:
        async with run_service(server_pki.server_config(), app=app) as running:
            log.attach(running.service)
            async with asyncio.timeout(IO_TIMEOUT):
                stream = await open_connection(
                    "127.0.0.1", running.port, server_pki.client_config(), HIDDEN_NAME
                )
                received = 0
                while chunk := await stream.recv():
                    received += len(chunk)
                await stream.close()
        return received

    assert asyncio.run(main()) == len(big)
    assert written_when_send_returned[0] > len(big)  # records add their overhead
