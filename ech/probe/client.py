"""``ech probe-client``: a deliberately misbehaving client-facing server.

Each incoming connection serves one step of a fixed sequence, and the probe
prints, before it, what the client must do. The server is our own
:class:`~ech.server.connection.ServerConnection`, broken through its public
seams (``ServerConfig.ech_confirmation_hook``,
``encrypted_extensions_hook``, the certificates and ECH keys it holds).

Retries are told apart from the next step by the config they use: every
step that sends retry_configs sends a key of its own, with a config_id used
nowhere else, so a connection offering that config_id is that step's
client retrying (RFC 9849 §6.1.6). The probe reads the ClientHello before
choosing which server answers it.

What the client did on each connection is recorded: completed the
handshake, sent an alert (``ech_required`` after a rejection, RFC 9849
§6.1.6), sent a record our keys do not open (it took another handshake
than ours), closed, or went silent; and whether it retried.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from ech.arguments import (
    add_certificate_pairs,
    ech_key_file,
    listen_address,
)
from ech.config import ECHConfigList
from ech.errors import Alert, ConnectionClosedError
from ech.events import ECHStatus, HandshakeComplete
from ech.extension import parse_client_hello_extension
from ech.keys import ECHKey, generate_ech_key, load_ech_key
from ech.probe.report import CheckInfo, CheckResult, Report, Result
from ech.server.config import ServerConfig
from ech.server.connection import ServerConnection
from ech.tls import extensions as ext
from ech.tls.certificates import CertifiedKey
from ech.tls.enums import AlertDescription, ContentType, ExtensionType, HandshakeType
from ech.tls.events import ConnectionClosed, DataReceived
from ech.tls.extensions import Extension
from ech.tls.groups import SUPPORTED_GROUPS
from ech.tls.messages import ClientHello, EncryptedExtensions

E = ExtensionType
A = AlertDescription

#: Alerts a client sends when a certificate does not authenticate the name.
CERTIFICATE_ALERTS = (
    A.BAD_CERTIFICATE,
    A.CERTIFICATE_UNKNOWN,
    A.UNKNOWN_CA,
    A.CERTIFICATE_EXPIRED,
    A.UNSUPPORTED_CERTIFICATE,
    A.ACCESS_DENIED,
    A.HANDSHAKE_FAILURE,
)


# what a client did on one connection ------------------------------------------------


@dataclass
class Seen:
    """What the client did on one connection.

    Attributes:
        offered_config_id: the config_id of its outer ECH, if any.
        completed: our handshake completed (the client's Finished verified).
        ech_status: what became of ECH on our side.
        alert: the alert the client sent, if we could read it.
        unreadable: the client sent a record our keys do not open: it went on
            with another handshake than ours (e.g. it took ECH as rejected).
        closed: the client closed without an alert.
        silent: nothing more came within the timeout.
        hello_retry: we sent a HelloRetryRequest and the client answered.
        server_error: our server refused what the client sent (an alert).
    """

    offered_config_id: int | None = None
    completed: bool = False
    ech_status: ECHStatus = ECHStatus.NOT_OFFERED
    alert: AlertDescription | None = None
    unreadable: str | None = None
    closed: bool = False
    silent: bool = False
    hello_retry: bool = False
    server_error: str | None = None

    def describe(self) -> str:
        """What the client did, in a few words."""
        parts = []
        if self.offered_config_id is not None:
            parts.append(f"offered ECH config_id {self.offered_config_id}")
        else:
            parts.append("offered no ECH")
        if self.hello_retry:
            parts.append("answered our HelloRetryRequest")
        if self.completed:
            parts.append(f"finished the handshake (ECH {self.ech_status} by us)")
        if self.alert is not None:
            parts.append(f"sent alert {self.alert}")
        if self.unreadable is not None:
            parts.append(
                "sent a record our handshake keys do not open "
                f"({self.unreadable}): it did not follow our handshake"
            )
        if self.server_error is not None:
            parts.append(f"made our server abort ({self.server_error})")
        if self.closed:
            parts.append("closed the connection")
        if self.silent:
            parts.append("went silent")
        return "; ".join(parts)

    @property
    def aborted(self) -> bool:
        """The client ended the handshake without completing it."""
        return not self.completed


# the steps ----------------------------------------------------------------------------


@dataclass
class Step:
    """One check: the server to run and how to judge the client.

    Attributes:
        info: id, requirement numbers (``ECH-N``), RFC section, summary.
        instruction: what the client must do, printed before the connection.
        server: the server config for this step's connection, from the base.
        judge: the verdict on what the client did.
        retry_key: the key sent as retry_configs, if any; a connection
            offering its config_id is this step's client retrying.
        retry_server: the server for that retry connection.
        judge_retry: the verdict on the retry (None: a retry is a failure).
        no_retry: the verdict when the client did not retry.
        hello_retry: force a HelloRetryRequest.
        then_key: after a retry, the key of a second retry (which must not
            come).
    """

    info: CheckInfo
    instruction: str
    server: Callable[[ServerConfig], ServerConfig]
    judge: Callable[[Seen], tuple[Result, str]]
    retry_key: ECHKey | None = None
    retry_server: Callable[[ServerConfig], ServerConfig] | None = None
    judge_retry: Callable[[Seen], tuple[Result, str]] | None = None
    no_retry: tuple[Result, str] | None = None
    hello_retry: bool = False
    then_key: ECHKey | None = None


def _completed_accepted(seen: Seen) -> tuple[Result, str]:
    if seen.completed and seen.ech_status is ECHStatus.ACCEPTED:
        return Result.PASS, ""
    return Result.FAIL, ""


def _not_completed(seen: Seen) -> tuple[Result, str]:
    if seen.aborted:
        return Result.PASS, ""
    return Result.FAIL, "the client completed a handshake it should have refused"


def _alert(*alerts: AlertDescription) -> Callable[[Seen], tuple[Result, str]]:
    def judge(seen: Seen) -> tuple[Result, str]:
        if seen.alert in alerts:
            return Result.PASS, ""
        if seen.aborted:
            return Result.FAIL, "it aborted, but not with the alert the RFC names"
        return Result.FAIL, ""

    return judge


def _ech_required(seen: Seen) -> tuple[Result, str]:
    """A rejected client finishes the handshake, then aborts (§6.1.6, ECH-63)."""
    if seen.alert is A.ECH_REQUIRED:
        return Result.PASS, ""
    return Result.FAIL, "a rejected client must abort with ech_required"


def _must_not_retry(seen: Seen) -> tuple[Result, str]:
    return Result.FAIL, "the client retried with retry_configs it must not use"


def _with_ee_ech(body: bytes) -> Callable[[EncryptedExtensions], EncryptedExtensions]:
    def hook(ee: EncryptedExtensions) -> EncryptedExtensions:
        kept = tuple(e for e in ee.extensions if e.type != E.ENCRYPTED_CLIENT_HELLO)
        return EncryptedExtensions((*kept, Extension(E.ENCRYPTED_CLIENT_HELLO, body)))

    return hook


def _wrong(value: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in value)


def _retry_configs(key: ECHKey) -> ECHConfigList:
    return ECHConfigList((key.config,))


def make_steps(
    key: ECHKey,
    certificates: tuple[CertifiedKey, ...],
    new_key: Callable[[], ECHKey],
) -> list[Step]:
    """The fixed sequence of checks, with fresh retry keys."""
    public_name = key.config.public_name
    not_public = tuple(c for c in certificates if not c.matches(public_name))

    def accepting(config: ServerConfig) -> ServerConfig:
        return dataclasses.replace(config, ech_keys=(key,), ech_retry_configs=None)

    def rejecting(retry: ECHKey) -> Callable[[ServerConfig], ServerConfig]:
        def server(config: ServerConfig) -> ServerConfig:
            return dataclasses.replace(
                config, ech_keys=(retry,), ech_retry_configs=_retry_configs(retry)
            )

        return server

    def serving(retry: ECHKey) -> Callable[[ServerConfig], ServerConfig]:
        def server(config: ServerConfig) -> ServerConfig:
            return dataclasses.replace(config, ech_keys=(retry,))

        return server

    reject_key, second_a, second_b = new_key(), new_key(), new_key()
    no_cert_key, malformed_key = new_key(), new_key()
    return [
        Step(
            CheckInfo(
                "accept",
                (54, 57),
                "RFC 9849 §6.1.4, §6.1.5",
                "control: ECH accepted, the client completes the handshake",
            ),
            "complete the handshake with ECH accepted",
            accepting,
            _completed_accepted,
        ),
        Step(
            CheckInfo(
                "hrr-accept",
                (54, 56, 58, 59),
                "RFC 9849 §6.1.5, §7.2.1",
                "control: ECH accepted after HelloRetryRequest (same HPKE context, "
                "empty enc)",
            ),
            "answer our HelloRetryRequest and complete with ECH accepted",
            accepting,
            _completed_accepted,
            hello_retry=True,
        ),
        Step(
            CheckInfo(
                "reject-retry",
                (24, 60, 63, 64, 65),
                "RFC 9849 §6.1.6",
                "control: ECH rejected with retry_configs: the client authenticates "
                "public_name, aborts with ech_required and retries with them",
            ),
            "authenticate public_name, send ech_required, retry with the "
            "retry_configs on a new connection",
            rejecting(reject_key),
            _ech_required,
            retry_key=reject_key,
            retry_server=serving(reject_key),
            judge_retry=_completed_accepted,
            no_retry=(
                Result.FAIL,
                "the client did not retry (RFC 9849 §6.1.6: it SHOULD; if it "
                "does not, it MUST report an error to the application)",
            ),
        ),
        Step(
            CheckInfo(
                "wrong-confirmation",
                (54,),
                "RFC 9849 §6.1.4",
                "the ServerHello's accept_confirmation is wrong: the client must "
                "treat ECH as rejected (so the handshake it expects is not ours)",
            ),
            "treat ECH as rejected: the handshake must not complete",
            lambda config: dataclasses.replace(
                accepting(config),
                ech_confirmation_hook=lambda sh, value: _wrong(value),
            ),
            _not_completed,
        ),
        Step(
            CheckInfo(
                "hrr-wrong-confirmation",
                (54, 59),
                "RFC 9849 §6.1.4, §6.1.5",
                "the HelloRetryRequest's confirmation is wrong: the client must "
                "treat ECH as rejected",
            ),
            "treat ECH as rejected after our HelloRetryRequest: the handshake "
            "must not complete",
            lambda config: dataclasses.replace(
                accepting(config),
                ech_confirmation_hook=lambda sh, value: (
                    _wrong(value) if sh.is_hello_retry_request else value
                ),
            ),
            _not_completed,
            hello_retry=True,
        ),
        Step(
            CheckInfo(
                "accept-retry-configs",
                (22,),
                "RFC 9849 §5",
                "retry_configs in EncryptedExtensions of an accepted handshake: "
                "unsupported_extension",
            ),
            "abort with unsupported_extension",
            lambda config: dataclasses.replace(
                accepting(config),
                encrypted_extensions_hook=_with_ee_ech(key_list_bytes(key)),
            ),
            _alert(A.UNSUPPORTED_EXTENSION),
        ),
        Step(
            CheckInfo(
                "accept-ee-ech",
                (22,),
                "RFC 9849 §5",
                "an empty encrypted_client_hello in EncryptedExtensions of an "
                "accepted handshake: unsupported_extension",
            ),
            "abort with unsupported_extension",
            lambda config: dataclasses.replace(
                accepting(config), encrypted_extensions_hook=_with_ee_ech(b"")
            ),
            _alert(A.UNSUPPORTED_EXTENSION),
        ),
        Step(
            CheckInfo(
                "malformed-retry-configs",
                (61,),
                "RFC 9849 §6.1.6",
                "ECH rejected with malformed retry_configs: decode_error",
            ),
            "abort with decode_error, and not retry",
            lambda config: dataclasses.replace(
                rejecting(malformed_key)(config),
                encrypted_extensions_hook=_with_ee_ech(b"\x00\x09\xfe\x0d\x00\x05\x01"),
            ),
            _alert(A.DECODE_ERROR),
            retry_key=malformed_key,
            retry_server=serving(malformed_key),
            no_retry=(Result.PASS, ""),
        ),
        Step(
            CheckInfo(
                "retry-configs-unauthenticated",
                (60, 65),
                "RFC 9849 §6.1.6, §6.1.7",
                "ECH rejected by a server whose certificate is not valid for "
                "public_name: the client aborts and does not use its retry_configs",
            ),
            "refuse the certificate (not valid for public_name) and not retry",
            lambda config: dataclasses.replace(
                rejecting(no_cert_key)(config),
                certificates=not_public or config.certificates,
            ),
            _certificate_refused if not_public else _no_other_certificate,
            retry_key=no_cert_key,
            retry_server=serving(no_cert_key),
            no_retry=(Result.PASS, ""),
        ),
        Step(
            CheckInfo(
                "second-rejection",
                (64,),
                "RFC 9849 §6.1.6",
                "ECH rejected again on the retry: the client must not retry twice",
            ),
            "send ech_required, retry once, then after the second rejection "
            "send ech_required and not retry again",
            rejecting(second_a),
            _ech_required,
            retry_key=second_a,
            retry_server=rejecting(second_b),
            judge_retry=_second_rejection,
            no_retry=(
                Result.NOT_APPLICABLE,
                "the client does not retry, so a second rejection cannot happen",
            ),
            then_key=second_b,
        ),
    ]


def key_list_bytes(key: ECHKey) -> bytes:
    """A well-formed retry_configs body for ``key``."""
    return _retry_configs(key).encode()


def _certificate_refused(seen: Seen) -> tuple[Result, str]:
    if seen.completed or seen.alert is A.ECH_REQUIRED:
        return (
            Result.FAIL,
            "the client accepted a certificate not valid for public_name",
        )
    return Result.PASS, ""


def _no_other_certificate(seen: Seen) -> tuple[Result, str]:
    return (
        Result.NOT_APPLICABLE,
        "give a certificate that is not valid for public_name (--cert)",
    )


def _second_rejection(seen: Seen) -> tuple[Result, str]:
    if seen.alert is A.ECH_REQUIRED or not seen.completed:
        return Result.PASS, ""
    return Result.FAIL, "the client went on although ECH was rejected again"


# serving one connection ---------------------------------------------------------------


def _read_client_hello(sock: socket.socket, timeout: float) -> tuple[bytes, bytes]:
    """Read until the first handshake message is whole: (bytes read, its body)."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        body = _first_message(data)
        if body is not None:
            return data, body
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no ClientHello")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a ClientHello")
        data += chunk


def _first_message(data: bytes) -> bytes | None:
    handshake = b""
    offset = 0
    while offset + 5 <= len(data):
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        if offset + 5 + length > len(data):
            return None
        if data[offset] == ContentType.HANDSHAKE:
            handshake += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if len(handshake) >= 4:
            size = int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= 4 + size:
                if handshake[0] != HandshakeType.CLIENT_HELLO:
                    raise ConnectionError("the first message is not a ClientHello")
                return handshake[4 : 4 + size]
    return None


def _offered_config_id(hello: ClientHello) -> int | None:
    data = hello.extension(E.ENCRYPTED_CLIENT_HELLO)
    if data is None:
        return None
    with contextlib.suppress(Alert):
        offer = parse_client_hello_extension(data)
        return offer.config_id if offer is not None else None
    return None


def _hello_retry_groups(hello: ClientHello, base: tuple[int, ...]) -> tuple[int, ...]:
    """Groups the client supports but sent no share for: they force an HRR."""
    groups_data = hello.extension(E.SUPPORTED_GROUPS)
    shares_data = hello.extension(E.KEY_SHARE)
    if groups_data is None or shares_data is None:
        return base
    shared = {e.group for e in ext.decode_client_key_shares(shares_data)}
    wanted = tuple(
        g
        for g in ext.decode_u16_list(groups_data)
        if g not in shared and g in SUPPORTED_GROUPS
    )
    return wanted or base


_HTTP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 20\r\n"
    b"connection: close\r\n\r\nech probe-client: ok"
)


def serve_connection(
    sock: socket.socket, config: ServerConfig, first: bytes, timeout: float
) -> Seen:
    """Run ``config`` on ``sock`` (``first`` already read); what the client did.

    After the handshake, HTTP requests get a short response and anything
    else is echoed, so HTTP clients and echo clients both finish.
    """
    seen = Seen()
    conn = ServerConnection(config)
    data = first
    deadline = time.monotonic() + timeout
    while True:
        try:
            events = conn.receive_data(data)
        except Alert as error:
            if error.description == A.BAD_RECORD_MAC:
                seen.unreadable = str(error)
            else:
                seen.server_error = str(error)
            break
        except ConnectionClosedError:
            break
        finally:
            seen.ech_status = conn.ech_status
            seen.hello_retry = conn.hello_retry
        out = conn.data_to_send()
        for event in events:
            if isinstance(event, HandshakeComplete):
                seen.completed = True
            elif isinstance(event, DataReceived):
                if event.data[:4] in (b"GET ", b"HEAD", b"POST"):
                    conn.send(_HTTP_RESPONSE)
                    conn.close()
                else:
                    conn.send(event.data)
                out += conn.data_to_send()
            elif isinstance(event, ConnectionClosed):
                if event.alert is None:
                    seen.closed = True
                elif event.alert == A.CLOSE_NOTIFY:
                    conn.close()
                    out += conn.data_to_send()
                    seen.closed = True
                else:
                    seen.alert = AlertDescription(event.alert)
        with contextlib.suppress(OSError):
            sock.sendall(out)
        if seen.closed or seen.alert is not None:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            seen.silent = True
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            seen.silent = True
            break
        except OSError:
            seen.closed = True
            break
        if not data:
            seen.closed = True
            break
    with contextlib.suppress(OSError):
        sock.sendall(conn.data_to_send())
    return seen


# the probe ---------------------------------------------------------------------------


@dataclass
class _Awaiting:
    """A retry a step expects (or forbids): a connection offering ``key``."""

    step: Step
    key: ECHKey
    server: Callable[[ServerConfig], ServerConfig]
    judge: Callable[[Seen], tuple[Result, str]]
    absent: tuple[Result, str]
    then: ECHKey | None = None


@dataclass
class _Outcome:
    """Everything one check saw, over its connections."""

    results: list[Result] = field(default_factory=list)
    expected: str = ""
    observed: list[str] = field(default_factory=list)

    def add(self, result: Result, observed: str, detail: str = "") -> None:
        self.results.append(result)
        self.observed.append(observed + (f" ({detail})" if detail else ""))

    def worst(self) -> Result:
        return max(self.results, key=_ORDER.index)


_ORDER = [Result.PASS, Result.NOT_APPLICABLE, Result.FAIL, Result.ERROR]


@dataclass
class ClientProbe:
    """The misbehaving server: steps in order, one per connection (plus retries).

    Attributes:
        base: the server config (certificates; ECH keys are set per step).
        key: the ECH key whose config the client under test was given.
        timeout: seconds to wait for a client's next move.
        grace: seconds to wait after the last step for a retry.
        out: where the instructions go.
    """

    base: ServerConfig
    key: ECHKey
    timeout: float = 10.0
    grace: float = 3.0
    out: TextIO = sys.stderr
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        taken = {self.key.config.config_id}
        contents = self.key.config.contents
        suites = contents.cipher_suites if contents is not None else ()

        def new_key() -> ECHKey:
            made = generate_ech_key(
                self.key.config.public_name, avoid_ids=taken, cipher_suites=suites
            )
            taken.add(made.config.config_id)
            return made

        self.steps = make_steps(self.key, self.base.certificates, new_key)

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run(self, listener: socket.socket, rounds: int = 1) -> Report:
        """Serve ``rounds`` passes over the steps on ``listener``; the report.

        A check passes only if it passed in every round.
        """
        outcomes: dict[str, _Outcome] = {}
        # One sequence: a connection after a round's last step may be the
        # next round's first, or a retry the last step forbade.
        self._sequence(listener, self.steps * rounds, rounds, outcomes)
        address = _address(listener)
        report = Report("client", address, "tcp")
        report.facts["listen"] = address
        report.facts["public_name"] = self.key.config.public_name
        report.facts["ech_config_list"] = _retry_configs(self.key).to_base64()
        for step in self.steps:
            outcome = outcomes.get(step.info.id)
            if outcome is None:
                continue
            report.results.append(
                CheckResult(
                    step.info,
                    outcome.worst(),
                    outcome.expected,
                    "; then ".join(outcome.observed),
                )
            )
        return report

    def _sequence(
        self,
        listener: socket.socket,
        steps: list[Step],
        rounds: int,
        outcomes: dict[str, _Outcome],
    ) -> None:
        awaiting: list[_Awaiting] = []
        index = 0
        announced = -1
        while index < len(steps) or awaiting:
            last = index >= len(steps)
            if not last:
                step = steps[index]
            if not last and announced != index:
                announced = index
                if rounds > 1 and index % len(self.steps) == 0:
                    self._say(f"round {index // len(self.steps) + 1} of {rounds}")
                self._say(
                    f"next connection: {step.info.id}: the client must "
                    f"{step.instruction}"
                )
            sock = _accept(listener, self.grace if last else self.timeout)
            if sock is None:
                for pending in awaiting:
                    self._absent(pending, outcomes)
                awaiting = []
                if last:
                    break
                outcome = outcomes.setdefault(step.info.id, _Outcome())
                outcome.expected = step.instruction
                outcome.add(Result.FAIL, "no connection came")
                index += 1
                continue
            with sock:
                try:
                    first, body = _read_client_hello(sock, self.timeout)
                    hello = ClientHello.parse(body)
                except (OSError, ConnectionError, Alert) as error:
                    self._say(f"  a connection without a ClientHello: {error}")
                    continue
                config_id = _offered_config_id(hello)
                retry = next(
                    (a for a in awaiting if a.key.config.config_id == config_id), None
                )
                if retry is not None:
                    awaiting.remove(retry)
                    awaiting.extend(self._retry(sock, retry, hello, first, outcomes))
                    continue
                for pending in awaiting:
                    self._absent(pending, outcomes)
                awaiting = []
                if last:
                    self._say("  a connection after the last step: ignored")
                    continue
                index += 1
                awaiting.extend(self._first(sock, step, hello, first, outcomes))

    def _first(
        self,
        sock: socket.socket,
        step: Step,
        hello: ClientHello,
        first: bytes,
        outcomes: dict[str, _Outcome],
    ) -> list[_Awaiting]:
        seen = self._serve(sock, step, step.server, hello, first)
        result, detail = step.judge(seen)
        outcome = outcomes.setdefault(step.info.id, _Outcome())
        outcome.expected = step.instruction
        outcome.add(result, seen.describe(), detail)
        if step.retry_key is None:
            return []
        return [
            _Awaiting(
                step,
                step.retry_key,
                step.retry_server or step.server,
                step.judge_retry or _must_not_retry,
                step.no_retry or (Result.PASS, ""),
                step.then_key,
            )
        ]

    def _retry(
        self,
        sock: socket.socket,
        awaiting: _Awaiting,
        hello: ClientHello,
        first: bytes,
        outcomes: dict[str, _Outcome],
    ) -> list[_Awaiting]:
        step = awaiting.step
        self._say(f"  {step.info.id}: the client retried with the retry_configs")
        seen = self._serve(sock, step, awaiting.server, hello, first)
        result, detail = awaiting.judge(seen)
        outcomes[step.info.id].add(result, "retried: " + seen.describe(), detail)
        if awaiting.then is None:
            return []
        # A retry that was rejected again: one more retry is a failure.
        return [
            _Awaiting(
                step,
                awaiting.then,
                awaiting.server,
                _must_not_retry,
                (Result.PASS, ""),
            )
        ]

    def _absent(self, awaiting: _Awaiting, outcomes: dict[str, _Outcome]) -> None:
        result, detail = awaiting.absent
        outcomes[awaiting.step.info.id].add(result, "did not retry", detail)

    def _serve(
        self,
        sock: socket.socket,
        step: Step,
        make: Callable[[ServerConfig], ServerConfig],
        hello: ClientHello,
        first: bytes,
    ) -> Seen:
        config = make(self.base)
        if step.hello_retry:
            config = dataclasses.replace(
                config, groups=_hello_retry_groups(hello, config.groups)
            )
        seen = serve_connection(sock, config, first, self.timeout)
        seen.offered_config_id = _offered_config_id(hello)
        self._say(f"  {step.info.id}: the client {seen.describe()}")
        return seen


def _accept(listener: socket.socket, timeout: float) -> socket.socket | None:
    listener.settimeout(timeout)
    try:
        sock, _ = listener.accept()
    except TimeoutError:
        return None
    return sock


def _address(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"{host}:{port}"


# the command --------------------------------------------------------------------------


def probe_client(
    listener: socket.socket,
    certificates: tuple[CertifiedKey, ...],
    key: ECHKey,
    *,
    rounds: int = 1,
    timeout: float = 10.0,
    grace: float = 3.0,
    out: TextIO = sys.stderr,
) -> Report:
    """Serve the client checks on ``listener``; the report.

    Args:
        listener: a listening TCP socket.
        certificates: chains with keys, for the inner name and public_name
            (and, for one check, one not valid for public_name).
        key: the ECH key whose config the client was given.
        rounds: passes over the sequence.
        timeout: seconds to wait for the client's next move.
        grace: seconds to wait for a retry after the last step.
        out: where the instructions go.
    """
    base = ServerConfig(
        certificates=certificates,
        alpn_protocols=("http/1.1",),
        session_tickets=False,
    )
    probe = ClientProbe(base, key, timeout, grace, out)
    return probe.run(listener, rounds)


def cmd_probe_client(args: argparse.Namespace) -> int:
    """Run ``ech probe-client``; 0 iff every check that applies passed."""
    if len(args.cert) != len(args.key):
        print("ech probe-client: give one --key per --cert", file=sys.stderr)
        return 2
    certificates = tuple(
        CertifiedKey.load(c, k) for c, k in zip(args.cert, args.key, strict=True)
    )
    key = load_ech_key(args.ech_key)
    host, port = args.listen
    with socket.create_server((host, port)) as listener:
        print(
            f"listening on {_address(listener)}; give the client this "
            f"ECHConfigList: {_retry_configs(key).to_base64()}",
            file=sys.stderr,
            flush=True,
        )
        report = probe_client(
            listener,
            certificates,
            key,
            rounds=args.rounds,
            timeout=args.timeout,
            grace=args.grace,
        )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render())
    return 0 if report.ok else 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ech probe-client`` and its flags."""
    probe = commands.add_parser(
        "probe-client",
        help="a misbehaving ECH server that tests a client against RFC 9849",
        description="Listen as a deliberately misbehaving ECH server and check "
        "that the client that connects reacts as RFC 9849 requires.",
        epilog="example:\n  ech probe-client --listen 127.0.0.1:8443 --cert "
        "public.pem --key public.key --ech-key ech.pem\n  (then point the "
        "client under test at 127.0.0.1:8443 with the printed ECHConfigList)\n\n"
        "exit status: 0 every check passed, 1 a check failed, 2 a wrong command "
        "line.",
    )
    probe.add_argument(
        "--listen",
        type=listen_address,
        required=True,
        metavar="HOST:PORT",
        help="where to listen for the client under test",
    )
    add_certificate_pairs(
        probe,
        cert_help="a PEM certificate chain (the public name's); repeat with --key",
        key_help="the private key of the --cert given in the same place",
    )
    probe.add_argument(
        "--ech-key",
        required=True,
        type=ech_key_file,
        metavar="KEY.pem",
        help="RFC 9934 ECH key file (ech keygen -o)",
    )
    probe.add_argument(
        "--rounds", type=int, default=1, help="passes over the sequence of checks"
    )
    probe.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the client"
    )
    probe.add_argument(
        "--grace",
        type=float,
        default=3.0,
        help="seconds to wait for a retry after the last check",
    )
    probe.add_argument("--json", action="store_true", help="one JSON object")
    probe.set_defaults(func=cmd_probe_client)


__all__ = ["ClientProbe", "Seen", "Step", "add_parser", "probe_client"]
