"""callsim as a SIP switch: `callsim serve SCENARIO --sip [HOST:]PORT` (docs/sip.md).

General layout, sans-IO below the line, Trio above it (h11's split):

- `_identities`: the scenario's SIP identities looked up (users by number or SIP user name,
  orgs by digest username or trusted address) and the SIP -> call mapping rules.
- `_message`: SIP messages parsed and serialised with `sipmessage`; what is malformed and why;
  responses built from requests; framing on TCP.
- `_sdp`: the answer (or offer) of a UAS that sends no media.
- `_digest`: digest authentication (nonces per realm, MD5 and SHA-256, replay).
- `_dialog`: a call's dialog record, the actions the endpoint returns, its options and tallies.
- `_endpoint`: the transactions and dialogs (`Endpoint`): bytes, outcomes and time in,
  messages and calls out.
-----
- `_edge`: the UDP and TCP sockets, the timers and the `CallSink` that feeds the exchange of
  `callsim serve`.
"""

from ._digest import DigestAuth, authorization
from ._edge import DEFAULT_SIP_PORT, SipConfig, SipEdge, parse_listen
from ._endpoint import Endpoint, Hangup, Peer, Send, Setup, SipOptions, SipStats
from ._identities import (
    AUTHENTICATE, CONFERENCE_HEADER, Credentials, SipCall, SipConflict, SipIdentities, SipRefusal,
    parse_user_number,
)
from ._message import MALFORMED_KINDS, Malformed, StreamFramer

__all__ = [
    "AUTHENTICATE", "CONFERENCE_HEADER", "Credentials", "DEFAULT_SIP_PORT", "DigestAuth", "Endpoint", "Hangup",
    "MALFORMED_KINDS", "Malformed", "Peer", "Send", "Setup", "SipCall", "SipConflict",
    "SipConfig", "SipEdge", "SipIdentities", "SipOptions", "SipRefusal", "SipStats", "StreamFramer",
    "authorization", "parse_listen", "parse_user_number",
]
