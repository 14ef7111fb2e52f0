"""`callsim loadgen`: how many setups per second one `callsim serve` process sustains, and how fast.

Locust (load_tests/) models users, one connection and one call at a time
each; on this machine it tops out at a few hundred setups/s.  This client
instead pipelines: a few connections, taking turns to send one frame a
millisecond with the setups their connection owes (and the hang-ups that have
come due), while a reader task per connection matches `answered` / `rejected`
to the moment the setup was sent.

Calls are held for `concurrent / rate` seconds (Little's law), so once warmed
up the server carries a steady `concurrent` connected calls while taking
`rate` new ones per second.  The offered rate is open-loop, except that a
connection never has more setups awaiting an answer than the server's
`max_inflight` (from `welcome`): a server that cannot keep up shows as a
lower achieved rate and a higher latency, not as a pile of `flood` errors.

What stops a load early (no server, a refused login, a user the org does not
have, the server closing a connection) is a `LoadError`: one line and an exit
status, 2 when the command line is at fault.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Union

import msgspec
import numpy as np
import trio

from .._stop_signals import unwake_at_exit
from ._directory import token_env_var
from ._wire import BAD_FIELD, BAD_TOKEN, UNAVAILABLE, UNKNOWN_USER, FrameReader, decode_payload, is_e164, pack_frame

DEMO_TOKENS = {"demo": "demo-token", "bench": "bench-token", "rival": "rival-token"}  # server_demo.toml
TICK_S = 0.001
EXIT_FAILED, EXIT_USAGE = 1, 2


class LoadError(Exception):
    """Why the load could not run or went on no longer: one line for the user, and the exit status
    (EXIT_USAGE when an option is at fault: --org, --token, --user, --to, --host, --port)."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class LoadOptions:
    host: str = "127.0.0.1"
    port: int = 7060
    org: str = "bench"
    token: str = "bench-token"
    user: str = "load-0001"
    to: str = "+3225550100"
    concurrent: int = 10_000
    rate: int = 20_000
    duration_s: float = 10.0
    warmup_s: float | None = None
    connections: int = 4
    cdr: bool = True  # ask for the CDR columns in `ended` (the server's default)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "LoadOptions":
        """The options of `callsim loadgen`; raises LoadError (EXIT_USAGE) for values the server
        would refuse on every setup."""
        if not is_e164(args.to):
            raise LoadError(f'--to {args.to!r}: expected an E.164 number like "+3225550100"', EXIT_USAGE)
        if not args.user:
            raise LoadError("--user: expected the id of one of the org's users", EXIT_USAGE)
        if args.duration <= 0:
            raise LoadError("--duration: expected a number of seconds > 0", EXIT_USAGE)
        token = args.token or os.environ.get(token_env_var(args.org)) or DEMO_TOKENS.get(args.org, "")
        return cls(args.host, args.port, args.org, token, args.user, args.to, args.concurrent,
                   max(args.rate, 1), args.duration, args.warmup, max(args.connections, 1),
                   not args.no_cdr)

    @property
    def holding_s(self) -> float:
        return self.concurrent / self.rate

    @property
    def warmup(self) -> float:
        return self.warmup_s if self.warmup_s is not None else self.holding_s + 2.0


@dataclass
class _Stats:
    """One connection's counts; latencies only for setups sent inside the measured window."""

    latencies: list[float] = field(default_factory=list)
    answered: int = 0
    answered_measured: int = 0
    rejected: int = 0
    disconnected: int = 0
    ended: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    live: int = 0
    live_samples: list[int] = field(default_factory=list)


class _Conn:
    """One pipelined connection: its reader task, and `due_frame` for the shared pacer."""

    def __init__(self, stream: trio.SocketStream, opt: LoadOptions, rate: float,
                 t_measure: float, t_end: float) -> None:
        self.stream = stream
        self.opt = opt
        self.rate = rate
        self.t_measure, self.t_end = t_measure, t_end
        self.stats = _Stats()
        self.sent_at: dict[int, float] = {}  # ref -> send time, until answered/rejected
        self.live: set[int] = set()
        self.due: deque[tuple[float, int]] = deque()  # (hang-up time, ref), in time order
        self.max_inflight = 10_000
        self.next_ref = 0
        self.frames = FrameReader(1 << 30)
        self.base = {"op": "setup", "user": opt.user, "type": "outbound", "to": opt.to}
        self.start = trio.current_time()
        self.sent = 0
        self.last_error: tuple[str, str] = ("", "")  # the server's last `error`: (code, message)

    async def hello(self) -> None:
        """Log in; raises LoadError when the server refuses or closes the connection."""
        opt = self.opt
        hello = {"op": "hello", "org": opt.org, "token": opt.token, "cdr": opt.cdr}
        try:
            await self.stream.send_all(pack_frame([hello]))
            msg = await _read_one(self.stream, self.frames)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            msg = None
        if isinstance(msg, dict) and msg.get("op") == "welcome":
            self.max_inflight = int(msg.get("max_inflight", self.max_inflight))
            return
        if not isinstance(msg, dict):
            raise LoadError("the server closed the connection before answering hello")
        if msg.get("code") == BAD_TOKEN:
            raise LoadError(f"login refused: no org {opt.org!r} on the server, or not this token "
                            f"(--org; --token or ${token_env_var(opt.org)})", EXIT_USAGE)
        raise LoadError(f"login refused: {msg.get('code')}: {msg.get('message')}")

    def closed(self) -> LoadError:
        """The error for a connection the server closed (or reset) while the load was running."""
        code, message = self.last_error
        if code == UNAVAILABLE:
            return LoadError("the server stopped taking calls during the load "
                             "(it is stopping, or its scenario's duration is over)")
        if code:
            return LoadError(f"the server closed a connection during the load: {code}: {message}")
        return LoadError("the server closed a connection during the load")

    def due_frame(self, now: float) -> tuple[list[dict[str, Any]], range]:
        """The setups this connection owes by `now` (at its share of the rate) and the hangups due;
        also the refs of those setups (stamped by `send`)."""
        frame: list[dict[str, Any]] = []
        setups = range(self.next_ref, self.next_ref)
        if now < self.t_end:
            want = int((now - self.start) * self.rate) - self.sent
            room = self.max_inflight - len(self.sent_at)
            setups = range(self.next_ref, self.next_ref + max(0, min(want, room)))
            base = self.base
            frame = [{**base, "ref": ref} for ref in setups]
            self.next_ref = setups.stop
            # at the in-flight cap the load is closed-loop: skip what cannot be sent, no backlog
            self.sent += max(want, len(setups))
        due, live = self.due, self.live
        while due and (due[0][0] <= now or now >= self.t_end):
            ref = due.popleft()[1]
            if ref in live:
                live.discard(ref)
                frame.append({"op": "hangup", "ref": ref})
        return frame, setups

    async def send(self, frame: list[dict[str, Any]], setups: range) -> None:
        """Send a frame, its setups stamped as it goes to the socket: their latency is then the
        server's and the network's, not the time this client spent building frames."""
        payload = pack_frame(frame)
        self.sent_at.update(dict.fromkeys(setups, trio.current_time()))
        try:
            await self.stream.send_all(payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise self.closed() from None

    def finished(self, now: float) -> bool:
        return now >= self.t_end + 5.0 or (now >= self.t_end and not self.due and not self.sent_at)

    async def read_loop(self) -> None:
        """Match replies to setups.  Latency ends when the replies reached this host.

        Counts go to locals and into the stats once per read: this loop handles two
        messages a call, and the client shares the machine with the server it measures.
        """
        s, hold = self.stats, self.opt.holding_s
        sent_at, live, due, latencies = self.sent_at, self.live, self.due, s.latencies
        t_measure, t_end = self.t_measure, self.t_end
        receive = _Receiver(self.stream.socket)
        while True:
            try:
                data, now = await receive()
            except OSError:
                data = b""
            if not data:  # the load is not over (`measure` cancels this task when it is)
                raise self.closed()
            self.frames.feed(data)
            answered = ended = 0
            for payload in self.frames.frames():
                for msg in _replies(payload):
                    op = msg.op
                    if op == "ended":
                        ended += 1
                    elif op == "answered":
                        ref = msg.ref
                        sent = sent_at.pop(ref, now)
                        if t_measure <= sent < t_end:
                            latencies.append(now - sent)
                        answered += 1
                        live.add(ref)
                        due.append((sent + hold, ref))  # held the same time: due in send order
                    elif op == "rejected":
                        sent = sent_at.pop(msg.ref, now)
                        if t_measure <= sent < t_end:
                            latencies.append(now - sent)
                        s.rejected += 1
                    elif op == "disconnected":
                        s.disconnected += 1
                        live.discard(msg.ref)
                    elif op == "error":
                        code = msg.code or "?"
                        s.errors[code] = s.errors.get(code, 0) + 1
                        sent_at.pop(msg.ref, None)
                        self.last_error = (code, msg.message or "")
                        self._check_error(code, msg.message or "")
            s.answered += answered
            s.ended += ended
            if t_measure <= now < t_end:
                s.answered_measured += answered


    def _check_error(self, code: str, message: str) -> None:
        """Stop the load on an error every setup would get: the options are wrong."""
        opt = self.opt
        if code == UNKNOWN_USER:
            raise LoadError(f"no user {opt.user!r} in org {opt.org!r} on the server: "
                            f"name one of its users with --user", EXIT_USAGE)
        if code == BAD_FIELD:
            raise LoadError(f"the server refuses the setups (--user {opt.user!r}, --to {opt.to!r}): "
                            f"{message}", EXIT_USAGE)


class _Receiver:
    """Reads a connection, with the instant each read's bytes reached this host (Trio's clock).

    On Linux the kernel stamps every packet it receives (SO_TIMESTAMPNS), so the
    latency measured is the server's and the network's only: not the time this
    client's own event loop, busy pacing and decoding on a shared machine, took
    to get to the socket (up to several ms at the 99th percentile).  Elsewhere,
    the instant the socket is found readable.
    """

    _SO_TIMESTAMPNS = 35  # Linux <asm-generic/socket.h>; Python's socket module lacks the name
    _CMSG_SPACE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        self._stamped = False
        if sys.platform.startswith("linux") and self._CMSG_SPACE:
            try:
                sock.setsockopt(socket.SOL_SOCKET, self._SO_TIMESTAMPNS, 1)
                self._stamped = True
            except OSError:
                pass

    async def __call__(self) -> tuple[bytes, float]:
        if not self._stamped:
            await trio.lowlevel.wait_readable(self._sock)
            return await self._sock.recv(1 << 16), trio.current_time()
        data, ancillary, _, _ = await self._sock.recvmsg(1 << 16, self._CMSG_SPACE)
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == self._SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack("qq", value[:16])
                # wall clock -> Trio's clock, offset read now: no drift between the two matters
                return data, sec + nsec / 1e9 - time.time() + trio.current_time()
        return data, trio.current_time()


class _Reply(msgspec.Struct, gc=False):
    """The fields of a server message the load generator looks at; msgspec skips the others."""

    op: str
    ref: Union[int, str, None] = None
    code: Union[str, None] = None
    message: Union[str, None] = None


_REPLIES = msgspec.msgpack.Decoder(Union[list[_Reply], _Reply])


def _replies(payload: bytes) -> list[_Reply]:
    """A frame from the server as its messages (the server is trusted: no checks beyond types)."""
    value = _REPLIES.decode(payload)
    return value if type(value) is list else [value]


async def _read_one(stream: trio.SocketStream, frames: FrameReader) -> object:
    while True:
        data = await stream.receive_some(1 << 16)
        if not data:
            return None
        frames.feed(data)
        for payload in frames.frames():
            return decode_payload(payload)[0]


async def measure(opt: LoadOptions) -> dict:
    """Run the load and return the figures (also used by tests with a tiny load).

    Raises LoadError: the server cannot be reached, refuses the login or the
    setups, or closes a connection before the load is over.
    """
    conns: list[_Conn] = []
    try:
        return await _measure(opt, conns)
    except BaseExceptionGroup as group:  # tasks of the load's nursery failed: say the first reason
        failed = group.subgroup(LoadError) or group.subgroup(KeyboardInterrupt)
        if failed is None:
            raise
        while isinstance(failed, BaseExceptionGroup):
            failed = failed.exceptions[0]
        raise failed from None
    finally:
        for conn in conns:
            await conn.stream.aclose()


async def _connect(opt: LoadOptions) -> trio.SocketStream:
    try:
        return await trio.open_tcp_stream(opt.host, opt.port)
    except OSError as err:
        raise LoadError(f"cannot connect to {opt.host}:{opt.port} ({_reason(err)}); "
                        f"is `callsim serve` running there? (--host, --port)", EXIT_USAGE) from None


def _reason(err: OSError) -> str:
    """The system's words for a failed connect; Trio reports "all attempts failed", with each
    attempt's error (connection refused, ...) as the cause."""
    cause = err.__cause__
    while isinstance(cause, BaseExceptionGroup):
        cause = cause.exceptions[0]
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno).lower()
    return err.strerror or str(err)


async def _measure(opt: LoadOptions, conns: list[_Conn]) -> dict:
    t0 = trio.current_time()
    t_measure = t0 + opt.warmup
    t_end = t_measure + opt.duration_s
    for _ in range(opt.connections):
        stream = await _connect(opt)
        conn = _Conn(stream, opt, opt.rate / opt.connections, t_measure, t_end)
        conns.append(conn)
        await conn.hello()
    async def pace() -> None:
        """One task paces every connection: each millisecond one frame, on the connections in turn.

        A frame carries what its connection owes since its last one (its share of the rate, the
        hang-ups due), so the server gets a frame a millisecond however many connections there
        are: each frame costs both sides a wake-up and system calls (~50 us of CPU on the 2-core
        VM) however few messages it holds, and four frames a millisecond cost the server about
        as much as the calls in them.  Latency is unaffected: setups are stamped as they are sent.
        """
        for conn in conns:
            conn.start = trio.current_time()
        tick = trio.current_time()
        for turn in itertools.count():
            now = trio.current_time()
            conn = conns[turn % len(conns)]
            frame, setups = conn.due_frame(now)
            if frame:
                await conn.send(frame, setups)
            if all(conn.finished(now) for conn in conns):
                return
            tick = max(tick + TICK_S, now)
            await trio.sleep_until(tick)

    async def sample() -> None:
        while trio.current_time() < t_end:
            await trio.sleep(0.5)
            if trio.current_time() >= t_measure:
                conns[0].stats.live_samples.append(sum(len(c.live) for c in conns))

    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(conn.read_loop)
        nursery.start_soon(sample)
        await pace()
        with trio.move_on_after(2.0):  # collect the last `ended`s
            while any(c.stats.ended + c.stats.disconnected < c.stats.answered for c in conns):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    lat = np.array([x for c in conns for x in c.stats.latencies]) * 1000
    errors: dict[str, int] = {}
    for c in conns:
        for k, v in c.stats.errors.items():
            errors[k] = errors.get(k, 0) + v
    samples = conns[0].stats.live_samples
    return {
        "offered_setups_per_s": opt.rate,
        "target_concurrent": opt.concurrent,
        "holding_s": round(opt.holding_s, 3),
        "measured_s": opt.duration_s,
        "setups_per_s": round(sum(c.stats.answered_measured for c in conns) / opt.duration_s, 1),
        "concurrent_mean": int(np.mean(samples)) if samples else 0,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "latency_ms_max": round(float(lat.max()), 3) if len(lat) else None,
        "answered": sum(c.stats.answered for c in conns),
        "rejected": sum(c.stats.rejected for c in conns),
        "disconnected": sum(c.stats.disconnected for c in conns),
        "ended": sum(c.stats.ended for c in conns),
        "errors": errors,
    }


def run_loadgen(opt: LoadOptions) -> int:
    """The CLI entry: print the figures, one `key: value` per line."""
    print(f"callsim loadgen: {opt.connections} connections to {opt.host}:{opt.port}, "
          f"{opt.rate} setups/s offered, {opt.concurrent} concurrent (holding {opt.holding_s:.2f} s), "
          f"warm-up {opt.warmup:.1f} s, measuring {opt.duration_s:g} s", file=sys.stderr, flush=True)
    try:
        result = trio.run(unwake_at_exit, measure, opt)
    except LoadError as err:
        print(f"callsim loadgen: {err}", file=sys.stderr)
        return err.status
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0
