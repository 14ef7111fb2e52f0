"""What a client can make `callsim serve` hold: connections, replies it does not read, bytes
before it logs in, time before it logs in; and the memory given back once clients have gone.

Each test drives a real server over loopback with Trio's MockClock (autojump):
a client that stops reading blocks in `send_all` once the kernel's buffers are
full, the clock jumps to the server's next deadline, and what the server does
then is what the test checks.
"""

from __future__ import annotations

import socket
import struct

import trio

from simulator.server._connection import FLUSH_S, Limits
from .support import ACME, Client, call, start_server

BUDGET = 64 << 10


async def connect_small_window(port: int) -> Client:
    """A client whose socket takes little before it must read (set before connecting, so the
    kernel does not grow it), so the server's own buffers fill after a few frames."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    await sock.connect(("127.0.0.1", port))
    return Client(trio.SocketStream(sock))


async def test_a_client_that_does_not_read_is_not_read_either_then_dropped(nursery, tmp_path, autojump_clock):
    # a budget well above the pongs of one read (64 KiB of pings): they pile up read by read
    server = await start_server(nursery, tmp_path,
                                limits=Limits(max_output_buffer=1 << 20, idle_timeout_s=30, max_errors=10**9))
    client = await connect_small_window(server.port)
    await client.send(ACME)
    started = trio.current_time()
    sent = 0
    try:
        for _ in range(10_000):  # 20 million pings: far more than any buffer holds
            await client.send(*({"op": "ping"} for _ in range(2000)))
            sent += 2000
    except trio.BrokenResourceError:
        pass
    assert sent < 20_000_000  # the server stopped reading: the client's send blocked until the drop
    assert trio.current_time() - started >= 30  # dropped when its replies went unread for 30 s
    assert server.errors("slow_consumer") == 1
    pings = server.registry.get_sample_value("callsim_server_messages_total", {"op": "ping"})
    assert pings < sent


async def test_before_login_unread_replies_are_held_only_until_the_login_deadline(
        nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path, limits=Limits(login_timeout_s=10, max_errors=10**9))
    client = await connect_small_window(server.port)
    started = trio.current_time()
    try:
        for _ in range(10_000):
            await client.send(*({"op": "ping"} for _ in range(400)))  # a frame under 4 KiB
    except trio.BrokenResourceError:
        pass
    # refused at the login deadline, closed once its last reply has had FLUSH_S to leave
    assert trio.current_time() - started <= 10 + FLUSH_S
    assert server.errors("slow_consumer") + server.errors("login_timeout") == 1


async def test_replies_past_the_budget_drop_the_client_and_hang_up_its_calls(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path, limits=Limits(max_output_buffer=BUDGET))
    client = await connect_small_window(server.port)
    await client.send(ACME)
    await client.send(call("held"))
    await trio.sleep(60)
    pairs = 0
    try:  # each frame's `ended` replies (with the CDR, ~400 bytes each) are over the budget at once
        while pairs < 200_000:
            frame = []
            for i in range(pairs, pairs + 500):
                frame += [call(i), {"op": "hangup", "ref": i}]
            await client.send(*frame)
            pairs += 500
    except trio.BrokenResourceError:
        pass
    assert server.errors("slow_consumer") == 1
    # what the kernel's buffers took, then one frame's replies: not 100,000s of calls
    assert server.exchange.setups < 30_000
    await trio.sleep(1)
    assert server.exchange.active_calls == 0  # the client's calls were hung up when it was dropped
    result = await server.stop()
    acme = result.summary["orgs"]["acme"]
    assert acme["calls_by_end_reason"]["hangup"] == acme["calls"] == server.exchange.setups


async def test_connections_past_the_limit_are_refused_at_once(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path, limits=Limits(max_connections=2))
    first = await server.connect(ACME)
    second = await server.connect()
    started = trio.current_time()
    third = await server.connect()
    messages = await third.until_closed()
    assert [m["code"] for m in messages] == ["too_many_connections"]
    assert trio.current_time() - started < 1  # refused, not left waiting for a timeout
    assert server.errors("too_many_connections") == 1
    await second.close()
    await trio.sleep(0.1)
    fourth = await server.connect(ACME)  # a place is free again
    await fourth.send({"op": "ping"})
    assert await fourth.recv() == {"op": "pong"}
    await first.send({"op": "ping"})
    assert await first.recv() == {"op": "pong"}


async def test_before_login_a_frame_holds_a_hello_and_no_more(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    client = await server.connect()
    await client.send_raw(struct.pack(">I", 4097))  # announcing a frame bigger than any hello
    assert [m["code"] for m in await client.until_closed()] == ["oversize"]
    client = await server.connect()
    await client.send({"op": "hello", "org": "acme", "token": "t" * 4000})  # a long token still fits
    assert [m["code"] for m in await client.until_closed()] == ["bad_token"]
    client = await server.connect(ACME)  # logged in: frames up to --max-frame
    await client.send(*(call(i) for i in range(2000)))  # ~150 KB
    ops = {(await client.recv())["op"] for _ in range(2000)}
    assert "answered" in ops and ops <= {"answered", "rejected"}  # handled, not refused as oversize


async def test_a_client_must_log_in_within_the_login_timeout(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path, limits=Limits(login_timeout_s=10, idle_timeout_s=120))
    client = await server.connect()
    started = trio.current_time()

    async def keep_busy() -> None:  # being busy does not count as logging in
        try:
            for _ in range(20):
                await client.send({"op": "ping"})
                await trio.sleep(3)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    nursery.start_soon(keep_busy)
    while (message := await client.recv()) == {"op": "pong"}:
        pass
    assert message["code"] == "login_timeout"
    assert trio.current_time() - started == 10
    assert server.errors("login_timeout") == 1


async def test_memory_is_given_back_after_connections_close_and_not_under_steady_load(nursery, tmp_path):
    # real time (the trim runs in a thread, which MockClock would jump past), kept short
    trims = []
    server = await start_server(nursery, tmp_path, return_memory=lambda: trims.append(True),
                                return_memory_after_s=0.05)
    clients = [await server.connect(ACME) for _ in range(5)]
    with trio.fail_after(30):
        for i in range(10):  # steady traffic on open connections: nothing to give back
            await clients[0].send(call(i), {"op": "hangup", "ref": i})
            await clients[0].recv_op("ended")
            await trio.sleep(0.1)
        assert trims == []
        for client in clients:
            await client.close()
        while not trims:
            await trio.sleep(0.05)
