"""`callsim serve --sip` end to end in one Trio run: real loopback UDP and TCP sockets, Trio's
MockClock for the rating core's instants, the files read back."""

from __future__ import annotations

import trio

from .support import (
    TcpClient, UdpClient, header, invite, request, start_sip_server, status, to_tag_of,
)


async def _connect_call(client, call_id: str = "c1", branch: str = "z9hG4bK-1", **kw) -> str:
    """INVITE, 100, 200, ACK: the dialog's To tag."""
    await client.send(invite(call_id=call_id, branch=branch, **kw))
    assert status(await client.recv()) == 100
    ok = await client.recv_status(200)
    tag = to_tag_of(ok)
    await client.send(request("ACK", call_id=call_id, to_tag=tag, branch=branch + "a"))
    return tag


async def test_server_says_where_sip_listens(nursery, tmp_path):
    server = await start_sip_server(nursery, tmp_path)
    assert f"callsim: SIP on 127.0.0.1:{server.port} (UDP and TCP)" in server.lines[0]


async def test_udp_call_hung_up_by_the_caller_has_the_cdr_of_serve(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path)
    client = await UdpClient.open(server.port)
    tag = await _connect_call(client)
    await trio.sleep(90)
    await client.send(request("BYE", to_tag=tag, branch="z9hG4bK-bye", cseq=2))
    assert status(await client.recv_status(200)) == 200
    await trio.sleep(0.01)
    await server.stop()
    (row,) = server.cdrs()
    assert row["org_id"] == "contoso" and row["user_id"] == "alice" and row["call_type"] == "domestic"
    assert row["to_number"] == "+12125550100" and row["from_number"] == "+14155550100"
    assert row["end_time"] == "2026-11-01T00:01:30.000Z" and row["end_reason"] == "hangup"
    assert row["billed_s"] == "120" and row["credits_charged"] == "0.040000"
    assert server.sample("callsim_sip_responses_total", code="200") == 2
    assert server.sample("callsim_sip_requests_total", method="INVITE") == 1


async def test_bye_leaves_at_the_instant_the_rules_cut_the_call(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path)
    client = await UdpClient.open(server.port)
    await _connect_call(client)
    bye = await client.recv()
    received = trio.current_time()
    assert bye.startswith(b"BYE ")
    assert header(bye, "Reason") == 'Q.850;cause=17;text="dropped_balance_exhausted"'
    ok = (f"SIP/2.0 200 OK\r\nVia: {header(bye, 'Via')}\r\nFrom: {header(bye, 'From')}\r\n"
          f"To: {header(bye, 'To')}\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
    await client.send(ok.encode())
    await trio.sleep(1)
    await server.stop()
    (row,) = server.cdrs()
    assert row["end_reason"] == "dropped_balance_exhausted" and row["end_time"] == "2026-11-01T00:02:00.000Z"
    cut = server.exchange.wall(120_000)
    assert 0 <= received - cut <= 0.005
    assert server.sample("callsim_sip_retransmissions_total", kind="bye_sent") == 0


async def test_stop_sends_bye_to_every_dialog_and_ends_them_as_simulation_end(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path)
    client = await UdpClient.open(server.port)
    await _connect_call(client)
    await _connect_call(client, call_id="c2", branch="z9hG4bK-2", caller="bob")
    await trio.sleep(30)
    stopping = trio.current_time()
    nursery.start_soon(server.stop)
    byes = [await client.recv(), await client.recv()]
    assert all(b.startswith(b"BYE ") and 'text="simulation_end"' in header(b, "Reason") for b in byes)
    assert trio.current_time() - stopping < 0.005
    await server.finished()
    rows = server.cdrs()
    assert [r["end_reason"] for r in rows] == ["simulation_end"] * 2
    assert {r["user_id"] for r in rows} == {"alice", "bob"}


async def test_tcp_call_and_its_bye(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path)
    client = await TcpClient.open(server.port)
    tag = await _connect_call(client)
    await trio.sleep(10)
    await client.send(request("BYE", to_tag=tag, branch="z9hG4bK-bye", cseq=2))
    assert status(await client.recv_status(200)) == 200
    await trio.sleep(0.01)
    await server.stop()
    (row,) = server.cdrs()
    assert row["end_reason"] == "hangup" and row["end_time"] == "2026-11-01T00:00:10.000Z"


async def test_closed_tcp_connection_hangs_up_its_calls(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path)
    client = await TcpClient.open(server.port)
    await _connect_call(client)
    await trio.sleep(5)
    await client.stream.aclose()
    await trio.sleep(1)
    await server.stop()
    (row,) = server.cdrs()
    assert row["end_reason"] == "hangup" and row["end_time"] == "2026-11-01T00:00:05.000Z"


async def test_refused_call_gets_its_code_and_a_cdr(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path)
    client = await UdpClient.open(server.port)
    await client.send(invite(to="+999123456"))
    assert status(await client.recv()) == 100
    refusal = await client.recv_status(404)
    assert header(refusal, "Reason") == 'Q.850;cause=3;text="unroutable"'
    await client.send(request("ACK", to_tag=to_tag_of(refusal), cseq_method="INVITE"))
    await trio.sleep(0.01)
    await server.stop()
    (row,) = server.cdrs()
    assert row["end_reason"] == "unroutable"


async def test_garbage_flood_from_one_source_does_not_stop_another_callers_call(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path, garbage_per_s=50)
    flood = await UdpClient.open(server.port)
    client = await UdpClient.open(server.port)
    for i in range(600):
        await flood.send(b"INVITE garbage %d\r\n\r\n" % i)
    await client.send(invite())
    with trio.move_on_after(0.4):  # a datagram the kernel dropped under the flood is sent again
        await client.recv_status(200)
    for _ in range(5):
        await client.send(invite())
        with trio.move_on_after(0.5) as scope:
            await client.recv_status(200)
        if not scope.cancelled_caught:
            break
    else:
        raise AssertionError("the caller never got its 200")
    assert server.sample("callsim_sip_malformed_total", kind="not_sip") <= 50 + 1
    assert server.sample("callsim_sip_dropped_total", reason="muted") > 0


async def test_lost_ack_200_resent_then_the_call_released_by_timer_h(nursery, tmp_path, autojump_clock):
    server = await start_sip_server(nursery, tmp_path)
    client = await UdpClient.open(server.port)
    await client.send(invite())
    assert status(await client.recv()) == 100
    first = await client.recv_status(200)
    sent_at = [trio.current_time()]
    while True:  # never ACKed: the 200 again at T1, 2·T1, 4·T1, then every T2, until timer H
        data = await client.recv()
        if data.startswith(b"BYE "):
            break
        assert data == first
        sent_at.append(trio.current_time())
    released = trio.current_time() - server.exchange.wall(0)
    gaps = [round(b - a, 2) for a, b in zip(sent_at, sent_at[1:])]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and set(gaps[4:]) == {4.0}
    assert 'text="no_ack"' in header(data, "Reason") and 32.0 <= released <= 32.01
    await server.stop()
    (row,) = server.cdrs()
    assert row["end_reason"] == "hangup" and row["end_time"] == "2026-11-01T00:00:32.000Z"
    assert server.sample("callsim_sip_timeouts_total", kind="no_ack") == 1


async def test_tcp_stream_that_cannot_be_framed_is_closed_and_counted(nursery, tmp_path):
    server = await start_sip_server(nursery, tmp_path)
    client = await TcpClient.open(server.port)
    await client.send(invite().replace(b"Content-Length: ", b"Content-Length: x"))
    with trio.fail_after(5):
        assert await client.stream.receive_some(1000) == b""  # closed by the server
    assert server.sample("callsim_sip_malformed_total", kind="bad_content_length") == 1
    other = await TcpClient.open(server.port)  # the listener goes on
    await other.send(request("OPTIONS", branch="z9hG4bK-o"))
    with trio.fail_after(5):
        assert status(await other.recv()) == 200
