"""Hand-written SIP messages and a stand-in for the scenario's identities, for the SIP tests."""

from __future__ import annotations

import re

from simulator.sip import Credentials, Endpoint, OrgAccess, Peer, Send, SipOptions, networks

CALLER = Peer("127.0.0.1", 5061)
SDP = (b"v=0\r\no=user1 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 6000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n")
CONTOSO = Credentials("contoso", "contoso-pbx", "s3cret")
FABRIKAM = Credentials("fabrikam", "fab-pbx", "other")


class Identities:
    """Two orgs: contoso (0) with alice +14155550100 (user 0) and bob (user 1), toll-free
    +18005550100; fabrikam (1) with carol +442071234567 (user 2)."""

    users = {"+14155550100": (0, 0), "alice": (0, 0), "bob": (0, 1), "+442071234567": (1, 2), "carol": (1, 2)}

    def caller(self, user_part: str):
        return self.users.get(user_part) or self.users.get("+" + user_part)

    def user_in_org(self, org: int, text: str):
        found = self.caller(text)
        return found[1] if found and found[0] == org else None

    def toll_free_org(self, digits: int):
        return 0 if digits == 18005550100 else None


# contoso trusts loopback (most tests), both orgs challenge anyone else (OUTSIDER)
ACCESS = [OrgAccess("contoso", CONTOSO, networks(["127.0.0.1"])),
          OrgAccess("fabrikam", FABRIKAM, networks(["10.9.0.0/16"]))]
OUTSIDER = Peer("192.0.2.5", 5062)


def endpoint(**options) -> Endpoint:
    return Endpoint(Identities(), ACCESS, SipOptions(**options), secret=b"test-secret")


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
