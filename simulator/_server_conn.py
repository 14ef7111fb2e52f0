"""One client connection of `callsim serve`: read frames, check messages, queue calls, reply.

Two tasks per connection: the reader (frames -> requests to the exchange, or
`error` replies) and the writer (everything queued for this client, packed
into one frame per wake-up, so replies batch the way requests do).  The
exchange reports each call's outcome through the `CallSink` methods, which
only append to the outbox: they never block the exchange.

Containment: under `trio.serve_listeners` an exception escaping a handler
would take the whole server down, so `serve` catches everything but
cancellation.  A peer reset, a closed stream, a decode error or a bug ends
this connection only; its calls are then hung up, so nothing leaks and the
org is billed for what was connected, no more.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import trio

from . import _server_messages as msgs
from ._server_directory import Directory, Tenant
from ._server_exchange import Exchange
from ._wire import (
    ALREADY_AUTHENTICATED,
    BAD_TOKEN,
    DUPLICATE_REF,
    FLOOD,
    IDLE_TIMEOUT,
    NOT_AUTHENTICATED,
    SERVER_ERROR,
    SLOW_CONSUMER,
    TOO_MANY_ERRORS,
    UNKNOWN_CALL,
    UNKNOWN_USER,
    FrameReader,
    ProtocolError,
    decode_payload,
    op_of,
    pack_frame,
    parse_hello,
    parse_setup,
    ref_of,
)
from .metrics import ServerMetrics

log = logging.getLogger("callsim.server")

RECEIVE_BYTES = 1 << 16
FLUSH_S = 2.0  # how long a closing connection may take to deliver its last messages
MAX_MESSAGES_PER_FRAME = 8192  # replies are split so a client with the default limit can read them


def _keepalive(stream: trio.abc.Stream) -> None:
    """TCP keepalive: a peer that vanished without a FIN is found within about two minutes.

    The idle timeout spares connections with calls in progress (they are
    holding those calls, not idling), so a crashed PBX would otherwise keep
    its calls, and their billing, going until the server stops.
    """
    sock = getattr(stream, "socket", None)
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
            if hasattr(socket, name):  # Linux names; other systems keep their defaults
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:
        pass


@dataclass(frozen=True)
class Limits:
    """Per-connection limits (docs/protocol.md "Limits"); every one has a `callsim serve` option."""

    max_frame: int = 1 << 20
    idle_timeout_s: float = 120.0
    max_inflight: int = 10_000  # setups queued and not yet answered
    max_calls: int = 100_000  # calls in progress (queued or connected)
    max_errors: int = 100  # error replies before the connection is closed
    max_outbox: int = 200_000  # messages waiting to be sent before the client is dropped


class Connection:
    """Protocol state of one client.  Implements the exchange's `CallSink`."""

    def __init__(self, stream: trio.abc.Stream, exchange: Exchange, directory: Directory,
                 limits: Limits, metrics: ServerMetrics) -> None:
        self._stream = stream
        self._exchange = exchange
        self._directory = directory
        self._limits = limits
        self._metrics = metrics
        self._ops = {op: metrics.messages.labels(op) for op in ("hello", "setup", "hangup", "ping")}
        self.tenant: Tenant | None = None
        self.wants_cdr = True  # `ended` carries the CDR columns (hello's `cdr`)
        self.calls: dict[int | str, int] = {}  # ref -> call_id, queued or connected
        self._hanging: set[int | str] = set()  # refs whose hangup was queued
        self.inflight = 0
        self.errors = 0
        self._outbox: list[dict[str, Any]] = []
        self._wake = trio.Event()
        self._closing = False  # no more requests; answer the setups in flight, deliver, close
        self._gone = False  # nothing can be delivered any more
        self._scope: trio.CancelScope | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def serve(self) -> None:
        """Run the connection to its end; never raises anything but cancellation."""
        m = self._metrics
        m.connections.inc()
        m.open_connections.inc()
        _keepalive(self._stream)
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                nursery.start_soon(self._writer)
                await self._reader()
                self._closing = True
                self._wake.set()
                nursery.cancel_scope.deadline = trio.current_time() + FLUSH_S
        except Exception:  # a bug: drop this connection, keep the server
            log.exception("connection handler failed")
            m.protocol_errors.labels(SERVER_ERROR).inc()
        finally:
            self._gone = True
            self._hang_up_all()
            m.open_connections.dec()
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    def _hang_up_all(self) -> None:
        t_ms = self._exchange.ms(trio.current_time())
        for ref, call_id in self.calls.items():
            if ref not in self._hanging:
                self._exchange.submit_hangup(call_id, t_ms)
        self._hanging.update(self.calls)

    # -- reading ----------------------------------------------------------------------------
    async def _reader(self) -> None:
        frames = FrameReader(self._limits.max_frame)
        deadline = trio.current_time() + self._limits.idle_timeout_s
        while not self._closing:
            data = b""
            with trio.move_on_at(deadline):
                try:
                    data = await self._stream.receive_some(RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return  # peer reset, or the writer gave up on this client
                if not data:
                    return  # the client closed its side
            if not data:
                if self.calls:  # calls in progress: the connection is not idle, it is holding them
                    deadline = trio.current_time() + self._limits.idle_timeout_s
                    continue
                self._fatal(ProtocolError(IDLE_TIMEOUT, f"no message for {self._limits.idle_timeout_s:g} s"))
                return
            frames.feed(data)
            now = trio.current_time()
            try:
                for payload in frames.frames():
                    deadline = now + self._limits.idle_timeout_s
                    self._frame(payload, now)
                    if self._closing:
                        return
            except ProtocolError as err:  # oversize: the stream cannot be resynchronised
                self._fatal(err)
                return

    def _frame(self, payload: bytes, now: float) -> None:
        try:
            messages = decode_payload(payload)
        except ProtocolError as err:
            self._error(err)
            return
        tally = dict.fromkeys(self._ops, 0)  # metrics once per frame, not once per message
        t_ms = self._exchange.ms(now)
        try:
            for message in messages:
                try:
                    self._message(message, now, t_ms, tally)
                except ProtocolError as err:
                    self._error(err)
                if self._closing:
                    return
        finally:
            for op, n in tally.items():
                if n:
                    self._ops[op].inc(n)

    def _message(self, msg: Any, now: float, t_ms: int, tally: dict[str, int]) -> None:
        op = op_of(msg)
        tally[op] += 1
        if op == "setup":
            self._setup(msg, now, t_ms)
        elif op == "hangup":
            self._hangup(msg, t_ms)
        elif op == "hello":
            self._hello(msg)
        else:
            self._push(msgs.PONG)

    def _hello(self, msg: dict[str, Any]) -> None:
        if self.tenant is not None:
            raise ProtocolError(ALREADY_AUTHENTICATED, f"already logged in as org {self.tenant.id!r}")
        hello = parse_hello(msg)
        tenant = self._directory.authenticate(hello.org, hello.token)
        if tenant is None:
            self._fatal(ProtocolError(BAD_TOKEN, "unknown org or wrong token"))
            return
        self.tenant = tenant
        self.wants_cdr = hello.cdr
        lim = self._limits
        self._push(msgs.welcome(tenant.id, self._exchange.setup.currency, lim.max_frame,
                                lim.max_inflight, lim.idle_timeout_s))

    def _setup(self, msg: dict[str, Any], now: float, t_ms: int) -> None:
        tenant = self._tenant(msg)
        s = parse_setup(msg)
        if s.ref in self.calls:
            raise ProtocolError(DUPLICATE_REF, "a call with this ref is in progress", s.ref)
        if self.inflight >= self._limits.max_inflight:
            raise ProtocolError(FLOOD, f"more than {self._limits.max_inflight} setups awaiting an answer", s.ref)
        if len(self.calls) >= self._limits.max_calls:
            raise ProtocolError(FLOOD, f"more than {self._limits.max_calls} calls in progress", s.ref)
        user = -1
        if s.user is not None:
            found = tenant.users.get(s.user)
            if found is None:
                raise ProtocolError(UNKNOWN_USER, f"no user {s.user[:64]!r} in org {tenant.id!r}", s.ref)
            user = found
        call_id = self._exchange.submit_setup(
            self, s.ref, tenant.index, user, s.kind, s.to_number, s.from_number, now, t_ms)
        self.calls[s.ref] = call_id
        self.inflight += 1

    def _hangup(self, msg: dict[str, Any], t_ms: int) -> None:
        self._tenant(msg)
        ref = ref_of(msg)
        call_id = self.calls.get(ref)
        if call_id is None:
            raise ProtocolError(UNKNOWN_CALL, "no call in progress with this ref on this connection", ref)
        if ref in self._hanging:
            raise ProtocolError(UNKNOWN_CALL, "this call is already being hung up", ref)
        self._hanging.add(ref)
        self._exchange.submit_hangup(call_id, t_ms)

    def _tenant(self, msg: dict[str, Any]) -> Tenant:
        if self.tenant is None:
            ref = msg.get("ref")
            raise ProtocolError(NOT_AUTHENTICATED, "send hello first",
                                ref if isinstance(ref, (int, str)) and not isinstance(ref, bool) else None)
        return self.tenant

    # -- errors -----------------------------------------------------------------------------
    def _error(self, err: ProtocolError) -> None:
        self._metrics.protocol_errors.labels(err.code).inc()
        self.errors += 1
        self._push(err.reply())
        if self.errors >= self._limits.max_errors:
            self._fatal(ProtocolError(TOO_MANY_ERRORS, f"{self.errors} errors on this connection"))

    def _fatal(self, err: ProtocolError) -> None:
        """Reply, then close: the client cannot be trusted to continue (or has gone quiet)."""
        self._metrics.protocol_errors.labels(err.code).inc()
        self._push(err.reply())
        self._closing = True

    # -- CallSink: outcomes from the exchange -----------------------------------------------
    def on_answered(self, ref: int | str, call_id: int) -> None:
        self.inflight -= 1
        self._push(msgs.answered(ref, call_id))

    def on_rejected(self, ref: int | str, call_id: int, end_reason: int) -> None:
        self.inflight -= 1
        self.calls.pop(ref, None)
        self._hanging.discard(ref)
        self._push(msgs.rejected(ref, call_id, end_reason))

    def on_ended(self, ref: int | str, message: dict[str, Any]) -> None:
        self.calls.pop(ref, None)
        self._hanging.discard(ref)
        self._push(message)

    # -- writing ----------------------------------------------------------------------------
    def _push(self, message: dict[str, Any]) -> None:
        if self._gone:
            return
        self._outbox.append(message)
        if len(self._outbox) > self._limits.max_outbox:
            # the client does not read: drop it rather than buffer without bound
            self._metrics.protocol_errors.labels(SLOW_CONSUMER).inc()
            self._gone = True
            self._outbox.clear()
            if self._scope is not None:
                self._scope.cancel()
            return
        self._wake.set()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._outbox:
                batch = self._outbox[:MAX_MESSAGES_PER_FRAME]
                del self._outbox[:MAX_MESSAGES_PER_FRAME]
                try:
                    await self._stream.send_all(pack_frame(batch))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    self._gone = True
                    if self._scope is not None:
                        self._scope.cancel()
                    return
            if self._closing and self.inflight <= 0:  # every accepted setup has had its answer
                return
