"""What the SIP endpoint works with: a call's dialog record, the actions it returns, its options.

Values only: every rule that changes a `Dialog` lives in `_endpoint` (h11's Rule 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from . import _message as msg
from ._identities import SipCall

# -- RFC 3261 §17.1.1.1 timer values, seconds --------------------------------------------------
T1, T2 = 0.5, 4.0

# dialog states (the transitions: `_endpoint`'s docstring)
RINGING, SUBMITTED, ANSWERED, CONFIRMED, HUNG_UP, ENDING, REFUSED = range(7)


class Peer(NamedTuple):
    """Where a message came from and where its answers go: `conn` 0 for UDP, else a TCP connection."""

    host: str
    port: int
    conn: int = 0

    @property
    def reliable(self) -> bool:
        return self.conn != 0


class Send(NamedTuple):
    peer: Peer
    data: bytes


class Setup(NamedTuple):
    """A call for the rating core (`Exchange.submit_setup`); report its call id with `bound`."""

    ref: int
    call: SipCall
    at: float


class Hangup(NamedTuple):
    call_id: int
    at: float  # the instant the call ends (billed up to it)


Action = Send | Setup | Hangup


@dataclass
class SipOptions:
    """What the endpoint needs to know about itself and its limits."""

    host: str = "127.0.0.1"  # advertised in Contact, Via and SDP
    port: int = 5060
    ring_s: float = 0.0  # time between 180 Ringing and the answer; X-Callsim-Ring (ms) overrides
    max_dialogs: int = 100_000  # dialogs in progress; INVITEs past it get 503
    nonce_ttl_s: float = 60.0
    algorithms: tuple[str, ...] = ("MD5", "SHA-256")  # offer order: SIPp 3.6 takes the first, MD5 only
    t1: float = T1  # RFC 3261 §17.1.1.1, seconds
    t2: float = T2


class SipStats:
    """Tallies the metrics read at scrape time (plain dicts: no Prometheus call on the hot path)."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.responses: dict[int, int] = {}
        self.retransmissions: dict[str, int] = {"response_sent": 0, "bye_sent": 0, "request_absorbed": 0}
        self.malformed: dict[str, int] = dict.fromkeys(msg.MALFORMED_KINDS, 0)
        self.malformed_total = 0  # the sum of `malformed` (the UDP reader mutes a source by it)
        self.auth_failures: dict[str, int] = {}
        self.timeouts: dict[str, int] = {"no_ack": 0, "bye_unanswered": 0}
        self.dropped: dict[str, int] = {"stray_response": 0}

    def count(self, table: dict, key) -> None:
        table[key] = table.get(key, 0) + 1


class Dialog:
    """One initial INVITE: its server transaction and the dialog it makes."""

    __slots__ = ("ref", "state", "peer", "call_id", "sip_call_id", "remote_tag", "local_tag", "tx",
                 "invite", "last", "interval", "received", "sdp", "remote_target", "routes",
                 "remote_from", "local_to", "bye", "bye_tx", "bye_interval", "rated", "cancelled", "acked",
                 "call")

    def __init__(self, ref: int, inc: msg.Incoming, peer: Peer, local_tag: str, now: float) -> None:
        self.ref = ref
        self.state = RINGING
        self.peer = peer
        self.call_id = 0  # the rating core's, once bound
        self.sip_call_id = inc.call_id
        self.remote_tag = inc.from_tag
        self.local_tag = local_tag
        self.tx = (inc.branch, inc.sent_by)
        self.invite: msg.Incoming | None = inc  # kept until the final response is sent
        self.last = b""  # the last response to the INVITE, resent for its retransmissions
        self.interval = 0.0  # the next resend's wait (doubles to T2)
        self.received = now
        self.sdp = b""
        self.remote_target = ""  # the caller's Contact URI: our BYE's Request-URI
        self.routes: list[str] = []  # Record-Route, for our BYE's Route headers
        self.remote_from = ""  # their From: our BYE's To
        self.local_to = ""  # their To with our tag: our BYE's From
        self.bye = b""
        self.bye_tx = ""
        self.bye_interval = 0.0
        self.rated = False  # a `Setup` went to the rating core
        self.cancelled = False  # CANCEL (or BYE) came before the answer
        self.acked = False  # the ACK of a refusal came
        self.call: SipCall | None = None  # the call to place once ringing ends
