"""SIP in front of the exchange: `callsim serve --sip` (docs/sip.md).

General layout:

- `_identities`: the scenario's SIP identities looked up (users by number or SIP user name,
  orgs by digest username or trusted address) and the SIP -> call mapping rules.
"""

from ._identities import (
    AUTHENTICATE, CONFERENCE_HEADER, Credentials, SipCall, SipConflict, SipIdentities, SipRefusal,
    parse_user_number,
)

__all__ = [
    "AUTHENTICATE", "CONFERENCE_HEADER", "Credentials", "SipCall", "SipConflict", "SipIdentities",
    "SipRefusal", "parse_user_number",
]
