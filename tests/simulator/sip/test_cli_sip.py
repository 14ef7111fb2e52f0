"""`callsim serve --sip` as a command: the line saying where SIP listens, a call, a clean stop,
and one line for each mistake in the SIP options."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import trio

from tests.scenarios import REPO

from .support import SCENARIO, UdpClient, invite, request, status, to_tag_of


async def test_sip_only_server_prints_its_address_answers_and_stops_cleanly(tmp_path):
    scenario = tmp_path / "sip.toml"
    scenario.write_text(SCENARIO)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "simulator.cli", "serve", str(scenario), "--sip", "127.0.0.1:0", "--sip-only",
         "--out", str(tmp_path / "out")], stderr=subprocess.PIPE, cwd=REPO)
    text = b""
    with trio.fail_after(30):
        while b"(UDP and TCP)" not in text:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, text.decode()
            text += chunk
    assert b"serving sip-test (orgs" in text and b" on 127.0.0.1:7060" not in text
    port = int(re.search(rb"SIP on 127\.0\.0\.1:(\d+) \(UDP and TCP\)", text).group(1))
    client = await UdpClient.open(port)
    with trio.fail_after(30):
        await client.send(invite())
        ok = await client.recv_status(200)
        await client.send(request("ACK", to_tag=to_tag_of(ok), branch="z9hG4bK-a"))
        proc.send_signal(signal.SIGTERM)
        bye = await client.recv()
        assert bye.startswith(b"BYE ") and b'text="simulation_end"' in bye
        assert status(bye) == 0 and await proc.wait() == 0
    assert (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--sip", "127.0.0.1:99999"], "--sip '127.0.0.1:99999': the port must be a number"),
    (["--sip-only"], "--sip-only needs --sip"),
    (["--sip", "0", "--sip-digest", "md5,sha-1"], "--sip-digest 'md5,sha-1'"),
    (["--sip", "0", "--sip-t1", "0"], "--sip-t1 0: timer T1 must be at least 1 ms"),
])
def test_bad_sip_options_are_one_line_and_exit_2(tmp_path, args, message):
    scenario = tmp_path / "sip.toml"
    scenario.write_text(SCENARIO)
    done = subprocess.run([sys.executable, "-m", "simulator.cli", "serve", str(scenario), *args,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
