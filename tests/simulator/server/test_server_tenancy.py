"""One credential opens one org, and a session of one org never reaches another org's calls.

The start-up refusals are checked on `serve` itself and on the `callsim serve`
command (exit 2, one line); the isolation between orgs over real loopback
connections, the way a hostile tenant would try it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from simulator.server._directory import TokenConflict
from .support import ACME, GLOBEX, SCENARIO, call, start_server
from tests.scenarios import REPO

ROOT = REPO
# two orgs whose ids differ only in a character the variable name cannot hold
TWINS = SCENARIO.replace('id = "acme"', 'id = "acme-eu"').replace('id = "globex"', 'id = "acme_eu"')


@pytest.mark.parametrize("scenario, environ, named", [
    (TWINS, {}, ["'acme-eu'", "'acme_eu'", "CALLSIM_TOKEN_ACME_EU"]),
    # (two orgs with one token in the scenario are the loader's to refuse: `callsim validate`)
    # a variable that gives an org the token another org has in the scenario
    (SCENARIO, {"CALLSIM_TOKEN_GLOBEX": "acme-secret"}, ["'acme'", "'globex'", "CALLSIM_TOKEN_GLOBEX"]),
    (SCENARIO, {"CALLSIM_TOKEN_ACME": "shared", "CALLSIM_TOKEN_GLOBEX": "shared"},
     ["'acme'", "'globex'", "CALLSIM_TOKEN_ACME", "CALLSIM_TOKEN_GLOBEX"]),
])
async def test_a_credential_that_would_open_two_orgs_stops_the_server_at_start(
        nursery, tmp_path, scenario, environ, named):
    with pytest.raises(TokenConflict) as refused:
        await start_server(nursery, tmp_path, scenario=scenario, environ=environ)
    assert all(name in str(refused.value) for name in named), str(refused.value)
    assert "acme-secret" not in str(refused.value) and "shared" not in str(refused.value)
    assert not (tmp_path / "out").exists()  # refused before any file was made


def test_cli_serve_refuses_colliding_token_variables_in_one_line(tmp_path):
    scenario = tmp_path / "twins.toml"
    scenario.write_text(TWINS)
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "serve", str(scenario), "--port", "0",
         "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "'acme-eu' and 'acme_eu'" in done.stderr and "CALLSIM_TOKEN_ACME_EU" in done.stderr
    assert not (tmp_path / "out").exists()


async def test_a_session_cannot_place_calls_for_another_org(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    attacker = await server.connect(GLOBEX)
    await attacker.send(call(1, user="alice"))  # acme's user
    assert (await attacker.recv())["code"] == "unknown_user"
    # acme's toll-free number: looked up among globex's numbers, where it is not
    await attacker.send({"op": "setup", "ref": 2, "type": "toll_free", "to": "+18005550100",
                         "from": "+442071234567", "org": "acme"})
    assert (await attacker.recv())["end_reason"] == "unroutable"
    await attacker.send(call(3, user="gary", org="acme", org_id="acme"))  # extra fields do not move it
    assert (await attacker.recv())["op"] == "answered"
    await attacker.send({"op": "hangup", "ref": 3})
    assert (await attacker.recv())["org_id"] == "globex"
    result = await server.stop()
    acme = result.summary["orgs"]["acme"]
    assert acme["calls"] == 0 and acme["final_balance"] == "10.000000"


async def test_a_session_hangs_up_and_hears_of_its_own_calls_only(nursery, tmp_path, autojump_clock):
    server = await start_server(nursery, tmp_path)
    victim = await server.connect(ACME)
    attacker = await server.connect(GLOBEX)
    await victim.send(call(1), call("v"))
    victim_ids = {(await victim.recv())["call_id"] for _ in range(2)}
    await attacker.send(call(1, user="gary"))  # the same ref as the victim's call
    mine = (await attacker.recv())["call_id"]
    await trio.sleep(30)
    await attacker.send({"op": "hangup", "ref": 1}, {"op": "hangup", "ref": "v"})
    unknown, ended = await attacker.recv(), await attacker.recv()  # errors go at once, ends after a tick
    assert (ended["op"], ended["call_id"], ended["org_id"]) == ("ended", mine, "globex")
    assert unknown["code"] == "unknown_call"  # another org's ref is not this session's
    await trio.sleep(30)
    assert server.exchange.active_calls == 2  # the victim's calls go on
    await victim.send({"op": "hangup", "ref": 1})
    assert (await victim.recv())["billed_s"] == 60 + 60  # held 60 s: charged the boundary at 60 s
    result = await server.stop()  # the victim's other call is cut: only the victim is told
    told = await victim.until_closed()
    assert [(m["op"], m["ref"], m["call_id"] in victim_ids) for m in told] == [("disconnected", "v", True)]
    heard = await attacker.until_closed()
    assert heard == []
    assert result.summary["orgs"]["acme"]["calls"] == 2
