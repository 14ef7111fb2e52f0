"""`callsim serve --sip` in a subprocess, and SIPp runs against it, for the SIP integration tests.

No port is chosen here: a port found free and handed over later can be taken meanwhile by any
process on the machine.  The server binds port 0 (SIP, and metrics when asked) and is read from
the lines it prints once it listens; SIPp binds its own (it tries 5060 upwards, then lets the
system pick; the tests' servers sit on system-picked ports), and is started again when two
SIPp raced for one port over TCP (see _PORT_TAKEN).  The server is stopped with SIGINT
(its Ctrl-C), after which its files are complete.  SIPp runs are bounded twice: by SIPp's own
`-timeout` and by the subprocess timeout.  What SIPp saw comes from its message trace
(`-trace_msg`: every message with its microsecond timestamp) and its `<log>` actions.
"""

from __future__ import annotations

import csv
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.scenarios import REPO

LOAD_TESTS = REPO / "load_tests" / "sip"
SCENARIO = LOAD_TESTS / "callsim.toml"
SIPP = shutil.which("sipp")
START_S = 30.0  # for the server to listen
STOP_S = 30.0  # for the server to finish its files after SIGINT
# The server's line once SIP listens: `callsim: SIP on 127.0.0.1:5060 (UDP and TCP)`.
_LISTENING = re.compile(r"SIP\b.*?\b(\d+\.\d+\.\d+\.\d+):(\d+)")
# Printed before it, with --metrics-port: `callsim: metrics at http://127.0.0.1:9464/metrics`.
_METRICS = re.compile(r"metrics at (http://\S+/metrics)")


class SipServer:
    """`callsim serve SCENARIO --sip 127.0.0.1:0` until `stop()`; `cdrs()` after it.

    `metrics`: serve /metrics too, on a port of the system's choosing (`metrics_url`).
    """

    def __init__(self, tmp: Path, *extra: str, scenario: Path = SCENARIO, metrics: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.out = tmp / f"serve-out-{time.monotonic_ns()}"
        self.metrics_url: str | None = None
        command = [sys.executable, "-m", "simulator", "serve", str(scenario), "--port", "0",
                   "--sip", "127.0.0.1:0", "--out", str(self.out), *extra]
        if metrics:
            command += ["--metrics-port", "0"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})}, cwd=tmp)
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.host, self.port = self._wait_listening()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_listening(self) -> tuple[str, int]:
        deadline = time.monotonic() + START_S
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"callsim did not say it listens for SIP within {START_S} s:\n"
                                     + "".join(self.lines)) from None
            if line is None:
                self.proc.wait()
                raise AssertionError(f"callsim exited ({self.proc.returncode}):\n" + "".join(self.lines))
            self.lines.append(line)
            url = _METRICS.search(line)
            if url:
                self.metrics_url = url[1]
            found = _LISTENING.search(line)
            if found:
                return found[1], int(found[2])

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> int:
        """SIGINT (Ctrl-C), then wait for the files; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"callsim did not stop within {STOP_S} s of SIGINT") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cdrs(self) -> list[dict[str, str]]:
        with open(self.out / "cdrs.csv", newline="") as f:
            return list(csv.DictReader(f))


@dataclass
class Message:
    """One message in SIPp's trace: when, sent or received, and its text."""

    at: float  # seconds, SIPp's clock (local time of day; only differences are meaningful)
    sent: bool
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(m[1]) if m else None

    @property
    def method(self) -> str | None:
        m = re.match(r"([A-Z]+) \S+ SIP/2\.0", self.first_line)
        return m[1] if m else None

    def header(self, name: str) -> str | None:
        m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\r?$", self.text, re.M | re.I)
        return m[1] if m else None

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")


@dataclass
class SippRun:
    returncode: int
    messages: list[Message]
    logs: list[str]
    errors: str

    def received(self, call_id: str | None = None) -> list[Message]:
        return [m for m in self.messages if not m.sent and (call_id is None or m.call_id == call_id)]

    def statuses(self) -> list[int]:
        """Status codes received, in order (provisional ones included)."""
        return [m.status for m in self.received() if m.status is not None]

    def calls(self) -> dict[str, list[Message]]:
        """Messages by Call-ID, in order."""
        by_call: dict[str, list[Message]] = {}
        for m in self.messages:
            if m.call_id:
                by_call.setdefault(m.call_id, []).append(m)
        return by_call


_BLOCK = re.compile(r"^-{20,} (\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}\.\d{6})\n(.*?)(?=^-{20,} \d{4}-|\Z)",
                    re.M | re.S)


def parse_trace(text: str) -> list[Message]:
    """SIPp's -trace_msg file: a dashed line with the instant, `... message sent|received ...`,
    an empty line, then the message."""
    found = []
    for m in _BLOCK.finditer(text):
        instant = datetime.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H:%M:%S.%f")
        head, _, body = m[3].partition("\n")
        found.append(Message(instant.timestamp(), "sent" in head, body.strip("\r\n") + "\n"))
    return found


# SIPp's words when the port it took for its own socket is taken after all: over TCP it binds
# with SO_REUSEADDR, so two SIPp starting at once can both bind the same port and the second
# then fails to listen on it.  Nothing was sent yet: starting it again is the same run.
_PORT_TAKEN = re.compile(r"Unable to (bind|listen) main socket")
SIPP_STARTS = 5  # at most, each failing only on its port


def run_sipp(tmp: Path, server: SipServer | str, scenario: str, inf: str | Path | None = None, *,
             transport: str = "u1", calls: int = 1, local_ip: str = "127.0.0.1",
             timeout_s: float = 10.0, extra: tuple[str, ...] = (), name: str = "") -> SippRun:
    """Run SIPp's `load_tests/sip/SCENARIO.xml` against `server` until `calls` calls are done.

    `inf`: an injection file (a name in load_tests/sip, or a path).  Bounded by SIPp's -timeout
    and, a few seconds later, by killing it.  Started again (up to SIPP_STARTS times in all)
    when SIPp could not get its own port before sending anything.
    """
    for start in range(SIPP_STARTS):
        run = _run_sipp_once(tmp, server, scenario, inf, transport, calls, local_ip, timeout_s, extra,
                             f"{name or scenario}-{transport}-{time.monotonic_ns()}-{start}")
        if run.returncode == 0 or run.messages or not _PORT_TAKEN.search(run.errors):
            return run
    return run


def _run_sipp_once(tmp: Path, server: SipServer | str, scenario: str, inf: str | Path | None,
                   transport: str, calls: int, local_ip: str, timeout_s: float,
                   extra: tuple[str, ...], tag: str) -> SippRun:
    assert SIPP is not None
    target = server.target if isinstance(server, SipServer) else server
    trace, logs, errors = (tmp / f"{tag}.msg", tmp / f"{tag}.log", tmp / f"{tag}.err")
    command = [SIPP, "-sf", str(LOAD_TESTS / f"{scenario}.xml"), target, "-t", transport,
               "-i", local_ip, "-m", str(calls),
               "-timeout", f"{timeout_s}s", "-timeout_error", "-nostdin",
               "-trace_msg", "-message_file", str(trace), "-trace_logs", "-log_file", str(logs),
               "-trace_err", "-error_file", str(errors), *extra]
    if inf is not None:
        path = Path(inf) if Path(inf).is_absolute() else LOAD_TESTS / inf
        command += ["-inf", str(path)]
    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=timeout_s + 10,
                              env={**os.environ, "TZ": "UTC"}, cwd=tmp)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIPp {scenario} did not end within {timeout_s + 10} s") from None
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    return SippRun(proc.returncode, parse_trace(read(trace)), read(logs).splitlines(),
                   read(errors) + proc.stderr)
