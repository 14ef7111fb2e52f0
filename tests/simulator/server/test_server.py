"""`callsim serve`: each message of the protocol, isolation between orgs, cuts at the right instant.

Real loopback sockets; time-dependent tests take `autojump_clock` (Trio's
MockClock), so a two-minute call takes no wall time and instants are exact.
"""

from __future__ import annotations

import csv
import json

import pytest
import trio

from .support import ACME, GLOBEX, SCENARIO, call, start_server


async def test_hello_is_answered_with_welcome(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect()
    await client.send(ACME)
    welcome = await client.recv()
    assert welcome["op"] == "welcome"
    assert welcome["org"] == "acme"
    assert welcome["protocol"] == 1
    assert welcome["currency"] == "USD"
    assert welcome["max_frame"] == 1 << 20


async def test_ping_is_answered_with_pong(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send({"op": "ping"})
    assert await client.recv() == {"op": "pong"}


async def test_setup_answered_then_hangup_ended_with_the_cdr(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(call("c1", from_="x") | {"from": "+12125550111"})
    answered = await client.recv()
    assert answered == {"op": "answered", "ref": "c1", "call_id": 1}
    await trio.sleep(90)  # two 60 s increments: at 0 and at 60
    await client.send({"op": "hangup", "ref": "c1"})
    ended = await client.recv()
    assert ended["op"] == "ended" and ended["ref"] == "c1" and ended["call_id"] == 1
    assert ended["org_id"] == "acme" and ended["user_id"] == "alice"
    assert ended["call_type"] == "domestic"
    assert ended["from_number"] == "+12125550111" and ended["to_number"] == "+12125550100"
    assert ended["destination_country"] == "US" and ended["zone"] == "A"
    assert ended["start_time"] == "2026-11-01T00:00:00.000Z"
    assert ended["end_time"] == "2026-11-01T00:01:30.000Z"
    assert ended["duration_s"] == "90.000"
    assert ended["billed_s"] == 120 and ended["pool"] == "domestic:US" and ended["pool_s"] == 120
    assert ended["credits_charged"] == "0.000000" and ended["currency"] == "USD"
    assert ended["end_reason"] == "hangup"


async def test_rejected_setups_carry_the_end_reason(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(call(1, user="carol"))  # e5 only: no calling plan
    assert await client.recv() == {"op": "rejected", "ref": 1, "call_id": 1, "end_reason": "not_licensed"}
    await client.send(call(2, to="+999123"))
    assert (await client.recv())["end_reason"] == "unroutable"
    await client.send({"op": "setup", "ref": 3, "type": "toll_free", "to": "+18005550100"})  # no caller
    assert (await client.recv())["end_reason"] == "unroutable"


async def test_toll_free_call_is_rated_by_the_caller_prefix(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send({"op": "setup", "ref": "tf", "type": "toll_free", "to": "+18005550100",
                       "from": "+442071234567"})
    assert (await client.recv())["op"] == "answered"
    await trio.sleep(30)
    await client.send({"op": "hangup", "ref": "tf"})
    ended = await client.recv()
    assert ended["call_type"] == "toll_free" and ended["user_id"] is None
    assert ended["billed_s"] == 60 and ended["credits_charged"] == "0.050000" and ended["pool"] is None


async def test_one_frame_may_batch_several_messages_and_replies_batch_too(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(*(call(i) for i in range(50)))
    answered = [await client.recv() for _ in range(50)]
    assert sorted(m["ref"] for m in answered) == list(range(50))
    assert {m["op"] for m in answered} == {"answered"}
    assert sorted(m["call_id"] for m in answered) == list(range(1, 51))


async def test_setup_latency_is_observed_once_per_setup_answered_or_rejected(nursery, tmp_path):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(*(call(i) for i in range(30)), call("no", user="carol"))  # carol: not licensed
    replies = [await client.recv() for _ in range(31)]
    assert sorted(r["op"] for r in replies) == ["answered"] * 30 + ["rejected"]
    count = server.registry.get_sample_value("callsim_server_setup_latency_seconds_count")
    assert count == 31


async def test_hangup_sent_before_the_answer_ends_the_call_unbilled(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(call("x"), {"op": "hangup", "ref": "x"})
    assert (await client.recv())["op"] == "answered"
    ended = await client.recv()
    assert ended["op"] == "ended" and ended["billed_s"] == 0 and ended["duration_s"] == "0.000"


async def test_call_cut_at_exactly_the_boundary_that_cannot_be_paid(nursery, tmp_path, autojump_clock):
    """0.05 of credits at 0.02 per 60 s pays the increments at 0 and 60 s, not the one at 120 s."""
    server = await start_server(nursery, tmp_path)
    client = await server.connect(GLOBEX)
    started = trio.current_time()
    await client.send(call("g", user="gary"))
    assert (await client.recv())["op"] == "answered"
    cut = await client.recv()
    elapsed = trio.current_time() - started
    assert cut == {"op": "disconnected", "ref": "g", "call_id": 1,
                   "end_reason": "dropped_balance_exhausted", "end_time": "2026-11-01T00:02:00.000Z",
                   "billed_s": 120, "credits_charged": "0.040000"}
    assert 120.0 <= elapsed < 120.002  # pushed within the millisecond of the boundary
    # the ref is free again: hanging it up now is an unknown call
    await client.send({"op": "hangup", "ref": "g"})
    assert (await client.recv())["code"] == "unknown_call"


async def test_org_cannot_hang_up_another_orgs_call_nor_touch_its_balance(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    acme, globex = await server.connect(ACME), await server.connect(GLOBEX)
    await globex.send(call("same", user="gary"))
    assert (await globex.recv())["op"] == "answered"
    # acme names globex's ref (and call id, and user): none of it reaches globex
    await acme.send({"op": "hangup", "ref": "same"}, {"op": "hangup", "ref": 1, "call_id": 1})
    assert [(await acme.recv())["code"] for _ in range(2)] == ["unknown_call", "unknown_call"]
    await acme.send(call("g2", user="gary"))
    assert (await acme.recv())["code"] == "unknown_user"
    await acme.send(call("own"))
    assert (await acme.recv())["op"] == "answered"
    await trio.sleep(30)
    await globex.send({"op": "hangup", "ref": "same"})
    ended = await globex.recv()
    assert ended["end_reason"] == "hangup" and ended["credits_charged"] == "0.020000"
    result = await server.stop()
    assert result.summary["orgs"]["globex"]["final_balance"] == "0.030000"
    assert result.summary["orgs"]["globex"]["calls"] == 1


async def test_closed_connection_hangs_up_its_calls_billed_to_the_close(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(call("a"), call("b"))
    assert {(await client.recv())["op"] for _ in range(2)} == {"answered"}
    await trio.sleep(61.5)  # increments at 0 and 60 s charged
    await client.close()
    await trio.sleep(1)
    await server.stop()
    rows = list(csv.DictReader(open(server.out_dir / "cdrs.csv")))
    assert [(r["call_id"], r["end_reason"], r["billed_s"], r["end_time"]) for r in rows] == [
        ("1", "hangup", "120", "2026-11-01T00:01:01.500Z"),
        ("2", "hangup", "120", "2026-11-01T00:01:01.500Z"),
    ]
    assert server.exchange.active_calls == 0


async def test_stop_disconnects_calls_as_simulation_end_and_writes_every_file(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    client = await server.connect(ACME)
    await client.send(call(7))
    assert (await client.recv())["op"] == "answered"
    await trio.sleep(10)
    server.exchange.stop()
    cut = await client.recv()
    assert cut["op"] == "disconnected" and cut["end_reason"] == "simulation_end" and cut["billed_s"] == 60
    result = await server.stop()
    assert result.complete is False
    summary = json.loads((server.out_dir / "summary.json").read_text())
    assert summary["complete"] is False
    assert summary["orgs"]["acme"]["calls_by_end_reason"]["simulation_end"] == 1
    events = [json.loads(line) for line in open(server.out_dir / "events.jsonl")]
    assert [e["event"] for e in events] == ["credits_purchased", "credits_purchased"]
    assert not (server.out_dir / "cdrs.msgpack").exists()  # opt-in for the server


async def test_server_stops_by_itself_at_the_end_of_the_simulated_period(nursery, tmp_path, autojump_clock):
    short = SCENARIO.replace('duration = "30d"', 'duration = "5m"')
    server = await start_server(nursery, tmp_path, scenario=short)
    client = await server.connect(ACME)
    await client.send(call(1))
    assert (await client.recv())["op"] == "answered"
    cut = await client.recv()
    assert cut["end_reason"] == "simulation_end" and cut["end_time"] == "2026-11-01T00:05:00.000Z"
    result = await server.finished()
    assert result.complete is True and result.summary["complete"] is True


async def test_token_from_the_environment_overrides_the_scenario(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, environ={"CALLSIM_TOKEN_ACME": "from-env"})
    client = await server.connect()
    await client.send({"op": "hello", "org": "acme", "token": "from-env"})
    assert (await client.recv())["op"] == "welcome"
    old = await server.connect()
    await old.send(ACME)  # the scenario's token no longer works
    assert (await old.recv())["code"] == "bad_token"


@pytest.mark.parametrize("org_id, var", [("acme", "CALLSIM_TOKEN_ACME"), ("contoso-eu.2", "CALLSIM_TOKEN_CONTOSO_EU_2")])
def test_token_env_var_name(org_id, var):
    from simulator.server._directory import token_env_var

    assert token_env_var(org_id) == var


async def test_a_server_steps_by_python_however_much_it_foresees(nursery, tmp_path):
    """Compiling the stepping loop would stall every connection for numba's load (~0.3 s,
    ~5 s the first time): a server never does, whatever its stepping pace foretells."""
    server = await start_server(nursery, tmp_path)
    charger = server.exchange.engine._charger
    assert not charger.compile_stepping(60_000, 10**9)
    await server.stop()
