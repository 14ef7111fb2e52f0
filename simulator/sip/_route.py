"""From an INVITE to a call of the rating core: who calls, whom, of which kind, for which org.

The mapping (docs/sip.md, "Who is calling"), decided in this order:

1. The Request-URI's user part is the dialled number: E.164 digits, `+`
   optional (`sip:+12125550100@host`, `sip:12125550100@host`, `tel:+1...`);
   anything else is refused with 404 (no CDR: the call never reached the
   rating core, as an unknown user on the msgpack protocol).
2. A dialled number that is one of an org's toll-free numbers makes a
   toll-free call of that org, whoever calls: the From (or
   P-Asserted-Identity) user part, if a number, is the caller's number the
   call is rated by (none: the rating core's `unroutable`).
3. An `X-Callsim-Conference` header makes a conference dial-out; its value
   names the organising user (id, number or SIP user name) in the org of the
   caller, or, when the caller is not a user, in any org.
4. Otherwise the P-Asserted-Identity's user part, else the From's, picks the
   calling user (number or SIP user name): an outbound call, domestic or
   international as the rating core decides.  No such user: 403.

The org a call is placed for is the one whose credentials (or trusted
addresses) the request must then satisfy: the caller's org, or the org
that owns the toll-free number.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Protocol

from sipmessage import URI, Address, Request

from rating_core import CallKind

CONFERENCE_HEADER = "X-Callsim-Conference"
_E164 = re.compile(r"\+?([1-9][0-9]{1,14})")
_VISUAL = re.compile(r"[-.()]")
_OUTBOUND, _DIAL_OUT, _TOLL_FREE = int(CallKind.OUTBOUND), int(CallKind.CONFERENCE_DIAL_OUT), int(CallKind.TOLL_FREE)


class Identities(Protocol):
    """The scenario's SIP identities, as pure lookups (built once at server start)."""

    def caller(self, user_part: str) -> tuple[int, int] | None:
        """(org index, global user index) of a user by number or SIP user name."""

    def user_in_org(self, org: int, text: str) -> int | None:
        """A user of one org by id, number or SIP user name."""

    def toll_free_org(self, digits: int) -> int | None:
        """The org owning a toll-free number (digits without '+')."""


class CallRoute(NamedTuple):
    """A call as the exchange takes it (`Exchange.submit_setup`'s arguments)."""

    org: int
    user: int  # -1 for toll-free
    kind: int  # CallKind
    to_number: int
    from_number: int  # 0: none


class Refusal(NamedTuple):
    code: int
    reason: str


def number_of(user_part: str | None) -> int | None:
    """E.164 digits of a URI user part ('+' optional, visual separators ignored), or None."""
    if not user_part:
        return None
    found = _E164.fullmatch(_VISUAL.sub("", user_part))
    return int(found.group(1)) if found else None


def caller_part(request: Request) -> str:
    """The user part of P-Asserted-Identity if present and readable, else of From ('' if none)."""
    for name in ("P-Asserted-Identity", "From"):
        value = request.headers.get(name)
        if value is None:
            continue
        try:
            return Address.parse(value.split(",")[0]).uri.user or ""
        except ValueError:
            continue
    return ""


def route(request: Request, identities: Identities) -> CallRoute | Refusal:
    """The call an INVITE places (steps 1-4 of the module docstring), or why it cannot be placed."""
    uri: URI = request.uri
    to_number = number_of(uri.user)
    if to_number is None:
        return Refusal(404, f"the Request-URI's user part {(uri.user or '')[:40]!r} is not an E.164 number")
    caller = caller_part(request)
    toll_free = identities.toll_free_org(to_number)
    if toll_free is not None:
        return CallRoute(toll_free, -1, _TOLL_FREE, to_number, number_of(caller) or 0)
    who = identities.caller(caller) if caller else None
    organiser = request.headers.get(CONFERENCE_HEADER)
    if organiser is not None:
        organiser = organiser.strip()
        if who is not None:
            user = identities.user_in_org(who[0], organiser)
            if user is None:
                return Refusal(403, f"{CONFERENCE_HEADER}: no user {organiser[:40]!r} in the caller's org")
            return CallRoute(who[0], user, _DIAL_OUT, to_number, number_of(caller) or 0)
        found = identities.caller(organiser)
        if found is None:
            return Refusal(403, f"{CONFERENCE_HEADER}: no user {organiser[:40]!r}")
        return CallRoute(found[0], found[1], _DIAL_OUT, to_number, number_of(caller) or 0)
    if who is None:
        return Refusal(403, f"unknown caller {caller[:40]!r}")
    return CallRoute(who[0], who[1], _OUTBOUND, to_number, number_of(caller) or 0)
