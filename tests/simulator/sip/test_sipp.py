"""SIPp, a real SIP client, drives `callsim serve --sip` over UDP and TCP (load_tests/sip).

Each test starts its own server on loopback ports the system picks (read from the lines it
prints) and runs SIPp scenarios against it, each bounded by a call count and a timeout; what SIPp saw comes from
its message trace, what callsim did from its CDRs after a SIGINT.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.scenarios import REPO
from tests.simulator.sip.sipp import SCENARIO, SIPP, Message, SipServer, SippRun, run_sipp

TRANSPORTS = ("u1", "t1")  # SIPp's -t: UDP, TCP
UNTRUSTED = "127.0.0.4"  # no org trusts it: its INVITEs are challenged
FABRIKAM = "127.0.0.3"  # trusted for fabrikam
GARBAGE = "127.0.0.9"  # where the garbage barrage comes from
T1_MS = 20  # the lost-ACK test's timer T1: timer H (64*T1) gives up after 1.28 s
BILLING = ("call_id", "org_id", "user_id", "call_type", "from_number", "to_number",
           "destination_country", "zone", "start_time", "end_time", "duration_s", "billed_s", "pool",
           "pool_s", "credits_charged", "currency", "end_reason")


@pytest.fixture(autouse=True)
def _sipp_installed() -> None:
    """Without SIPp these tests are skipped, unless $CI is set: in CI they must run."""
    if SIPP is not None:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("CI is set but sipp is not installed: install the Debian package sip-tester "
                    "(see .ci/run)")
    pytest.skip("sipp is not installed (apt-get install sip-tester); under CI=true these fail")


@pytest.fixture
def server(tmp_path: Path):
    srv = SipServer(tmp_path)
    yield srv
    srv.kill()


def final_answers(run: SippRun) -> dict[str, tuple[int, str | None]]:
    """Per Call-ID: the final status received for the INVITE and its Reason header."""
    answers = {}
    for call_id, messages in run.calls().items():
        for m in messages:
            if not m.sent and m.status is not None and m.status >= 200 and "INVITE" in (m.header("CSeq") or ""):
                answers[call_id] = (m.status, m.header("Reason"))
    return answers


def first(run: SippRun, *, sent: bool, method: str | None = None, status: int | None = None) -> Message:
    for m in run.messages:
        if m.sent == sent and (method is None or m.method == method) and (status is None or m.status == status):
            return m
    raise AssertionError(f"no {'sent' if sent else 'received'} {method or status} in SIPp's trace")


def test_answered_calls_get_200_and_hang_up(server: SipServer, tmp_path: Path) -> None:
    for transport in TRANSPORTS:
        for inf, calls in (("domestic.csv", 3), ("international.csv", 1), ("toll_free.csv", 2)):
            run = run_sipp(tmp_path, server, "call", inf, transport=transport, calls=calls,
                           extra=("-d", "100"))
            assert run.returncode == 0, (transport, run.errors)
            assert sorted(set(final_answers(run).values())) == [(200, None)]
            assert run.statuses().count(100) >= calls  # 100 Trying first
    assert server.stop() == 0
    rows = server.cdrs()
    assert [(r["user_id"], r["call_type"], r["from_number"], r["to_number"], r["end_reason"])
            for r in sorted(rows, key=lambda r: int(r["call_id"]))] == 2 * [
        ("alice", "domestic", "+14155550100", "+12125550100", "hangup"),
        ("sales-0001", "domestic", "+14155551000", "+13125550100", "hangup"),
        ("sales-0003", "domestic", "+14155551002", "+14085550100", "hangup"),
        ("alice", "international", "+14155550100", "+442071234567", "hangup"),
        ("", "toll_free", "+442071234567", "+18005550100", "hangup"),
        ("", "toll_free", "+12125550199", "+18005550100", "hangup"),
    ]


def test_each_refusal_has_its_code_and_reason(server: SipServer, tmp_path: Path) -> None:
    for transport in TRANSPORTS:
        run = run_sipp(tmp_path, server, "refused", "refused.csv", transport=transport, calls=5)
        assert run.returncode == 0, (transport, run.errors)
        by_caller = {}
        for call_id, messages in run.calls().items():
            invite = next(m for m in messages if m.sent and m.method == "INVITE")
            caller = invite.header("From").split("sip:")[1].split("@")[0]  # type: ignore[union-attr]
            by_caller[caller] = final_answers(run)[call_id]
        assert {c: code for c, (code, _) in by_caller.items()} == {
            "sales-0001": 402, "intern": 403, "alice": 404, "nobody": 404, "1001": 403}
        for caller, reason in (("sales-0001", "blocked_no_balance"), ("intern", "not_licensed"),
                               ("alice", "unroutable")):
            header = by_caller[caller][1]
            assert header is not None and f'text="{reason}"' in header, (caller, header)
    assert server.stop() == 0
    # Refused by the rating core: a CDR each; refused by identity (no such user, another org's
    # user): never reached it.
    assert sorted((r["user_id"], r["end_reason"]) for r in server.cdrs()) == sorted(2 * [
        ("alice", "unroutable"), ("intern", "not_licensed"), ("sales-0001", "blocked_no_balance")])


BYE_WITHIN_S = 0.010  # the bound on the BYE after the cut
BYE_SAMPLES = 3  # at most: see _cut_alone


@pytest.mark.parametrize("transport", TRANSPORTS, ids=("udp", "tcp"))
def test_bye_at_exhaustion_within_10_ms_of_the_cdrs_cut_and_charges_exact(tmp_path: Path,
                                                                          transport: str) -> None:
    """fabrikam's 0.02 of credit pays 2 s to a UK mobile by the second: callsim cuts the call at
    the boundary of 2 s, its BYE (Reason dropped_balance_exhausted, checked by SIPp's regexp)
    reaches SIPp within 10 ms of that instant; and every CDR of the run (domestic, toll-free and
    dial-out calls hung up meanwhile, and the cut one) equals `callsim run` of the same calls
    written as [[calls]]."""
    server = SipServer(tmp_path)
    runs: dict[str, SippRun] = {}
    flows = {  # at once: hang-ups of two orgs' calls while fabrikam's is cut
        "domestic": lambda: run_sipp(tmp_path, server, "call", "domestic.csv", transport=transport,
                                     calls=2, extra=("-d", "1500")),
        "toll_free": lambda: run_sipp(tmp_path, server, "call", "toll_free.csv", transport=transport,
                                      extra=("-d", "700")),
        "dial_out": lambda: run_sipp(tmp_path, server, "dial_out", "dial_out.csv", transport=transport,
                                     extra=("-d", "1200")),
        "cut": lambda: run_sipp(tmp_path, server, "wait_for_bye", "fabrikam.csv", transport=transport,
                                local_ip=FABRIKAM, timeout_s=10),
    }
    threads = [threading.Thread(target=lambda k=k, f=f: runs.setdefault(k, f())) for k, f in flows.items()]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert server.stop() == 0
    finally:
        server.kill()
    assert runs.keys() == flows.keys()
    for run in runs.values():
        assert run.returncode == 0, run.errors
    rows = {r["call_id"]: r for r in server.cdrs()}
    samples = [_cut_lateness(runs["cut"], rows.values())]
    while samples[-1][0] > BYE_WITHIN_S and len(samples) < BYE_SAMPLES:
        samples.append(_cut_alone(tmp_path, transport))
    assert min(low for low, _ in samples) <= BYE_WITHIN_S, \
        "BYE after the CDR's cut by (at least, at most) s: " + ", ".join(f"({a:+.4f}, {b:+.4f})" for a, b in samples)

    assert sorted((r["call_type"], r["user_id"]) for r in rows.values()) == [
        ("conference_dial_out", "alice"), ("domestic", "alice"), ("domestic", "sales-0001"),
        ("international", "bob"), ("toll_free", "")]
    replay = _replay(tmp_path, rows.values())
    assert [{k: r[k] for k in BILLING} for r in replay] == \
        [{k: r[k] for k in BILLING} for r in sorted(rows.values(), key=lambda r: int(r["call_id"]))]


def _cut_lateness(cut: SippRun, rows) -> tuple[float, float]:
    """How long after the cut instant of the CDR SIPp received callsim's BYE, in seconds, as
    (at least, at most); asserts the call was fabrikam's, cut at 2 s, the BYE saying why.

    The cut instant is the call's start plus its CDR duration, the start being when callsim
    admitted the call: SIPp saw that between sending the INVITE and receiving the 200 OK, which
    bracket the BYE's lateness.  On a quiet machine the bracket is about a millisecond wide."""
    assert any("dropped_balance_exhausted" in line for line in cut.logs), cut.logs
    dropped = [r for r in rows if r["end_reason"] == "dropped_balance_exhausted"]
    assert len(dropped) == 1 and dropped[0]["org_id"] == "fabrikam"
    cdr_s = (_instant(dropped[0]["end_time"]) - _instant(dropped[0]["start_time"])).total_seconds()
    assert cdr_s == 2.0
    bye = first(cut, sent=False, method="BYE").at
    ok = first(cut, sent=False, status=200).at
    invite = first(cut, sent=True, method="INVITE").at
    assert bye - invite - cdr_s >= -0.002, "BYE before the cut"  # 1 ms for the CDR's rounding
    return bye - ok - cdr_s, bye - invite - cdr_s


def _cut_alone(tmp_path: Path, transport: str) -> tuple[float, float]:
    """The cut call again, alone on a new server: another sample of the BYE's lateness.

    What SIPp measures includes when the system schedules SIPp and the server: on a shared
    machine (CI runners, other jobs) one sample can carry a stall of tens of ms that is none of
    callsim's.  A BYE callsim sends late is late in every sample, so the best of a few still
    fails; these runs happen only when the first sample is over the bound."""
    server = SipServer(tmp_path)
    try:
        cut = run_sipp(tmp_path, server, "wait_for_bye", "fabrikam.csv", transport=transport,
                       local_ip=FABRIKAM, timeout_s=10)
        assert server.stop() == 0
    finally:
        server.kill()
    assert cut.returncode == 0, cut.errors
    return _cut_lateness(cut, server.cdrs())


def _instant(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def _replay(tmp_path: Path, rows) -> list[dict[str, str]]:
    """`callsim run` of the SIP run's calls as [[calls]]: same arrival instants, the caller's
    hang-up where they hung up, an hour where callsim cut the call."""
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    lines = []
    for r in sorted(rows, key=lambda r: int(r["call_id"])):
        at = int((_instant(r["start_time"]) - start).total_seconds() * 1000)
        held = int(round(float(r["duration_s"]) * 1000))
        duration = f'"{held}ms"' if r["end_reason"] == "hangup" else '"1h"'
        kind = r["call_type"] if r["call_type"] in ("toll_free", "conference_dial_out") else "outbound"
        lines += ["[[calls]]", f'at = "{at}ms"', f'org = "{r["org_id"]}"', f'type = "{kind}"',
                  f'to = "{r["to_number"]}"', f"duration = {duration}"]
        if r["user_id"]:
            lines.append(f'user = "{r["user_id"]}"')
        if r["from_number"]:
            lines.append(f'from = "{r["from_number"]}"')
    scenario = tmp_path / "replay.toml"
    scenario.write_text(SCENARIO.read_text() + "\n" + "\n".join(lines) + "\n")
    out = tmp_path / "replay"
    done = subprocess.run([sys.executable, "-m", "simulator", "run", str(scenario), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with open(out / "cdrs.csv", newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: int(r["call_id"]))


@pytest.mark.parametrize("transport", TRANSPORTS, ids=("udp", "tcp"))
def test_server_stop_sends_bye_with_simulation_end(tmp_path: Path, transport: str) -> None:
    server = SipServer(tmp_path, metrics=True)
    try:
        waiting = {}
        thread = threading.Thread(target=lambda: waiting.setdefault(
            "run", run_sipp(tmp_path, server, "wait_for_bye", "domestic.csv", transport=transport,
                            calls=1, timeout_s=15)))
        thread.start()
        _wait_for_dialogs(server, 1)
        assert server.stop() == 0
        thread.join(timeout=30)
    finally:
        server.kill()
    run = waiting["run"]
    assert run.returncode == 0, run.errors
    assert any("simulation_end" in line for line in run.logs), run.logs
    assert [r["end_reason"] for r in server.cdrs()] == ["simulation_end"]  # nothing cut it before


def _metric(server: SipServer, name: str) -> float:
    """A metric's value summed over its labels (0 when absent)."""
    assert server.metrics_url is not None, "start the server with metrics=True"
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def _wait_for_dialogs(server: SipServer, count: int, timeout_s: float = 30.0) -> None:
    """Until callsim_sip_dialogs says `count` dialogs are in progress (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _metric(server, "callsim_sip_dialogs") >= count:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"callsim_sip_dialogs did not reach {count} within {timeout_s} s")


def test_cancel_before_the_answer_gets_487_and_no_charge(server: SipServer, tmp_path: Path) -> None:
    for transport in TRANSPORTS:
        run = run_sipp(tmp_path, server, "cancel", "domestic.csv", transport=transport)
        assert run.returncode == 0, (transport, run.errors)
        assert [s for s in run.statuses() if s != 100] == [180, 200, 487]
    assert server.stop() == 0
    assert server.cdrs() == []  # cancelled while ringing: the rating core never saw the calls


@pytest.mark.parametrize("transport", TRANSPORTS, ids=("udp", "tcp"))
def test_lost_ack_200_is_retransmitted_then_the_call_released(tmp_path: Path, transport: str) -> None:
    """RFC 3261 §13.3.1.4: the UAS core resends the 2xx until the ACK over TCP too."""
    server = SipServer(tmp_path, "--sip-t1", str(T1_MS))
    try:
        run = run_sipp(tmp_path, server, "no_ack", "domestic.csv", transport=transport, timeout_s=10)
        assert server.stop() == 0
    finally:
        server.kill()
    assert run.returncode == 0, run.errors
    oks = [m for m in run.received() if m.status == 200 and "INVITE" in (m.header("CSeq") or "")]
    assert len(oks) >= 4  # the first and its retransmissions at T1, 2*T1, 4*T1, ...
    bye = first(run, sent=False, method="BYE")
    held = bye.at - oks[0].at
    assert 64 * T1_MS / 1000 - 0.1 <= held <= 64 * T1_MS / 1000 + 0.5, held
    (row,) = server.cdrs()
    assert row["end_reason"] == "hangup" and float(row["duration_s"]) == pytest.approx(held, abs=0.1)


def test_digest_challenge_then_200_and_wrong_password_403(server: SipServer, tmp_path: Path) -> None:
    for transport in TRANSPORTS:
        good = run_sipp(tmp_path, server, "digest", "digest.csv", transport=transport, local_ip=UNTRUSTED,
                        extra=("-au", "fabrikam-pbx", "-ap", "fabrikam-secret", "-d", "100"))
        assert good.returncode == 0, (transport, good.errors)
        assert [s for s in good.statuses() if s != 100] == [407, 200, 200]  # INVITE, INVITE, BYE
        bad = run_sipp(tmp_path, server, "digest", "digest.csv", transport=transport, local_ip=UNTRUSTED,
                       extra=("-au", "fabrikam-pbx", "-ap", "wrong", "-d", "100"))
        assert bad.returncode != 0
        assert [s for s in bad.statuses() if s != 100][:2] == [407, 403], transport
    assert server.stop() == 0
    assert [(r["org_id"], r["user_id"]) for r in server.cdrs()] == 2 * [("fabrikam", "bob")]


JUNK = (b"\x00" * 1200, b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n", bytes(range(256)) * 4,
        b"INVITE sip:x@y SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0",
        b"BYE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9;branch=z9hG4bK1\r\n\r\n")


def test_a_garbage_barrage_does_not_starve_a_good_caller(tmp_path: Path) -> None:
    """One source floods the SIP port with junk over UDP and TCP while SIPp's calls, from
    another address, are answered and hung up as usual."""
    server = SipServer(tmp_path, metrics=True)
    stop = threading.Event()
    sent = [0]

    def barrage() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((GARBAGE, 0))  # one source: the good caller sends from 127.0.0.1
            while not stop.is_set():
                for data in JUNK:
                    udp.sendto(data, (server.host, server.port))
                    sent[0] += 1
                if sent[0] % 600 == 0:  # now and then a TCP connection's worth of junk
                    try:
                        with socket.create_connection((server.host, server.port), timeout=1,
                                                      source_address=(GARBAGE, 0)) as tcp:
                            tcp.sendall(b"".join(JUNK))
                    except OSError:  # refused, reset or closed by the server: all fine
                        pass

    thread = threading.Thread(target=barrage, daemon=True)
    thread.start()
    try:
        runs = [run_sipp(tmp_path, server, "call", "domestic.csv", transport=transport, calls=3,
                         extra=("-d", "100"), timeout_s=15) for transport in TRANSPORTS]
        malformed = _metric(server, "callsim_sip_malformed_total")
        stop.set()
        thread.join(timeout=5)
        assert server.proc.poll() is None  # it never crashed
        assert server.stop() == 0
    finally:
        stop.set()
        server.kill()
    assert sent[0] > 1000 and malformed > 0
    for run in runs:
        assert run.returncode == 0, run.errors
    assert [r["end_reason"] for r in server.cdrs()] == ["hangup"] * 6


def test_sipp_scenarios_are_documented() -> None:
    """docs/sip.md has a command for every scenario in load_tests/sip."""
    doc = (REPO / "docs" / "sip.md").read_text()
    for xml in sorted((REPO / "load_tests" / "sip").glob("*.xml")):
        assert f"load_tests/sip/{xml.name}" in doc, xml.name
