"""Helpers for the `callsim serve` tests: a server in the test's nursery and a raw wire client.

No tests live here.  The server runs in the test's own Trio run, on a real
loopback socket (port 0), so tests that ask for `autojump_clock` drive its
ticks, increments and idle timeouts with Trio's MockClock.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from prometheus_client import CollectorRegistry

from simulator.server._budget import BufferBudget
from simulator.server._connection import Limits
from simulator.server._exchange import Exchange
from simulator.server._wire import FrameReader, decode_payload, pack_frame
from simulator.scenario import parse_scenario
from simulator.server import ServerConfig, ServerResult, serve

SCENARIO = """
[simulation]
name = "server_test"
seed = 1
start = "2026-11-01T00:00:00Z"
duration = "30d"
currency = "USD"

[plans]
domestic_minutes = { default = 60, GB = 0 }

[[tariff]]
prefix = "1"
country = "US"
zone = "A"
per_minute = "0.02"
increment = "60/60"

[[toll_free_tariff]]
prefix = "44"
per_minute = "0.05"
increment = "60/60"

[[orgs]]
id = "acme"
token = "acme-secret"
toll_free_numbers = ["+18005550100"]

[orgs.credits]
initial = "10.00"

[[orgs.users]]
id = "alice"
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]

[[orgs.users]]
id = "carol"
country = "US"
licenses = ["e5"]

[[orgs]]
id = "globex"
token = "globex-secret"

[orgs.credits]
initial = "0.05"

[[orgs.users]]
id = "gary"
country = "GB"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]
"""
# gary (globex) is in GB with no GB pool minutes: his calls to +1 are international and paid
# from credits only, 0.02 per 60 s increment, so 0.05 pays the increments at 0 s and 60 s and
# leaves 0.01: the boundary at 120 s cannot be paid.

ACME = {"op": "hello", "org": "acme", "token": "acme-secret"}
GLOBEX = {"op": "hello", "org": "globex", "token": "globex-secret"}


def call(ref: Any, user: str = "alice", to: str = "+12125550100", **extra: Any) -> dict[str, Any]:
    return {"op": "setup", "ref": ref, "user": user, "type": "outbound", "to": to, **extra}


@dataclass
class Server:
    port: int
    exchange: Exchange
    registry: CollectorRegistry
    out_dir: Path
    _done: trio.Event
    _result: list[ServerResult]
    budget: BufferBudget | None = None  # the server-wide buffer budget (`_budget`)

    def errors(self, kind: str) -> float:
        return self.registry.get_sample_value("callsim_server_protocol_errors_total", {"kind": kind}) or 0.0

    async def stop(self) -> ServerResult:
        self.exchange.stop()
        return await self.finished()

    async def finished(self) -> ServerResult:
        """Wait for the server to have stopped (by itself, or after `stop`)."""
        await self._done.wait()
        return self._result[0]

    async def connect(self, hello: dict[str, Any] | None = None) -> "Client":
        client = Client(await trio.open_tcp_stream("127.0.0.1", self.port))
        if hello is not None:
            await client.send(hello)
            welcome = await client.recv()
            assert welcome["op"] == "welcome", welcome
        return client


async def start_server(nursery: trio.Nursery, tmp_path: Path, scenario: str = SCENARIO,
                       **config: Any) -> Server:
    registry = CollectorRegistry()
    limits = config.pop("limits", Limits())
    cfg = ServerConfig(out_dir=tmp_path / "out", port=0, handle_signals=False, grace_s=0.05,
                       registry=registry, limits=limits, **config)
    done, result = trio.Event(), []

    async def run(task_status: trio.TaskStatus) -> None:
        result.append(await serve(parse_scenario(scenario), cfg, task_status=task_status))
        done.set()

    info = await nursery.start(run)
    return Server(info.port, info.exchange, registry, cfg.out_dir, done, result, info.budget)


class Client:
    """A raw protocol client: frames out, messages in (batches unpacked in order)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._frames = FrameReader(1 << 30)
        self._inbox: deque[dict[str, Any]] = deque()

    async def send(self, *messages: dict[str, Any]) -> None:
        await self.stream.send_all(pack_frame(list(messages)))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_payload(self, payload: bytes) -> None:
        await self.stream.send_all(struct.pack(">I", len(payload)) + payload)

    async def recv(self) -> dict[str, Any]:
        """The next message; fails the test if the server closes the connection first."""
        msg = await self.recv_or_eof()
        assert msg is not None, "connection closed by the server"
        return msg

    async def recv_or_eof(self) -> dict[str, Any] | None:
        while not self._inbox:
            try:
                data = await self.stream.receive_some(1 << 16)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            self._frames.feed(data)
            for payload in self._frames.frames():
                self._inbox.extend(decode_payload(payload))
        return self._inbox.popleft()

    async def recv_op(self, op: str) -> dict[str, Any]:
        """Skip to the next message with this op."""
        while True:
            msg = await self.recv()
            if msg["op"] == op:
                return msg

    async def until_closed(self) -> list[dict[str, Any]]:
        """Every message up to the server closing the connection."""
        out = []
        while (msg := await self.recv_or_eof()) is not None:
            out.append(msg)
        return out

    async def close(self) -> None:
        await self.stream.aclose()
