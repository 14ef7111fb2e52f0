"""Locust load test for `callsim serve`: simulated phone users placing calls over the msgpack protocol.

Each Locust user is one TCP connection logged in for one org.  It places a
call, holds it for an exponentially distributed time (or until the server cuts
it), hangs up, thinks, and calls again.  Every step is reported to Locust as a
request, so the web UI and `--csv` stats show:

  setup  <call type>      answer latency (domestic, international, conference_dial_out, toll_free); a `rejected` reply is a failure named by its end_reason
  hangup <call type>      from the hangup to the `ended` CDR
  cut    <end_reason>     a call the server disconnected (balance exhausted, server stopping);
                          recorded as a failure, response time = how long the call lasted
  hello                   the login

Configuration (environment variables; docs/server.md has full commands):
  --host                  tcp://127.0.0.1:7060 (or host:port); CALLSIM_HOST if --host is absent
  CALLSIM_ORG             org to log in as (default: demo, from scenarios/server_demo.toml)
  CALLSIM_TOKEN           its token (default: $CALLSIM_TOKEN_<ORG>, else the demo scenario's)
  CALLSIM_USERS           user ids to call from: "agent-0001..agent-0200" or "alice,bob"
  CALLSIM_HOLDING_SCALE   multiply every holding time (e.g. 0.01 for a quick smoke run)
  CALLSIM_TIMEOUT         seconds to wait for an answer (default: 10)
"""

from __future__ import annotations

import os
import random
import re
import socket
import struct
import time
from typing import Any

import gevent
import msgpack
from gevent.event import AsyncResult
from locust import User, between, task
from locust.exception import StopUser

HEADER = struct.Struct(">I")
DEMO_TOKENS = {"demo": "demo-token", "bench": "bench-token", "rival": "rival-token"}


def _token(org: str) -> str:
    env = "CALLSIM_TOKEN_" + re.sub(r"[^A-Z0-9]", "_", org.upper())
    return os.environ.get("CALLSIM_TOKEN") or os.environ.get(env) or DEMO_TOKENS.get(org, "")


def _users(spec: str) -> list[str]:
    """ "agent-0001..agent-0200" -> the 200 ids; "a,b" -> ["a", "b"]."""
    m = re.fullmatch(r"(.*?)(\d+)\.\.\1(\d+)", spec)
    if m:
        prefix, lo, hi = m.group(1), m.group(2), m.group(3)
        return [f"{prefix}{i:0{len(lo)}d}" for i in range(int(lo), int(hi) + 1)]
    return [u for u in spec.split(",") if u]


def _address(host: str | None) -> tuple[str, int]:
    text = (host or os.environ.get("CALLSIM_HOST") or "127.0.0.1:7060").split("://")[-1].rstrip("/")
    name, _, port = text.rpartition(":")
    return (name or text).strip("[]"), int(port) if port.isdigit() else 7060


class Rejected(Exception):
    """The server answered `rejected` (the end_reason names the failure in Locust's stats)."""


class ServerError(Exception):
    """The server answered `error` (the code names the failure)."""


class ConnectionLost(Exception):
    pass


class CallsimConnection:
    """One msgpack-over-TCP connection (gevent sockets): requests wait on their ref's reply.

    A reader greenlet routes each incoming message by `ref`: the first reply
    to a setup (`answered` / `rejected` / `error`) resolves `answers[ref]`, the
    call's end (`ended` / `disconnected`) resolves `ends[ref]`.
    """

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.answers: dict[Any, AsyncResult] = {}
        self.ends: dict[Any, AsyncResult] = {}
        self.control = AsyncResult()  # welcome / pong / errors without a ref
        self.bytes_in = 0
        self.closed = False
        self._reader = gevent.spawn(self._read_loop)

    def send(self, *messages: dict[str, Any]) -> int:
        payload = msgpack.packb(messages[0] if len(messages) == 1 else list(messages))
        self.sock.sendall(HEADER.pack(len(payload)) + payload)
        return len(payload) + 4

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        finally:
            self._reader.kill(block=False)

    def _read_loop(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.bytes_in += len(data)
                buf += data
                while len(buf) >= 4:
                    (n,) = HEADER.unpack_from(buf)
                    if len(buf) < 4 + n:
                        break
                    value = msgpack.unpackb(buf[4 : 4 + n], raw=False)
                    buf = buf[4 + n :]
                    for msg in value if isinstance(value, list) else [value]:
                        self._route(msg)
        except OSError:
            pass
        lost = ConnectionLost("connection closed by the server")
        for waiter in [*self.answers.values(), *self.ends.values(), self.control]:
            if not waiter.ready():
                waiter.set_exception(lost)

    def _route(self, msg: dict[str, Any]) -> None:
        op, ref = msg.get("op"), msg.get("ref")
        if op in ("answered", "rejected") or (op == "error" and ref in self.answers):
            waiter = self.answers.pop(ref, None)
            if waiter is not None:
                waiter.set(msg)
        elif op in ("ended", "disconnected"):
            waiter = self.ends.get(ref)
            if waiter is not None:
                waiter.set(msg)
        elif op == "error" and ref in self.ends:
            self.ends[ref].set(msg)
        else:
            if self.control.ready():
                self.control = AsyncResult()
            self.control.set(msg)


class CallsimUser(User):
    """A phone user of one org; subclasses say what kind of call they place and how long they hold."""

    abstract = True
    wait_time = between(1, 5)  # think time between calls
    label = "call"  # the request name in Locust's stats
    call_type = "outbound"
    holding_mean_s = 180.0
    destinations: tuple[str, ...] = ("+12125550100",)
    callers: tuple[str, ...] = ()  # `from` numbers; required for toll_free

    def on_start(self) -> None:
        self.org = os.environ.get("CALLSIM_ORG", "demo")
        self.users = _users(os.environ.get("CALLSIM_USERS", "agent-0001..agent-0200"))
        self.scale = float(os.environ.get("CALLSIM_HOLDING_SCALE", "1"))
        self.timeout = float(os.environ.get("CALLSIM_TIMEOUT", "10"))
        self.next_ref = 0
        self.conn: CallsimConnection | None = None
        started = time.perf_counter()
        try:
            self.conn = CallsimConnection(*_address(self.host))
            sent = self.conn.send({"op": "hello", "org": self.org, "token": _token(self.org)})
            reply = self.conn.control.get(timeout=self.timeout)
            exc = None if reply.get("op") == "welcome" else ServerError(reply.get("code", reply.get("op")))
        except Exception as err:  # noqa: BLE001 - every failure is reported to Locust
            sent, exc = 0, err
        self._fire("hello", "hello", started, sent, exc)
        if exc is not None:
            raise StopUser()  # nothing to do without a login; Locust counted the failure above

    def on_stop(self) -> None:
        if self.conn is not None:
            self.conn.close()  # the server hangs up any call still in progress

    @task
    def place_call(self) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        self.next_ref += 1
        ref = self.next_ref
        setup: dict[str, Any] = {"op": "setup", "ref": ref, "type": self.call_type,
                                 "to": random.choice(self.destinations)}
        if self.call_type != "toll_free":
            setup["user"] = random.choice(self.users)
        if self.callers:
            setup["from"] = random.choice(self.callers)
        conn.answers[ref] = answer = AsyncResult()
        conn.ends[ref] = end = AsyncResult()
        started = time.perf_counter()
        try:
            sent = conn.send(setup)
            reply = answer.get(timeout=self.timeout)
        except Exception as err:  # noqa: BLE001
            conn.answers.pop(ref, None)
            conn.ends.pop(ref, None)
            self._fire("setup", self.label, started, 0, err)
            return
        op = reply.get("op")
        if op != "answered":
            conn.ends.pop(ref, None)
            reason = reply.get("end_reason") if op == "rejected" else reply.get("code")
            error = Rejected(reason) if op == "rejected" else ServerError(reason)
            self._fire("setup", self.label, started, sent, error)
            return
        self._fire("setup", self.label, started, sent, None)
        self._hold(conn, ref, end)

    def _hold(self, conn: CallsimConnection, ref: int, end: AsyncResult) -> None:
        """Hold for an exponential time, unless the server cuts the call first; then hang up."""
        answered = time.perf_counter()
        holding = random.expovariate(1.0 / self.holding_mean_s) * self.scale
        try:
            cut = end.get(timeout=holding)
        except gevent.Timeout:
            cut = None
        except Exception:  # noqa: BLE001 - the connection is gone; on_stop cleans up
            conn.ends.pop(ref, None)
            return
        if cut is not None:  # the server ended the call while we held it
            conn.ends.pop(ref, None)
            self._fire("cut", cut.get("end_reason", "?"), answered, 0, Rejected(cut.get("end_reason")))
            return
        started = time.perf_counter()
        try:
            sent = conn.send({"op": "hangup", "ref": ref})
            ended = end.get(timeout=self.timeout)
            exc = None if ended.get("op") == "ended" else ServerError(ended.get("code") or ended.get("end_reason"))
        except Exception as err:  # noqa: BLE001
            sent, exc = 0, err
        conn.ends.pop(ref, None)
        self._fire("hangup", self.label, started, sent, exc)

    def _fire(self, kind: str, name: str, started: float, length: int, exc: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=length, exception=exc, context={"org": getattr(self, "org", "")})


class DomesticCaller(CallsimUser):
    """Calls within the US: most of an office's traffic, a few minutes each."""

    label = "domestic"
    weight = 6
    call_type = "outbound"
    holding_mean_s = 180.0
    destinations = ("+12125550100", "+14155550123", "+13125550199", "+16175550142")


class InternationalCaller(CallsimUser):
    """Calls to the UK and Germany: longer, and rated at other tariffs and increments."""

    label = "international"
    weight = 2
    call_type = "outbound"
    holding_mean_s = 300.0
    destinations = ("+442071234567", "+441612345678", "+4930123456")


class ConferenceDialOut(CallsimUser):
    """A meeting dials a participant out to the PSTN: long calls, paid from the dial-out pool."""

    label = "conference_dial_out"
    weight = 1
    call_type = "conference_dial_out"
    holding_mean_s = 1500.0
    destinations = ("+12125550177", "+13035550155")


class TollFreeCaller(CallsimUser):
    """Customers calling the org's toll-free numbers: rated by the caller's prefix, paid from credits."""

    label = "toll_free"
    weight = 2
    call_type = "toll_free"
    holding_mean_s = 240.0
    destinations = ("+18005550100", "+18005550199")
    callers = ("+442071234567", "+12125550123", "+13125550111", "+447700900123")
