"""The server-wide buffer budget (`Limits.max_buffered_bytes`, `_server_budget`): what all the
connections together make `callsim serve` hold stays within it, the connections holding the most
are paused or dropped, and the others are served meanwhile.

Real servers over loopback with Trio's MockClock (autojump); `budget.total` is sampled at the
clients' every step, and a bug that let the sum pass the budget would show in one of them.
"""

from __future__ import annotations

import socket
import struct

import trio

from pathlib import Path

from simulator.server._budget import BufferBudget
from simulator.server._connection import PEER_CHECK_S, Limits

from ...scenarios import SERVER_DEMO
from .support import ACME, call, start_server
from .test_server_resources import connect_small_window

SCENARIO = SERVER_DEMO


class Watch:
    """The largest total the budget was seen to hold."""

    def __init__(self, budget: BufferBudget) -> None:
        self.budget = budget
        self.most = 0

    def look(self) -> None:
        self.most = max(self.most, self.budget.total)


async def test_clients_that_never_read_stay_within_the_budget_and_the_biggest_is_dropped(
        nursery, tmp_path, autojump_clock):
    # each client's own limit (1 MiB) is 4 times the server's: only the global budget holds them
    limits = Limits(max_output_buffer=1 << 20, max_buffered_bytes=64 << 10, idle_timeout_s=1000,
                    max_errors=10**9)
    server = await start_server(nursery, tmp_path, limits=limits)
    watch = Watch(server.budget)
    quiet = []
    for _ in range(3):  # clients with a few unread replies each
        client = await connect_small_window(server.port)
        await client.send(ACME)
        await client.send(*(call(f"q{i}") for i in range(20)), *({"op": "hangup", "ref": f"q{i}"}
                                                                for i in range(20)))
        quiet.append(client)
    await trio.sleep(1)
    watch.look()
    hog = await connect_small_window(server.port)
    await hog.send(ACME)
    started = trio.current_time()
    try:
        for n in range(0, 20_000, 500):  # calls connected: a short `answered` each
            await hog.send(*(call(i) for i in range(n, n + 500)))
            watch.look()
        for n in range(0, 20_000, 200):  # hung up: an `ended` with its CDR each, ~80 KB a frame
            await hog.send(*({"op": "hangup", "ref": i} for i in range(n, n + 200)))
            watch.look()
    except trio.BrokenResourceError:
        pass
    watch.look()
    assert watch.most <= limits.max_buffered_bytes
    assert server.budget.dropped == 1  # the hog, by the budget's hard limit ...
    assert trio.current_time() - started < limits.idle_timeout_s  # ... not by its idle timeout
    assert server.errors("slow_consumer") == 1
    for client in quiet:  # the others kept every reply, and are served still
        ends = [await client.recv_op("ended") for _ in range(20)]
        assert {m["ref"] for m in ends} == {f"q{i}" for i in range(20)}
        await client.send({"op": "ping"})
        assert await client.recv_op("pong")


async def test_big_frames_are_paused_within_the_budget_and_small_clients_still_get_in(
        nursery, tmp_path, autojump_clock):
    limits = Limits(max_buffered_bytes=256 << 10, idle_timeout_s=1000)
    server = await start_server(nursery, tmp_path, limits=limits)
    watch = Watch(server.budget)
    chunk = b"\xa0" * (16 << 10)  # the inside of a frame that is never finished

    async def announce(client) -> None:
        await client.send_raw(struct.pack(">I", 1 << 20))
        for _ in range(64 - 1):  # 1 MiB less one chunk: it never completes
            with trio.move_on_after(5) as blocked:
                await client.send_raw(chunk)
            watch.look()
            if blocked.cancelled_caught:
                return

    announcers = [await server.connect(ACME) for _ in range(16)]  # 16 MiB announced
    async with trio.open_nursery() as senders:
        for client in announcers:
            senders.start_soon(announce, client)
    watch.look()
    assert watch.most <= limits.max_buffered_bytes
    assert server.budget.dropped == 0 and server.errors("slow_consumer") == 0  # paused, not dropped
    newcomer = await server.connect(ACME)  # not starved by those holding the budget
    await newcomer.send(call("new"))
    assert (await newcomer.recv())["op"] in ("answered", "rejected")
    watch.look()
    assert watch.most <= limits.max_buffered_bytes
    assert server.budget.total > 0
    assert server.registry.get_sample_value("callsim_server_buffered_bytes") == server.budget.total
    for client in (*announcers, newcomer):  # reset, as when a process dies with replies unread
        client.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await client.close()
    await trio.sleep(5 * PEER_CHECK_S)  # paused, so not read: their reset is noticed all the same
    assert server.budget.total == 0  # what they held is given back, not kept to the idle timeout


def test_serve_refuses_a_budget_one_client_could_fill(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "simulator.cli", "serve", str(SCENARIO),
                           "--port", "0", "--out", str(tmp_path / "out"), "--max-buffered-bytes", "1000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--max-buffered-bytes 1000: under 18874368" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
