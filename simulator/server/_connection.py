"""One client connection of `callsim serve`: read frames, check messages, queue calls, reply.

Two tasks per connection: the reader (frames -> requests to the exchange, or
`error` replies) and the writer (everything queued for this client, packed
into one frame per wake-up, so replies batch the way requests do).  The
exchange reports each call's outcome through the `CallSink` methods, which
only append to the outbox: they never block the exchange.

Resources: a connection holds at most its output budget
(`Limits.max_output_buffer`, see `_outbox`) and one frame of input.
Before `hello` is answered a frame may be `max_login_frame` bytes, and the
client has `login_timeout_s` to log in.  Both kinds of bytes also count
against the server-wide budget (`_budget`), which may pause the
reader or drop the connection when the sum over connections is too much.

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

from . import _messages as msgs
from ._budget import BufferBudget
from ._directory import Directory, Tenant
from ._exchange import Exchange
from ._outbox import Outbox
from ._wire import (
    ALREADY_AUTHENTICATED,
    BAD_TOKEN,
    DUPLICATE_REF,
    FLOOD,
    IDLE_TIMEOUT,
    LOGIN_TIMEOUT,
    NOT_AUTHENTICATED,
    SERVER_ERROR,
    SLOW_CONSUMER,
    TOO_MANY_ERRORS,
    UNKNOWN_CALL,
    UNKNOWN_USER,
    CallMessage,
    FrameReader,
    HangupMessage,
    ProtocolError,
    checked_setup,
    decode_calls,
    decode_payload,
    op_of,
    parse_hello,
    parse_setup,
    ref_of,
)
from ..metrics import ServerMetrics

log = logging.getLogger("callsim.server")

RECEIVE_BYTES = 1 << 16
FLUSH_S = 2.0  # how long a closing connection may take to deliver its last messages
PRE_LOGIN_OUTPUT = 64 << 10  # output budget before `hello` is answered (pongs and errors)
# While a connection is paused for the server's budget it is not read, so its client's close
# would go unseen until the idle timeout, its partly received frame held: look this often.
PEER_CHECK_S = 1.0
TCP_ESTABLISHED = 1  # Linux's tcpi_state


def _peer_closed(stream: trio.abc.Stream) -> bool:
    """True if the client has closed or reset its side (Linux's TCP_INFO; elsewhere: never known)."""
    sock = getattr(stream, "socket", None)
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return False
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_ESTABLISHED
    except OSError:
        return True


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
    """The server's limits (docs/protocol.md "Limits"); most have a `callsim serve` option."""

    max_frame: int = 1 << 20
    idle_timeout_s: float = 120.0
    max_inflight: int = 10_000  # setups queued and not yet answered
    max_calls: int = 100_000  # calls in progress (queued or connected)
    max_errors: int = 100  # error replies before the connection is closed
    # Bytes of replies waiting for a client: past half of it its requests are not read until it
    # reads (backpressure); past all of it, or paused for `idle_timeout_s`, it is dropped.
    max_output_buffer: int = 8 << 20
    max_connections: int = 10_000  # open at once; more are refused (`too_many_connections`)
    max_login_frame: int = 4096  # frame payload before `hello` is answered: hello needs a few hundred
    login_timeout_s: float = 10.0  # from the connection to `hello`
    # Unread replies and partly received frames, summed over every connection (`_budget`);
    # `callsim serve` derives its default from the machine's memory.
    max_buffered_bytes: int = 1 << 30


class Connection:
    """Protocol state of one client.  Implements the exchange's `CallSink`."""

    def __init__(self, stream: trio.abc.Stream, exchange: Exchange, directory: Directory,
                 limits: Limits, metrics: ServerMetrics, budget: BufferBudget) -> None:
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
        sock = getattr(stream, "socket", None)
        self.held = 0  # bytes counted against the server's budget (kept by `budget`)
        self._pool = budget
        self._input_held = 0  # of those, the partly received frame
        budget.join(self)
        self._outbox = Outbox(sock.fileno() if sock is not None else -1, self._charge)
        self._wake = trio.Event()
        self._frames = FrameReader(min(limits.max_login_frame, limits.max_frame))
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
            self._pool.leave(self)
            # Its buffers go now, not when the collector finds the cycle through `_charge`
            # (a quiet server may not run it for minutes).
            self._frames.clear()
            self._outbox.close()
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
        frames, lim = self._frames, self._limits
        now = trio.current_time()
        deadline = now + lim.idle_timeout_s
        login_deadline = now + lim.login_timeout_s
        while not self._closing:
            if ((self._outbox.buffered > self._budget() // 2 or self._pool.crowded(self))
                    and not await self._paused(login_deadline)):
                return
            data = b""
            with trio.move_on_at(deadline if self.tenant else min(deadline, login_deadline)):
                try:
                    data = await self._receive()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return  # peer reset, or the writer gave up on this client
                if not data:
                    return  # the client closed its side
            if not data:
                if self.tenant is None and trio.current_time() >= login_deadline:
                    self._fatal(ProtocolError(LOGIN_TIMEOUT, f"no login within {lim.login_timeout_s:g} s"))
                    return
                if self.calls:  # calls in progress: the connection is not idle, it is holding them
                    deadline = trio.current_time() + lim.idle_timeout_s
                    continue
                self._fatal(ProtocolError(IDLE_TIMEOUT, f"no message for {lim.idle_timeout_s:g} s"))
                return
            frames.feed(data)
            now = trio.current_time()
            try:
                for payload in frames.frames():
                    deadline = now + lim.idle_timeout_s
                    self._frame(payload, now)
                    if self._closing:
                        return
            except ProtocolError as err:  # oversize: the stream cannot be resynchronised
                self._fatal(err)
                return
            self._charge_input()
            if self._gone:  # shed for the server's budget
                return

    async def _receive(self) -> bytes:
        """The next bytes from the client: up to RECEIVE_BYTES, fewer when the server's budget is
        tight, sized when they have arrived (not when the wait began: by then the others may
        have read theirs)."""
        pool = self._pool
        if not pool.roomy(RECEIVE_BYTES):
            sock = getattr(self._stream, "socket", None)
            if sock is not None:
                await trio.lowlevel.wait_readable(sock)
        return await self._stream.receive_some(pool.read_size(self, RECEIVE_BYTES))

    async def _paused(self, login_deadline: float) -> bool:
        """Backpressure: read nothing more until the client has read its replies down to half its
        budget, and the server's buffers have room for it (`BufferBudget.crowded`).  False when
        that has not come within the idle timeout (before login: by the login deadline): it is
        then dropped."""
        lim, outbox, pool = self._limits, self._outbox, self._pool
        until = trio.current_time() + lim.idle_timeout_s
        why = "replies not read"
        with trio.move_on_at(until if self.tenant else min(until, login_deadline)):
            while True:
                if outbox.buffered > self._budget() // 2:
                    await outbox.wait_below(self._budget() // 2)
                    continue
                if not pool.crowded(self):
                    return True
                why = f"the server's buffers are full and this connection holds {self.held} bytes"
                relief = trio.Event()  # the total falls under half the budget, or this client reads
                outbox.wake_below(pool.share() - self._input_held, relief)
                pool.wake_on_relief(self, relief)
                while not relief.is_set():
                    with trio.move_on_after(PEER_CHECK_S):
                        await relief.wait()
                    if not relief.is_set() and _peer_closed(self._stream):
                        return False  # gone: nobody to tell why
        self._fatal(ProtocolError(SLOW_CONSUMER, why))
        return False

    def _charge(self, delta: int) -> None:
        """Count `delta` more bytes held for this client against the server's budget; past the
        budget, the biggest holders are shed (this one among them, perhaps).

        Not while this connection closes (it is on its way out, and its last words must not shed
        it a second time), nor once the server stops (it ends every call at once, and closes
        every connection a moment later anyway).
        """
        if self._gone:
            return
        pool = self._pool
        pool.change(self, delta)
        if delta > 0 and pool.total > pool.limit and not self._closing and not self._exchange.finished:
            pool.enforce()

    def _charge_input(self) -> None:
        """Count the partly received frame against the server's budget."""
        held = self._frames.buffered
        if held != self._input_held:
            delta, self._input_held = held - self._input_held, held
            self._charge(delta)

    def _budget(self) -> int:
        """Bytes of replies this client may leave unread: before login, only what pings can make
        in the few seconds it has (a pre-login client must not hold what a logged-in one may)."""
        budget = self._limits.max_output_buffer
        return budget if self.tenant is not None else min(budget, PRE_LOGIN_OUTPUT)

    def _frame(self, payload: bytes, now: float) -> None:
        """Handle one frame's messages in order; its setups join the exchange's queue together.

        A logged-in client's frame of setups and hangups takes the fast path
        (`decode_calls`: msgspec checks the fields in C); anything else, and
        the rest of a frame from the first message the fast path cannot
        judge, goes through `decode_payload` and the generic checks.
        """
        tally = dict.fromkeys(self._ops, 0)  # metrics once per frame, not once per message
        t_ms = self._exchange.ms(now)
        try:
            calls = decode_calls(payload) if self.tenant is not None else None
            if calls is not None:
                self._calls(calls, payload, now, t_ms, tally)
                return
            try:
                messages = decode_payload(payload)
            except ProtocolError as err:
                self._error(err)
                return
            self._messages(messages, now, t_ms, tally)
        finally:
            for op, n in tally.items():
                if n:
                    self._ops[op].inc(n)

    def _calls(self, calls: list[CallMessage], payload: bytes, now: float, t_ms: int,
               tally: dict[str, int]) -> None:
        """The fast path: typed setups and hangups of a logged-in connection."""
        setups = hangups = 0
        try:
            for i, message in enumerate(calls):
                try:
                    if type(message) is HangupMessage:
                        hangups += 1
                        self._hang(message.ref, t_ms)
                    else:
                        fields = checked_setup(message)  # type: ignore[arg-type]
                        if fields is None:  # a rule between fields: let the generic checks explain it
                            self._messages(decode_payload(payload)[i:], now, t_ms, tally)
                            return
                        setups += 1
                        self._place(*fields, now, t_ms)
                except ProtocolError as err:
                    self._error(err)
                if self._closing:
                    return
        finally:
            tally["setup"] += setups
            tally["hangup"] += hangups

    def _messages(self, messages: list[Any], now: float, t_ms: int, tally: dict[str, int]) -> None:
        """The generic path: any message, checked field by field (`_wire`), errors explained."""
        for message in messages:
            try:
                op = op_of(message)
                tally[op] += 1
                if op == "setup":
                    self._setup(message, now, t_ms)
                elif op == "hangup":
                    self._hangup(message, t_ms)
                elif op == "hello":
                    self._hello(message)
                else:
                    self._push(msgs.PONG)
            except ProtocolError as err:
                self._error(err)
            if self._closing:
                return

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
        self._frames.max_frame = lim.max_frame
        self._push(msgs.welcome(tenant.id, self._exchange.setup.currency, lim.max_frame,
                                lim.max_inflight, lim.idle_timeout_s))

    def _setup(self, msg: dict[str, Any], now: float, t_ms: int) -> None:
        self._tenant(msg)
        self._place(*parse_setup(msg), now, t_ms)

    def _place(self, ref: int | str, user_id: str | None, kind: int, to_number: int, from_number: int,
               now: float, t_ms: int) -> None:
        """Queue a checked setup, unless this connection's state refuses it."""
        tenant = self.tenant
        assert tenant is not None
        if ref in self.calls:
            raise ProtocolError(DUPLICATE_REF, "a call with this ref is in progress", ref)
        if self.inflight >= self._limits.max_inflight:
            raise ProtocolError(FLOOD, f"more than {self._limits.max_inflight} setups awaiting an answer", ref)
        if len(self.calls) >= self._limits.max_calls:
            raise ProtocolError(FLOOD, f"more than {self._limits.max_calls} calls in progress", ref)
        user = -1
        if user_id is not None:
            found = tenant.users.get(user_id)
            if found is None:
                raise ProtocolError(UNKNOWN_USER, f"no user {user_id[:64]!r} in org {tenant.id!r}", ref)
            user = found
        self.calls[ref] = self._exchange.submit_setup(
            self, ref, tenant.index, user, kind, to_number, from_number, now, t_ms)
        self.inflight += 1

    def _hangup(self, msg: dict[str, Any], t_ms: int) -> None:
        self._tenant(msg)
        self._hang(ref_of(msg), t_ms)

    def _hang(self, ref: int | str, t_ms: int) -> None:
        """Queue the hang-up of this connection's call `ref`."""
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
    def on_answered_many(self, refs: list[int | str], first_call_id: int) -> None:
        self.inflight -= len(refs)
        self._push_many(msgs.answered_many(refs, first_call_id), wake=False)  # the exchange flushes

    def on_answered(self, ref: int | str, call_id: int) -> None:
        self.inflight -= 1
        self._push(msgs.answered(ref, call_id))

    def on_rejected(self, ref: int | str, call_id: int, end_reason: int) -> None:
        self.inflight -= 1
        self.calls.pop(ref, None)
        self._hanging.discard(ref)
        self._push(msgs.rejected(ref, call_id, end_reason))

    def on_ended_many(self, refs: list[int | str], messages: list[msgs.Message]) -> None:
        pop = self.calls.pop
        for ref in refs:
            pop(ref, None)
        if self._hanging:
            self._hanging.difference_update(refs)
        self._push_many(messages, wake=False)  # the exchange flushes

    def flush(self) -> None:
        """Hand the queued replies to the kernel now, from the exchange's tick, if the writer is idle.

        Answers then leave the moment the tick has them: through the writer task
        they waited for the next scheduling round, behind every reader with a
        frame to handle (~2 ms at 20,000 setups/s), and each round cost a task
        switch and Trio's send path.  The socket is non-blocking, so this never
        blocks: what the kernel does not take, the writer task sends when it can.
        """
        outbox = self._outbox
        if self._gone or self._closing or outbox.sending or not outbox.write_nowait() or outbox:
            self._wake.set()  # the writer has bytes in flight or left over, or must see the close through

    # -- writing ----------------------------------------------------------------------------
    def _push(self, message: msgs.Message) -> None:
        if not self._gone:
            self._outbox.add(message)
            self._queued(wake=True)

    def _push_many(self, messages: list[msgs.Message], wake: bool = True) -> None:
        if not self._gone:
            self._outbox.extend(messages)
            self._queued(wake)

    def _queued(self, wake: bool) -> None:
        """Wake the writer, or drop a client that does not read rather than buffer past the budget.

        The server's stop is exempt: it ends every call at once, and closes
        every connection a moment later anyway.
        """
        outbox, budget = self._outbox, self._budget()
        if outbox.buffered > budget and not self._exchange.finished:
            outbox.write_nowait()  # a burst the kernel may still take
            if outbox.buffered > budget:
                self._drop(f"more than {budget} bytes of replies not read")
                return
        if wake:
            self._wake.set()

    def shed(self, limit: int) -> None:
        """The server's buffers hold more than `limit` and this connection the most: drop it."""
        held = self.held
        self._frames.clear()
        self._drop(f"the server's buffers are past their limit of {limit} bytes and this "
                   f"connection held the most ({held} bytes)")
        self._pool.leave(self)

    def _drop(self, why: str) -> None:
        """Drop the client at once, its replies with it (its calls are hung up as it closes)."""
        self._metrics.protocol_errors.labels(SLOW_CONSUMER).inc()
        self._closing = True
        self._outbox.abandon(ProtocolError(SLOW_CONSUMER, why).reply())
        self._gone = True
        if self._scope is not None:
            self._scope.cancel()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self._outbox.send(self._stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self._gone = True
                if self._scope is not None:
                    self._scope.cancel()
                return
            if self._closing and self.inflight <= 0:  # every accepted setup has had its answer
                return
