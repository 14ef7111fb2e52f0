"""Any bytes from the network: never an exception out of the endpoint, nor the stream framer."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.sip import Malformed, StreamFramer

from .support import CALLER, endpoint, invite, request

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
