"""The SIP listener of `callsim serve --sip`: UDP and TCP sockets, timers, and the exchange's sink.

Trio lives here only; every protocol decision is the `Endpoint`'s.  Tasks,
started in the server's nursery once the exchange runs:

  * the UDP reader: each round reads what the socket holds (at most
    `round_datagrams`), hands each datagram to the endpoint with the round's
    instant, then yields, so the exchange rates the round's setups as one
    batch (`Exchange.submit_setup` groups setups of one sink, instant and org);
  * the TCP listener, one task per connection (messages cut by
    Content-Length, replies written without waiting, the rest by a writer);
  * the timer task: sleeps until the endpoint's next deadline (Trio's clock,
    so `MockClock` drives retransmissions and timeouts in tests).

`_SipSink` is the endpoint's face to the exchange (`CallSink`): answers,
refusals and ends come back in bulk and go out at once, so a BYE for a call
the rules cut leaves in the very tick that cut it.

Fairness: when a round holds several sources, none gets more than an equal
share of it handled (at least `per_source`; the rest are dropped, counted
`dropped{reason="source_budget"}`: a heavy source alone is never cut), and a
source that sent `garbage_per_s` malformed messages within one second is
not parsed at all for the rest of it (`dropped{reason="muted"}`): a flood
from one address costs a `recvfrom` per datagram, not a parse, and the
exchange and every other caller keep their turn between rounds.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio
from prometheus_client import CollectorRegistry

from rating_core import END_REASON_NAMES

from ..metrics import SipMetrics
from ..scenario import Scenario
from ..server import Exchange, ProtocolError
from ._endpoint import Action, Endpoint, Hangup, Peer, Send, Setup, SipOptions
from ._identities import SipIdentities
from ._message import MAX_MESSAGE, Malformed, StreamFramer

log = logging.getLogger("callsim.sip")

DEFAULT_SIP_PORT = 5060
UDP_BUFFER = 8 << 20  # bytes asked for the socket's receive buffer: bursts wait there, not dropped
TIMER_GRAIN_S = 0.005  # the timer task wakes at most this often (a ringing call's answer included)
TCP_OUTPUT_LIMIT = 4 << 20  # bytes of replies a TCP peer may leave unread before it is dropped


@dataclass
class SipConfig:
    """`--sip [HOST:]PORT` and the SIP limits."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_SIP_PORT  # 0: any free port (UDP and TCP get the same one)
    options: SipOptions = field(default_factory=SipOptions)
    round_datagrams: int = 256  # datagrams read per round before yielding to the exchange
    per_source: int = 64  # messages of one source always handled in a round shared with others
    garbage_per_s: int = 200  # malformed messages a source may send per second before it is muted
    max_tcp_connections: int = 1_000


def parse_listen(text: str) -> tuple[str, int]:
    """`--sip`'s value: "PORT", "HOST:PORT" or "[V6]:PORT" -> (host, port); host 127.0.0.1 when
    none is given.  Raises ValueError with the reason."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535 ([HOST:]PORT)")
    return host, int(port_text)


class SipEdge:
    """The SIP front end of one server: `bind` (before the server creates anything), then `run`."""

    def __init__(self, scenario: Scenario, config: SipConfig, environ: Mapping[str, str]) -> None:
        """Raises SipConflict when the scenario's SIP identities are ambiguous."""
        self.config = config
        self.identities = SipIdentities.from_scenario(scenario, environ)
        self.host, self.port = config.host, config.port
        self.endpoint: Endpoint | None = None
        self._udp: socket.socket | None = None
        self._listeners: list[trio.SocketListener] = []

    def describe(self) -> str:
        text = f"callsim: SIP on {_hostport(self.host, self.port)} (UDP and TCP)"
        locked = self.identities.without_password()
        if locked:
            text += f"; digest cannot succeed (no password) for: {', '.join(locked)}"
        return text

    async def bind(self) -> None:
        """Listen on UDP and TCP, the same port for both.  Raises OSError (address in use, ...)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for attempt in range(20):  # port 0: the UDP port the kernel picks may be taken over TCP
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.setblocking(False)
                try:
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
                except OSError:
                    pass
                udp.bind((self.host, self.config.port))
                port = udp.getsockname()[1]
                self._listeners = await trio.open_tcp_listeners(port, host=self.host)
            except OSError:
                udp.close()
                if self.config.port != 0 or attempt == 19:
                    raise
                continue
            self._udp, self.port = udp, port
            return

    async def run(self, exchange: Exchange, registry: CollectorRegistry, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve SIP into `exchange` until cancelled (the server's nursery ends it)."""
        assert self._udp is not None, "bind() first"
        metrics = SipMetrics(registry)
        advertised = _advertised(self.host)
        options = self.config.options
        options.host, options.port = advertised, self.port
        endpoint = self.endpoint = Endpoint(self.identities, options,
                                            observe_setup=metrics.setup_latency.observe)
        metrics.watch(endpoint.stats, lambda: endpoint.dialogs)
        runner = _Runner(endpoint, exchange, self._udp)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runner.timers)
                nursery.start_soon(runner.udp, self.config)
                nursery.start_soon(trio.serve_listeners, runner.tcp_handler(self.config), self._listeners)
                task_status.started()
        finally:
            runner.run(endpoint.stop(trio.current_time()))  # sent at once, without waiting
            self._udp.close()


class _Runner:
    """Runs the endpoint's actions against the sockets and the exchange."""

    def __init__(self, endpoint: Endpoint, exchange: Exchange, udp: socket.socket) -> None:
        self.endpoint = endpoint
        self.exchange = exchange
        self.udp_socket = udp
        self.sink = _SipSink(self)
        self._tcp: dict[int, _TcpConnection] = {}
        self._next_conn = 1
        self._timer_wake = trio.Event()
        self._sleeping_until = math.inf
        self._udp_backlog: list[tuple[bytes, tuple[str, int]]] = []
        self._udp_writable = trio.Event()

    # -- actions --------------------------------------------------------------------------------
    def run(self, actions: list[Action]) -> None:
        exchange, endpoint = self.exchange, self.endpoint
        for action in actions:
            if type(action) is Send:
                self.send(action.peer, action.data)
            elif type(action) is Setup:
                call = action.call
                try:
                    call_id = exchange.submit_setup(self.sink, action.ref, call.org, call.user, call.kind,
                                                    call.to_number, call.from_number, action.at,
                                                    exchange.ms(action.at))
                except ProtocolError:  # stopping: the INVITE gets a 503
                    self.run(endpoint.unavailable(action.ref, trio.current_time()))
                    continue
                endpoint.bound(action.ref, call_id)
            elif type(action) is Hangup:
                exchange.submit_hangup(action.call_id, exchange.ms(action.at))
        if actions:
            self.after_input()  # outcomes from the exchange schedule resends and timeouts too

    def send(self, peer: Peer, data: bytes) -> None:
        if peer.conn:
            conn = self._tcp.get(peer.conn)
            if conn is not None:
                conn.send(data)
            return
        if self._udp_backlog:
            self._udp_backlog.append((data, (peer.host, peer.port)))
            return
        try:
            self.udp_socket.sendto(data, (peer.host, peer.port))
        except BlockingIOError:
            self._udp_backlog.append((data, (peer.host, peer.port)))
            self._udp_writable.set()
        except OSError:  # unreachable, or no route: UDP loses it as the network would
            pass

    def after_input(self) -> None:
        """Wake the timer task if the endpoint now has an earlier deadline than it sleeps to
        (after anything that may have scheduled one: input, or an outcome of the exchange)."""
        deadline = self.endpoint.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._timer_wake.set()

    # -- tasks ----------------------------------------------------------------------------------
    async def timers(self) -> None:
        """Run the endpoint's timers when due, at most once per TIMER_GRAIN_S: under load a
        deadline falls every millisecond (each answered call's first resend check), and every
        wake-up is a task switch; SIP's timers count in hundreds of milliseconds."""
        endpoint = self.endpoint
        last = -math.inf
        while True:
            deadline = endpoint.next_deadline()
            self._sleeping_until = math.inf if deadline is None else max(deadline, last + TIMER_GRAIN_S)
            with trio.move_on_at(self._sleeping_until):
                await self._timer_wake.wait()
            self._timer_wake = trio.Event()
            last = trio.current_time()
            self.run(endpoint.timers_due(last))

    async def udp(self, config: SipConfig) -> None:
        sock, endpoint = self.udp_socket, self.endpoint
        stats = endpoint.stats
        dropped = stats.dropped
        dropped.setdefault("source_budget", 0)
        dropped.setdefault("muted", 0)
        window = -1
        garbage: dict[str, int] = {}  # malformed messages per source in the current second
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._udp_writer)
            while True:
                await trio.lowlevel.wait_readable(sock)
                now = trio.current_time()
                endpoint.stopping = not self.exchange.accepting  # new INVITEs: 503
                if int(now) != window:
                    window, garbage = int(now), {}
                batch: list[tuple[bytes, tuple[str, int]]] = []
                for _ in range(config.round_datagrams):
                    try:
                        batch.append(sock.recvfrom(MAX_MESSAGE + 1))
                    except BlockingIOError:
                        break
                    except OSError:  # an ICMP error reported on the socket: nothing to read
                        continue
                share = _fair_share(batch, config.per_source)
                handled: dict[str, int] = {}
                for data, address in batch:
                    host = address[0]
                    if garbage.get(host, 0) >= config.garbage_per_s:
                        dropped["muted"] += 1
                        continue
                    n = handled.get(host, 0)
                    if n >= share:
                        dropped["source_budget"] += 1
                        continue
                    handled[host] = n + 1
                    before = stats.malformed_total
                    self.run(endpoint.receive(data, Peer(host, address[1]), now))
                    if stats.malformed_total != before:
                        garbage[host] = garbage.get(host, 0) + 1
                self.after_input()
                await trio.lowlevel.checkpoint()

    async def _udp_writer(self) -> None:
        """Datagrams the kernel did not take at once (its buffer full), sent as it drains."""
        sock = self.udp_socket
        while True:
            await self._udp_writable.wait()
            self._udp_writable = trio.Event()
            while self._udp_backlog:
                await trio.lowlevel.wait_writable(sock)
                data, address = self._udp_backlog[0]
                try:
                    sock.sendto(data, address)
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                self._udp_backlog.pop(0)

    def tcp_handler(self, config: SipConfig):
        async def handler(stream: trio.SocketStream) -> None:
            if len(self._tcp) >= config.max_tcp_connections:
                await stream.aclose()
                return
            conn_id = self._next_conn
            self._next_conn += 1
            host, port = stream.socket.getpeername()[:2]
            conn = self._tcp[conn_id] = _TcpConnection(stream)
            peer = Peer(host, port, conn_id)
            try:
                await conn.serve(self, peer)
            except Exception:  # a bug: this connection ends, the server goes on
                log.exception("SIP TCP connection from %s:%s failed", host, port)
            finally:
                del self._tcp[conn_id]
                self.run(self.endpoint.connection_lost(conn_id, trio.current_time()))
                conn.close()
                with trio.CancelScope(shield=True):
                    try:
                        await stream.aclose()
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
        return handler


class _TcpConnection:
    """One TCP peer: reads messages, writes replies without waiting (the rest by its writer)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._fd = stream.socket.fileno()
        self._out = bytearray()
        self._wake = trio.Event()
        self._scope: trio.CancelScope | None = None
        self.broken = False

    def send(self, data: bytes) -> None:
        if self.broken:
            return
        if not self._out:
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._drop()
                return
            data = data[sent:]
            if not data:
                return
        self._out += data
        if len(self._out) > TCP_OUTPUT_LIMIT:
            self._drop()
            return
        self._wake.set()

    def _drop(self) -> None:
        self.broken = True
        if self._scope is not None:
            self._scope.cancel()

    def close(self) -> None:
        self.broken = True
        self._out.clear()

    async def serve(self, runner: _Runner, peer: Peer) -> None:
        endpoint = runner.endpoint
        framer = StreamFramer()
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            nursery.start_soon(self._writer)
            while True:
                try:
                    data = await self._stream.receive_some(1 << 16)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    break
                if not data:
                    break
                framer.feed(data)
                try:
                    messages = framer.messages()
                except Malformed as err:  # the stream cannot be resynchronised: close it
                    endpoint.stats.malformed[err.kind] += 1
                    endpoint.stats.malformed_total += 1
                    break
                now = trio.current_time()
                endpoint.stopping = not runner.exchange.accepting
                for message in messages:
                    runner.run(endpoint.receive(message, peer, now))
                runner.after_input()
            nursery.cancel_scope.cancel()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._out:
                data = bytes(self._out)
                self._out.clear()
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    self._drop()
                    return


class _SipSink:
    """The exchange's `CallSink` for every SIP call (refs are the endpoint's dialog refs)."""

    wants_cdr = False  # the end messages are read for their end reason only

    def __init__(self, runner: _Runner) -> None:
        self._runner = runner

    def on_answered_many(self, refs: list[int | str], first_call_id: int) -> None:
        now, answered, run = trio.current_time(), self._runner.endpoint.answered, self._runner.run
        for ref in refs:
            run(answered(ref, now))  # type: ignore[arg-type]

    def on_answered(self, ref: int | str, call_id: int) -> None:
        self._runner.run(self._runner.endpoint.answered(ref, trio.current_time()))  # type: ignore[arg-type]

    def on_rejected(self, ref: int | str, call_id: int, end_reason: int) -> None:
        self._runner.run(self._runner.endpoint.rejected(ref, END_REASON_NAMES[end_reason],  # type: ignore[arg-type]
                                                        trio.current_time()))

    def on_ended_many(self, refs: list[int | str], messages: list) -> None:
        now, ended, run = trio.current_time(), self._runner.endpoint.ended, self._runner.run
        for ref, message in zip(refs, messages):
            run(ended(ref, message.end_reason, now))  # type: ignore[arg-type]
        self._runner.after_input()

    def flush(self) -> None:
        """Replies left at once (`run`): nothing waits here."""


def _fair_share(batch: list[tuple[bytes, tuple[str, int]]], floor: int) -> float:
    """How many of a round's datagrams one source may have handled: all of them when it is the
    only source (an SBC at full load starves nobody), else an equal share of the round, at
    least `floor`."""
    if len(batch) <= floor:
        return math.inf
    sources = {address[0] for _, address in batch}
    return math.inf if len(sources) == 1 else max(floor, len(batch) / len(sources))


def _advertised(host: str) -> str:
    """The address to put in Contact, Via and SDP: the bound one, or for a wildcard the address
    this host would use to reach the outside (a UDP `connect` sends nothing)."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    family = socket.AF_INET6 if host == "::" else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect(("2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1", 9))
        return probe.getsockname()[0]
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"
    finally:
        probe.close()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
