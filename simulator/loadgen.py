"""`callsim loadgen`: how many setups per second one `callsim serve` process sustains, and how fast.

Locust (load_tests/) models users, one connection and one call at a time
each; on this machine it tops out at a few hundred setups/s.  This client
instead pipelines: a few connections, each sending a frame of setups every
millisecond (and the hang-ups that have come due), while a reader task per
connection matches `answered` / `rejected` to the setup's send time.

Calls are held for `concurrent / rate` seconds (Little's law), so once warmed
up the server carries a steady `concurrent` connected calls while taking
`rate` new ones per second.  The offered rate is open-loop, except that a
connection never has more setups awaiting an answer than the server's
`max_inflight` (from `welcome`): a server that cannot keep up shows as a
lower achieved rate and a higher latency, not as a pile of `flood` errors.
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from ._server_directory import token_env_var
from ._wire import FrameReader, decode_payload, pack_frame

DEMO_TOKENS = {"demo": "demo-token", "bench": "bench-token", "rival": "rival-token"}  # server_demo.toml
TICK_S = 0.001


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
        self.due: list[tuple[float, int]] = []  # (hang-up time, ref)
        self.max_inflight = 10_000
        self.next_ref = 0
        self.frames = FrameReader(1 << 30)
        self.base = {"op": "setup", "user": opt.user, "type": "outbound", "to": opt.to}
        self.start = trio.current_time()
        self.sent = 0

    async def hello(self) -> None:
        hello = {"op": "hello", "org": self.opt.org, "token": self.opt.token, "cdr": self.opt.cdr}
        await self.stream.send_all(pack_frame([hello]))
        msg = await _read_one(self.stream, self.frames)
        if not isinstance(msg, dict) or msg.get("op") != "welcome":
            raise SystemExit(f"callsim loadgen: login refused: {msg}")
        self.max_inflight = int(msg.get("max_inflight", self.max_inflight))

    def due_frame(self, now: float) -> list[dict[str, Any]]:
        """The setups this connection owes by `now` (at its share of the rate) and the hangups due."""
        frame: list[dict[str, Any]] = []
        if now < self.t_end:
            want = int((now - self.start) * self.rate) - self.sent
            room = self.max_inflight - len(self.sent_at)
            base = self.base
            for ref in range(self.next_ref, self.next_ref + max(0, min(want, room))):
                frame.append({**base, "ref": ref})
                self.sent_at[ref] = now
            self.next_ref += len(frame)
            # at the in-flight cap the load is closed-loop: skip what cannot be sent, no backlog
            self.sent += max(want, len(frame))
        due, live = self.due, self.live
        while due and (due[0][0] <= now or now >= self.t_end):
            _, ref = heapq.heappop(due)
            if ref in live:
                live.discard(ref)
                frame.append({"op": "hangup", "ref": ref})
        return frame

    def finished(self, now: float) -> bool:
        return now >= self.t_end + 5.0 or (now >= self.t_end and not self.due and not self.sent_at)

    async def read_loop(self) -> None:
        s, hold = self.stats, self.opt.holding_s
        while True:
            data = await self.stream.receive_some(1 << 16)
            if not data:
                return
            now = trio.current_time()
            self.frames.feed(data)
            for payload in self.frames.frames():
                for msg in decode_payload(payload):
                    op = msg.get("op")
                    if op == "answered" or op == "rejected":
                        ref = msg["ref"]
                        sent = self.sent_at.pop(ref, now)
                        if self.t_measure <= sent < self.t_end:
                            s.latencies.append(now - sent)
                        if op == "answered":
                            s.answered += 1
                            s.answered_measured += self.t_measure <= now < self.t_end
                            self.live.add(ref)
                            heapq.heappush(self.due, (sent + hold, ref))
                        else:
                            s.rejected += 1
                    elif op == "ended":
                        s.ended += 1
                    elif op == "disconnected":
                        s.disconnected += 1
                        self.live.discard(msg["ref"])
                    elif op == "error":
                        code = msg.get("code", "?")
                        s.errors[code] = s.errors.get(code, 0) + 1
                        self.sent_at.pop(msg.get("ref"), None)


async def _read_one(stream: trio.SocketStream, frames: FrameReader) -> object:
    while True:
        data = await stream.receive_some(1 << 16)
        if not data:
            return None
        frames.feed(data)
        for payload in frames.frames():
            return decode_payload(payload)[0]


async def measure(opt: LoadOptions) -> dict:
    """Run the load and return the figures (also used by tests with a tiny load)."""
    conns: list[_Conn] = []
    t0 = trio.current_time()
    t_measure = t0 + opt.warmup
    t_end = t_measure + opt.duration_s
    for _ in range(opt.connections):
        stream = await trio.open_tcp_stream(opt.host, opt.port)
        conn = _Conn(stream, opt, opt.rate / opt.connections, t_measure, t_end)
        await conn.hello()
        conns.append(conn)
    async def pace() -> None:
        """One task paces every connection: one wake-up per millisecond, not one per connection."""
        for conn in conns:
            conn.start = trio.current_time()
        tick = trio.current_time()
        while True:
            now = trio.current_time()
            for conn in conns:
                frame = conn.due_frame(now)
                if frame:
                    await conn.stream.send_all(pack_frame(frame))
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
    for conn in conns:
        await conn.stream.aclose()
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
        result = trio.run(measure, opt)
    except OSError as err:  # connecting (the server is not there): not a traceback
        print(f"callsim loadgen: cannot connect to {opt.host}:{opt.port} ({err.strerror or err})",
              file=sys.stderr)
        return 2
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0
