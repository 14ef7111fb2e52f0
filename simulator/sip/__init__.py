"""callsim as a SIP switch: `callsim serve SCENARIO --sip [HOST:]PORT` (docs/sip.md).

General layout, sans-IO below the line, Trio above it (h11's split):

- `_message`: SIP messages parsed and serialised with `sipmessage`; what is malformed and why;
  responses built from requests; framing on TCP.
- `_sdp`: the answer (or offer) of a UAS that sends no media.
- `_digest`: per-org digest authentication (nonces, MD5 and SHA-256, replay).
- `_access`: who may place an org's calls: its credentials or its trusted addresses.
- `_route`: from an INVITE to a call of the rating core (caller, number dialled, kind, org).
- `_endpoint`: the transactions and dialogs (`Endpoint`): bytes, outcomes and time in,
  messages and calls out.
-----
- `_edge`: the UDP and TCP sockets, the timers and the `CallSink` that feeds the exchange of
  `callsim serve`.
"""

from ._access import OrgAccess, networks
from ._digest import Credentials, DigestAuth, authorization
from ._endpoint import Endpoint, Hangup, Peer, Send, Setup, SipOptions, SipStats
from ._message import MALFORMED_KINDS, Malformed, StreamFramer
from ._route import CONFERENCE_HEADER, CallRoute, Identities, number_of

__all__ = [
    "CONFERENCE_HEADER", "CallRoute", "Credentials", "DigestAuth", "Endpoint", "Hangup", "Identities",
    "MALFORMED_KINDS", "Malformed", "OrgAccess", "Peer", "Send", "Setup", "SipOptions", "SipStats",
    "StreamFramer", "authorization", "networks", "number_of",
]
