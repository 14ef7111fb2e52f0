"""`callsim loadgen` when the load cannot run: one line saying why, and the option to change.

Each case runs against a real `callsim serve` (or no server) on loopback:
`measure` must raise `LoadError` with the exit status the command returns,
and the command itself must print one line, never a traceback.
"""

from __future__ import annotations

import sys

import pytest
import trio

from simulator.server import EXIT_FAILED, EXIT_USAGE, LoadError, LoadOptions, measure
from .support import start_server
from tests.scenarios import REPO

ROOT = REPO
DEMO = (ROOT / "scenarios" / "server_demo.toml").read_text()
SMALL = dict(concurrent=20, rate=400, duration_s=1.0, warmup_s=0.1, connections=2)


async def refused(opt: LoadOptions) -> LoadError:
    with trio.fail_after(30), pytest.raises(LoadError) as err:
        await measure(opt)
    return err.value


async def test_a_user_the_org_does_not_have_stops_the_load_naming_it_and_the_flag(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, scenario=DEMO)
    err = await refused(LoadOptions(port=server.port, org="demo", token="demo-token", **SMALL))
    assert err.status == EXIT_USAGE
    assert str(err) == "no user 'load-0001' in org 'demo' on the server: name one of its users with --user"


async def test_an_unknown_org_or_wrong_token_is_a_usage_error(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, scenario=DEMO)
    err = await refused(LoadOptions(port=server.port, org="nobody", token="", **SMALL))
    assert err.status == EXIT_USAGE and "'nobody'" in str(err) and "--token" in str(err)


async def test_no_server_is_a_usage_error_naming_the_address():
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    err = await refused(LoadOptions(port=port, **SMALL))
    assert err.status == EXIT_USAGE
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in str(err)


async def test_a_server_stopping_during_the_load_ends_it_with_one_line(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, scenario=DEMO)
    opt = LoadOptions(port=server.port, **{**SMALL, "duration_s": 30.0})
    errors: list[LoadError] = []

    async def load() -> None:
        try:
            await measure(opt)
        except LoadError as err:
            errors.append(err)

    with trio.fail_after(30):
        async with trio.open_nursery() as inner:
            inner.start_soon(load)
            while not server.exchange.setups:
                await trio.sleep(0.01)
            await server.stop()
    assert len(errors) == 1 and errors[0].status == EXIT_FAILED
    assert str(errors[0]).startswith("the server ") and "\n" not in str(errors[0])


async def test_cli_loadgen_with_the_default_user_in_another_org_prints_one_line(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, scenario=DEMO)
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "simulator.cli", "loadgen", "--port", str(server.port), "--org", "demo",
             "--duration", "1", "--rate", "400", "--concurrent", "20"],
            capture_stdout=True, capture_stderr=True, check=False, cwd=ROOT)
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2
    assert lines[1:] == ["callsim loadgen: no user 'load-0001' in org 'demo' on the server: "
                         "name one of its users with --user"], lines  # after the banner
    assert done.stdout == b""


@pytest.mark.parametrize("args, named", [
    (["--to", "3225550100"], "--to"),
    (["--user", ""], "--user"),
    (["--duration", "0"], "--duration"),
])
def test_cli_loadgen_refuses_options_every_setup_would_fail_on(args, named):
    import subprocess

    done = subprocess.run([sys.executable, "-m", "simulator.cli", "loadgen", "--port", "1", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and named in done.stderr, done.stderr
