"""Hand-written SIP messages and a stand-in for the scenario's identities, for the SIP tests."""

from __future__ import annotations

import re

from simulator.scenario import parse_scenario
from simulator.sip import Endpoint, Peer, Send, SipIdentities, SipOptions

CALLER = Peer("127.0.0.1", 5061)
SDP = (b"v=0\r\no=user1 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 6000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n")
SCENARIO = """\
[simulation]
name = "sip-test"
seed = 1
start = "2026-11-01T00:00:00Z"
duration = "1d"
currency = "USD"

[plans]
domestic_minutes = { default = 0 }

[[tariff]]
prefix = "1"
country = "US"
zone = "A"
per_minute = "0.02"
increment = "60/60"

[[toll_free_tariff]]
prefix = "44"
per_minute = "0.05"
increment = "60/60"

[[orgs]]
id = "contoso"
toll_free_numbers = ["+18005550100"]

[orgs.credits]
initial = "0.04"

[orgs.sip]
username = "contoso-pbx"
password = "s3cret"
realm = "contoso"
trusted = ["127.0.0.1"]

[[orgs.users]]
id = "alice"
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits", "audio_conferencing"]
number = "+14155550100"

[[orgs.users]]
id = "bob"
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits", "audio_conferencing"]
number = "+14155550101"

[[orgs]]
id = "fabrikam"

[orgs.sip]
username = "fab-pbx"
password = "other"
realm = "fabrikam"
trusted = ["10.9.0.0/16"]

[[orgs.users]]
id = "carol"
country = "GB"
licenses = ["phone_system", "domestic_calling_plan"]
number = "+442071234567"
"""
CONTOSO = ("contoso-pbx", "s3cret")
FABRIKAM = ("fab-pbx", "other")
OUTSIDER = Peer("192.0.2.5", 5062)  # trusted by nobody: challenged


def scenario():
    return parse_scenario(SCENARIO)


def endpoint(**options) -> Endpoint:
    return Endpoint(SipIdentities.from_scenario(scenario(), {}), SipOptions(**options), secret=b"test-secret")


def request(method: str, *, to: str = "+12125550100", caller: str = "+14155550100", call_id: str = "c1",
            branch: str = "z9hG4bK-1", from_tag: str = "ft1", to_tag: str = "", cseq: int = 1,
            cseq_method: str = "", body: bytes = b"", extra: str = "", via_host: str = "127.0.0.1:5061",
            uri: str = "") -> bytes:
    """A request as a UAC like SIPp writes it."""
    to_param = f";tag={to_tag}" if to_tag else ""
    head = (f"{method} {uri or f'sip:{to}@127.0.0.1:5060'} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {via_host};branch={branch}\r\n"
            f"From: <sip:{caller}@127.0.0.1:5061>;tag={from_tag}\r\n"
            f"To: <sip:{to}@127.0.0.1:5060>{to_param}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {cseq_method or method}\r\n"
            f"Contact: <sip:caller@127.0.0.1:5061>\r\n"
            f"Max-Forwards: 70\r\n{extra}")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def invite(**kw) -> bytes:
    kw.setdefault("body", SDP)
    return request("INVITE", **kw)


def sent(actions) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def codes(actions) -> list[int]:
    """Status codes of the responses among `actions` (requests are 0)."""
    out = []
    for data in sent(actions):
        first = data.split(b"\r\n", 1)[0]
        out.append(int(first.split()[1]) if first.startswith(b"SIP/2.0 ") else 0)
    return out


def header(data: bytes, name: str) -> str:
    found = re.search(rb"^" + name.encode() + rb": (.*)\r$", data, re.MULTILINE | re.IGNORECASE)
    return found.group(1).decode() if found else ""


def to_tag_of(data: bytes) -> str:
    return header(data, "To").split("tag=")[-1]


# -- a server on loopback, and SIP clients over UDP and TCP --------------------------------------

def status(data: bytes) -> int:
    """The status code of a response, 0 for a request."""
    first = data.split(b"\r\n", 1)[0]
    return int(first.split()[1]) if first.startswith(b"SIP/2.0 ") else 0


class SipServer:
    def __init__(self, edge, exchange, registry, out_dir, done, result, lines):
        self.edge, self.exchange, self.registry, self.out_dir = edge, exchange, registry, out_dir
        self._done, self._result, self.lines = done, result, lines

    @property
    def port(self) -> int:
        return self.edge.port

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def stop(self):
        self.exchange.stop()
        return await self.finished()

    async def finished(self):
        await self._done.wait()
        return self._result[0]

    def cdrs(self) -> list[dict[str, str]]:
        import csv

        with open(self.out_dir / "cdrs.csv", newline="") as f:
            return list(csv.DictReader(f))


async def start_sip_server(nursery, tmp_path, scenario_text: str = SCENARIO, **sip) -> SipServer:
    import trio
    from prometheus_client import CollectorRegistry

    from simulator.server import ServerConfig, serve
    from simulator.sip import SipConfig, SipEdge

    registry = CollectorRegistry()
    parsed = parse_scenario(scenario_text)
    options = SipOptions(**sip.pop("options", {}))
    edge = SipEdge(parsed, SipConfig(port=0, options=options, **sip), {})
    lines: list[str] = []
    cfg = ServerConfig(out_dir=tmp_path / "out", port=None, edges=[edge], handle_signals=False,
                       grace_s=0.05, registry=registry, announce=lines.append)
    done, result = trio.Event(), []

    async def run(task_status) -> None:
        result.append(await serve(parsed, cfg, task_status=task_status))
        done.set()

    info = await nursery.start(run)
    return SipServer(edge, info.exchange, registry, cfg.out_dir, done, result, lines)


class UdpClient:
    """A UAC's socket: sends to the server, receives whatever comes (responses and BYEs)."""

    def __init__(self, sock, server_port: int) -> None:
        self.sock, self.server = sock, ("127.0.0.1", server_port)

    @classmethod
    async def open(cls, server_port: int) -> "UdpClient":
        import trio

        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        return cls(sock, server_port)

    async def send(self, data: bytes) -> None:
        await self.sock.sendto(data, self.server)

    async def recv(self) -> bytes:
        data, _ = await self.sock.recvfrom(65536)
        return data

    async def recv_status(self, code: int) -> bytes:
        """Skip to the next response with this status (provisional ones, resends...)."""
        while True:
            data = await self.recv()
            if status(data) == code:
                return data


class TcpClient:
    def __init__(self, stream) -> None:
        from simulator.sip import StreamFramer

        self.stream, self.framer, self.inbox = stream, StreamFramer(), []

    @classmethod
    async def open(cls, server_port: int) -> "TcpClient":
        import trio

        return cls(await trio.open_tcp_stream("127.0.0.1", server_port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def recv(self) -> bytes:
        while not self.inbox:
            data = await self.stream.receive_some(65536)
            assert data, "connection closed by the server"
            self.framer.feed(data)
            self.inbox.extend(self.framer.messages())
        return self.inbox.pop(0)

    async def recv_status(self, code: int) -> bytes:
        while True:
            data = await self.recv()
            if status(data) == code:
                return data
