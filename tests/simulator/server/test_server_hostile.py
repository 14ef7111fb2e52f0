"""`callsim serve` against hostile and broken clients.

Each class of bad input gets an `error` reply (or the connection closed),
is counted in callsim_server_protocol_errors_total{kind}, and leaves the
server serving, with no call leaked and no other org touched.
"""

from __future__ import annotations

import socket
import struct

import msgpack
import pytest
import trio

from simulator.server._connection import Limits
from simulator.server._wire import pack_frame
from .support import ACME, GLOBEX, call, start_server


async def assert_still_serving(server) -> None:
    client = await server.connect(ACME)
    await client.send({"op": "ping"})
    assert await client.recv() == {"op": "pong"}
    await client.close()


@pytest.mark.parametrize("payload", [
    b"\xc1",  # a byte msgpack never uses
    b"\x92\x01",  # array of 2 with one element
    msgpack.packb({"op": "ping"}) + b"\x00",  # trailing bytes
    b"\xa3\xff\xfe\xfd",  # str that is not UTF-8
    msgpack.packb({1: "integer key"}),
    msgpack.packb("just a string"),
    b"\x91" * 5000,  # nested arrays beyond msgpack's stack
])
async def test_malformed_payload_gets_an_error_and_the_connection_goes_on(nursery, tmp_path, payload):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send_payload(payload)
    error = await client.recv()
    assert error["op"] == "error" and error["code"] == "malformed"
    await client.send({"op": "ping"})
    assert await client.recv() == {"op": "pong"}
    assert server.errors("malformed") == 1


async def test_non_map_items_of_a_batch_are_malformed_the_others_handled(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send_payload(msgpack.packb([1, {"op": "ping"}, ["x"]]))
    replies = [await client.recv() for _ in range(3)]
    assert [r.get("code", r["op"]) for r in replies] == ["malformed", "pong", "malformed"]


async def test_unknown_op(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send({"op": "transfer", "ref": 5})
    assert await client.recv() == {"op": "error", "code": "unknown_op",
                                   "message": "op: unknown operation 'transfer'", "ref": 5}
    assert server.errors("unknown_op") == 1


@pytest.mark.parametrize("message, field", [
    ({"ref": 1}, "op"),
    ({"op": 7}, "op"),
    (call(None), "ref"),
    (call(True), "ref"),
    (call(-1), "ref"),
    (call(2**63), "ref"),
    (call(-2**63), "ref"),
    (call(""), "ref"),
    (call("r" * 65), "ref"),
    (call(1.5), "ref"),
    (call(1, user=7), "user"),
    (call(1) | {"type": "domestic"}, "type"),
    (call(1) | {"type": None}, "type"),
    (call(1) | {"type": ["outbound"]}, "type"),  # unhashable
    (call(1) | {"to": {"+1": 1}}, "to"),
    (call(1) | {"user": ["alice"]}, "user"),
    (call({"r": 1}), "ref"),
    (call(1, to="12125550100"), "to"),
    (call(1, to=12125550100), "to"),
    (call(1, to="+1" + "2" * 15), "to"),
    (call(1) | {"from": "tel:+1"}, "from"),
    ({"op": "setup", "ref": 1, "type": "toll_free", "to": "+18005550100", "user": "alice"}, "user"),
    ({"op": "hangup"}, "ref"),
    ({"op": "hangup", "ref": [1]}, "ref"),
])
async def test_wrong_types_get_bad_field_naming_the_field(nursery, tmp_path, message, field):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(message)
    error = await client.recv()
    assert error["op"] == "error" and error["code"] == "bad_field", error
    assert error["message"].startswith(f"{field}:")
    assert server.errors("bad_field") == 1
    assert server.exchange.active_calls == 0


@pytest.mark.parametrize("bad, field", [
    (call(True), "ref"),  # a field of the wrong type: the frame skips the fast decoder entirely
    (call(1, to="12125550100"), "to"),  # rules between fields: the fast path hands over mid-frame
    ({"op": "setup", "ref": 1, "type": "toll_free", "to": "+18005550100", "user": "alice"}, "user"),
    ({"op": "ping"}, None),
])
async def test_a_bad_message_amid_good_ones_is_refused_alone(nursery, tmp_path, bad, field):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(call("a"), call("b"))
    assert {(await client.recv())["op"] for _ in range(2)} == {"answered"}
    await client.send(call("c"), {"op": "hangup", "ref": "a"}, bad, call("d"), {"op": "hangup", "ref": "b"})
    replies = [await client.recv() for _ in range(5)]
    first = replies.pop(0)  # errors (and pong) are sent at once, answers after the next tick
    if field is None:
        assert first == {"op": "pong"}
    else:
        assert first["code"] == "bad_field" and first["message"].startswith(f"{field}:")
    assert sorted((r["op"], r["ref"]) for r in replies) == [
        ("answered", "c"), ("answered", "d"), ("ended", "a"), ("ended", "b")]
    counted = {op: server.registry.get_sample_value("callsim_server_messages_total", {"op": op})
               for op in ("setup", "hangup")}
    assert counted == {"setup": 4 + (bad["op"] == "setup"), "hangup": 2}


async def test_bad_hello_fields(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect()
    await client.send({"op": "hello", "org": "acme", "token": 123})
    assert (await client.recv())["code"] == "bad_field"


async def test_oversize_frame_is_refused_and_the_connection_closed(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, limits=Limits(max_frame=1000))
    client = await server.connect(ACME)
    # frames before the oversize one are served, and their setups answered before the close
    await client.send_raw(b"".join(pack_frame([call(i)]) for i in range(3)) + struct.pack(">I", 1001))
    messages = await client.until_closed()
    assert sorted(m.get("code", m["op"]) for m in messages) == ["answered"] * 3 + ["oversize"]
    assert server.errors("oversize") == 1
    await assert_still_serving(server)


async def test_huge_length_prefix_is_not_buffered(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect()
    await client.send_raw(b"\xff\xff\xff\xff")
    assert [m["code"] for m in await client.until_closed()] == ["oversize"]


async def test_setup_and_hangup_before_hello(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect()
    await client.send(call(1), {"op": "hangup", "ref": 1})
    codes = [(await client.recv())["code"] for _ in range(2)]
    assert codes == ["not_authenticated", "not_authenticated"]
    assert server.errors("not_authenticated") == 2
    assert server.exchange.active_calls == 0


@pytest.mark.parametrize("hello", [
    {"op": "hello", "org": "acme", "token": "wrong"},
    {"op": "hello", "org": "acme", "token": "globex-secret"},  # another org's token
    {"op": "hello", "org": "nobody", "token": "acme-secret"},
    {"op": "hello", "org": "acme", "token": ""},
])
async def test_bad_token_closes_the_connection(nursery, tmp_path, hello):
    server = await start_server(nursery, tmp_path)
    client = await server.connect()
    await client.send(hello, call(1))  # the setup after it is never handled
    messages = await client.until_closed()
    assert messages == [{"op": "error", "code": "bad_token", "message": "unknown org or wrong token"}]
    assert server.errors("bad_token") == 1
    assert server.exchange.active_calls == 0


async def test_org_without_token_cannot_log_in(nursery, tmp_path):
    from .support import SCENARIO

    server = await start_server(nursery, tmp_path, scenario=SCENARIO.replace('token = "globex-secret"\n', ""))
    client = await server.connect()
    await client.send({"op": "hello", "org": "globex", "token": ""})
    assert (await client.recv_or_eof())["code"] == "bad_token"


async def test_second_hello_is_refused(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(GLOBEX)  # cannot switch org either
    assert (await client.recv())["code"] == "already_authenticated"
    await client.send(call(1, user="gary"))
    assert (await client.recv())["code"] == "unknown_user"


async def test_unknown_and_duplicate_refs(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send({"op": "hangup", "ref": "nope"})
    assert await client.recv() == {"op": "error", "code": "unknown_call", "ref": "nope",
                                   "message": "no call in progress with this ref on this connection"}
    await client.send(call("d"), call("d"))
    replies = [await client.recv() for _ in range(2)]
    assert sorted(r.get("code", r["op"]) for r in replies) == ["answered", "duplicate_ref"]
    await client.send({"op": "hangup", "ref": "d"}, {"op": "hangup", "ref": "d"})
    replies = [await client.recv() for _ in range(2)]
    assert sorted(r.get("code", r["op"]) for r in replies) == ["ended", "unknown_call"]
    await client.send(call("d"))  # a ref is free again once its call has ended
    assert (await client.recv())["op"] == "answered"
    assert server.errors("duplicate_ref") == 1 and server.errors("unknown_call") == 2


async def test_flood_beyond_the_in_flight_cap_is_refused_per_setup(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, limits=Limits(max_inflight=10, max_errors=1000))
    client = await server.connect(ACME)
    await client.send(*(call(i) for i in range(25)))
    replies = [await client.recv() for _ in range(25)]
    assert sum(r["op"] == "answered" for r in replies) == 10
    assert sum(r.get("code") == "flood" for r in replies) == 15
    assert server.errors("flood") == 15


async def test_calls_per_connection_are_capped(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, limits=Limits(max_calls=3))
    client = await server.connect(ACME)
    await client.send(*(call(i) for i in range(3)))
    assert [(await client.recv())["op"] for _ in range(3)] == ["answered"] * 3
    await client.send(call(3))
    assert (await client.recv())["code"] == "flood"


async def test_too_many_errors_close_the_connection(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, limits=Limits(max_errors=5))
    client = await server.connect(ACME)
    await client.send(call("live"))
    assert (await client.recv())["op"] == "answered"
    await client.send(*({"op": "junk"} for _ in range(20)))
    messages = await client.until_closed()
    assert [m["code"] for m in messages] == ["unknown_op"] * 5 + ["too_many_errors"]
    assert server.errors("too_many_errors") == 1
    await trio.sleep(0.05)
    assert server.exchange.active_calls == 0  # its call was hung up


async def test_idle_connection_times_out(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path, limits=Limits(idle_timeout_s=30))
    client = await server.connect(ACME)
    started = trio.current_time()
    messages = await client.until_closed()
    assert [m["code"] for m in messages] == ["idle_timeout"]
    assert 30 <= trio.current_time() - started < 31
    assert server.errors("idle_timeout") == 1


async def test_trickling_bytes_do_not_keep_a_connection_alive(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path, limits=Limits(idle_timeout_s=30))
    client = await server.connect(ACME)
    started = trio.current_time()
    frame = struct.pack(">I", 100) + b"\x00" * 99
    for byte in frame:  # slowloris: a byte every 10 s, never a whole frame
        try:
            await client.send_raw(bytes([byte]))
        except trio.BrokenResourceError:
            break
        await trio.sleep(10)
        if trio.current_time() - started > 40:
            break
    messages = await client.until_closed()
    assert [m["code"] for m in messages] == ["idle_timeout"]


async def test_connection_with_calls_in_progress_is_not_idle(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path, limits=Limits(idle_timeout_s=30))
    client = await server.connect(ACME)
    await client.send(call(1))
    assert (await client.recv())["op"] == "answered"
    await trio.sleep(330)  # eleven idle timeouts
    await client.send({"op": "hangup", "ref": 1})
    assert (await client.recv())["billed_s"] == 360


async def test_peer_reset_mid_frame_hangs_up_its_calls_and_the_server_goes_on(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(call(1), call(2))
    assert [(await client.recv())["op"] for _ in range(2)] == ["answered", "answered"]
    await trio.sleep(30)
    await client.send_raw(struct.pack(">I", 50) + b"\x81")  # half a frame ...
    sock = client.stream.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # ... then RST
    await trio.sleep(1)
    assert server.exchange.active_calls == 0
    await assert_still_serving(server)
    result = await server.stop()
    by_reason = result.summary["orgs"]["acme"]["calls_by_end_reason"]
    assert by_reason["hangup"] == 2 and result.summary["orgs"]["acme"]["billed_s"] == 120


async def test_hostile_client_never_touches_another_orgs_balance(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    victim = await server.connect(GLOBEX)
    attacker = await server.connect(ACME)
    for junk in ([call(i, user="gary") for i in range(5)]
                 + [{"op": "hangup", "ref": i} for i in range(5)]
                 + [{"op": "setup", "ref": 9, "type": "toll_free", "to": "+18005550100",
                     "from": "+442071234567", "org": "globex"}]):
        await attacker.send(junk)
    await attacker.send_payload(b"\xc1")
    await trio.sleep(5)
    await attacker.close()
    await victim.close()
    result = await server.stop()
    assert result.summary["orgs"]["globex"]["calls"] == 0
    assert result.summary["orgs"]["globex"]["final_balance"] == "0.050000"
