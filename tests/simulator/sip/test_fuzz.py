"""Any bytes from the network: never an exception out of the endpoint, nor the stream framer."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simulator.sip import Malformed, StreamFramer

from .support import CALLER, endpoint, header, invite, request

_PIECES = [invite(), request("BYE", to_tag="t"), request("CANCEL"), request("OPTIONS"), request("ACK", to_tag="x"),
           b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n"]


@st.composite
def _mangled(draw):
    """A real message with bytes flipped, cut, or spliced: closer to the parser's edges than noise."""
    data = bytearray(draw(st.sampled_from(_PIECES)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 2))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:
            data[at] = draw(st.integers(0, 255))
        elif op == 1:
            del data[at:at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(st.sampled_from([b"\r\n", b":", b";tag=", b",", b" ", b"\r\n\r\n", b"<", b"\"", b"%"]))
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_mangled(), st.binary(max_size=300)), max_size=6))
@example([invite().replace(b"Contact:", b"\x00ontact:").replace(b">;tag=", b">,;tag=", 1)])  # no Contact, bad From
def test_endpoint_survives_any_datagrams(datagrams):
    ep = endpoint()
    for i, data in enumerate(datagrams):
        ep.receive(data, CALLER, i * 0.1)
        ep.timers_due(i * 0.1 + 40)
    assert ep.stats.dropped.get("server_error", 0) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_mangled(), st.binary(max_size=200)), max_size=6))
def test_stream_framer_cuts_or_refuses_but_never_crashes(chunks):
    framer = StreamFramer()
    try:
        for chunk in chunks:
            framer.feed(chunk)
            framer.messages()
    except Malformed:
        pass


_OPS = st.lists(st.tuples(st.sampled_from(["invite", "ack", "bye", "cancel", "options", "answered", "rejected",
                                           "ended", "cut", "bye_ok", "timers", "lost"]),
                          st.integers(0, 2), st.booleans()), max_size=30)


@settings(max_examples=300, deadline=None)
@given(_OPS)
@example([("invite", 0, False), ("answered", 0, False), ("ack", 0, False), ("cut", 0, False),
          ("bye_ok", 0, False), ("timers", 0, False)])
@example([("invite", 1, True), ("cancel", 1, True), ("answered", 0, False), ("lost", 0, False),
          ("timers", 0, False)])
def test_any_order_of_requests_outcomes_and_timers_keeps_one_setup_per_invite(ops):
    """The state machine in any order: no internal error, one Setup per INVITE transaction, and
    every dialog forgotten once its call and timers are over."""
    from simulator.sip import Peer, Send, Setup

    ep = endpoint(ring_s=0.0)
    tcp = Peer("127.0.0.1", 40000, conn=1)
    setups: dict[int, int] = {}  # ref -> call id
    tags: dict[int, str] = {}
    byes: list[bytes] = []
    now = 0.0
    for op, k, over_tcp in ops:
        now += 0.3
        peer = tcp if over_tcp else CALLER
        kw = {"call_id": f"c{k}", "branch": f"z9hG4bK-{k}"}
        actions = []
        if op == "invite":
            actions = ep.receive(invite(**kw), peer, now)
        elif op in ("ack", "bye"):
            actions = ep.receive(request(op.upper(), to_tag=tags.get(k, "none"), call_id=f"c{k}",
                                         branch=f"z9hG4bK-{op}{k}", cseq_method="INVITE" if op == "ack" else ""),
                                 peer, now)
        elif op == "cancel":
            actions = ep.receive(request("CANCEL", **kw), peer, now)
        elif op == "options":
            actions = ep.receive(request("OPTIONS", **kw), peer, now)
        elif op in ("answered", "rejected", "ended", "cut") and setups:
            ref = list(setups)[k % len(setups)]
            actions = {"answered": lambda: ep.answered(ref, now),
                       "rejected": lambda: ep.rejected(ref, "unroutable", now),
                       "ended": lambda: ep.ended(ref, "hangup", now),
                       "cut": lambda: ep.ended(ref, "dropped_balance_exhausted", now)}[op]()
        elif op == "bye_ok" and byes:
            bye = byes.pop(0).decode()
            lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in bye.split("\r\n")[1:] if ": " in line}
            answer = (f"SIP/2.0 200 OK\r\nVia: {lines['Via']}\r\nFrom: {lines['From']}\r\nTo: {lines['To']}\r\n"
                      f"Call-ID: {lines['Call-ID']}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
            actions = ep.receive(answer.encode(), CALLER, now)
        elif op == "timers":
            now += 40
            actions = ep.timers_due(now)
        elif op == "lost":
            actions = ep.connection_lost(1, now)
        for action in actions:
            if isinstance(action, Setup):
                assert action.ref not in setups
                setups[action.ref] = action.ref
                ep.bound(action.ref, action.ref)
            elif isinstance(action, Send) and action.data.startswith(b"SIP/2.0 "):
                to = header(action.data, "To")
                if ";tag=" in to:
                    tags[int(header(action.data, "Call-ID")[1:])] = to.split(";tag=")[1]
            elif isinstance(action, Send) and action.data.startswith(b"BYE "):
                byes.append(action.data)
    assert ep.stats.dropped.get("server_error", 0) == 0
    # an INVITE transaction lives 64·T1 (32 s); a "timers" step jumps 40 s, so after one the same
    # INVITE is a new transaction
    epoch, transactions = 0, set()
    for op, k, _ in ops:
        epoch += op == "timers"
        if op == "invite":
            transactions.add((k, epoch))
    assert len(setups) <= len(transactions)
