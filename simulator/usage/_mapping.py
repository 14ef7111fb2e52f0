"""The export's vocabulary mapped onto callsim's: call types, capabilities (licences), users.

The tables here are the reference docs/usage-import.md repeats; `tests/simulator/usage/
test_mapping.py` pins them.

Call types (the export's `Call Type`, Graph's `callType`, any case), by the shared
vocabulary's `callsim_call_type`:

| export | callsim | why |
|---|---|---|
| user_out, user_out_conf, user_out_transfer, user_out_forwarding | domestic / international by `Domestic/International` | a user's outbound PSTN leg, rated like any outbound call |
| conf_out | conference_dial_out | the audio-conferencing bridge dialling out |
| user_in, conf_in, ucap_in on a toll-free `Number Type` | toll_free | inbound to the org's toll-free number: credits pay it |
| user_in, conf_in, ucap_in on another number type | not simulated, counted | inbound to a user or service number: not rated |
| ucap_out | not simulated, counted | an auto attendant's or call queue's outbound leg: no user to draw it from |
| anything else (emergency, Direct Routing's dr_*, ...) | not simulated, a warning with rows | not a Calling Plans call type |

Capabilities (`Capability`, Graph's `licenseCapability`) give licences by the vocabulary's
`CAPABILITY_LICENSES`; a user who placed user outbound calls and whose rows name no calling
plan (only MCOPSTNPP, say) is given `phone_system` and `domestic_calling_plan`, which Teams
requires for calling out, and the scenario says so beside the user.
"""

from __future__ import annotations

import re
from collections import Counter

from . import _vocabulary as vocabulary

DOMESTIC, INTERNATIONAL, DIAL_OUT, TOLL_FREE = "domestic", "international", "conference_dial_out", "toll_free"
#: callsim's traffic types, in the order the scenario lists them.
TRAFFIC_TYPES = (DOMESTIC, INTERNATIONAL, DIAL_OUT, TOLL_FREE)
OUTBOUND_TYPES = (DOMESTIC, INTERNATIONAL, DIAL_OUT)

SKIPPED_INBOUND = "inbound calls to a user or service number (not rated)"
SKIPPED_BOT = "ucap_out: an auto attendant's or call queue's outbound calls (no user to draw them from)"


def call_type_kind(call_type: str, number_type: str, context: str) -> tuple[str | None, str | None]:
    """One row's callsim traffic type and, for a row not simulated, why.

    (type, None): simulated; (None, reason): a known call type callsim does not rate, counted;
    (None, None): a value the vocabulary does not know (a warning with rows).  The mapping
    itself is the shared vocabulary's `callsim_call_type`.
    """
    try:
        kind = vocabulary.callsim_call_type(call_type, number_type, context)
    except vocabulary.UnknownValue:
        return None, None
    if kind is not None:
        return kind, None
    return None, SKIPPED_BOT if call_type.strip().lower() == "ucap_out" else SKIPPED_INBOUND


def unknown_value(call_type: str, number_type: str, context: str) -> str:
    """What the vocabulary does not know in a row that `call_type_kind` gives (None, None)."""
    try:
        vocabulary.callsim_call_type(call_type, number_type, context)
    except vocabulary.UnknownValue as err:
        return f"{err.column} {err.value!r}"
    return ""


def capability_licenses(capability: str) -> frozenset[str] | None:
    """The licences a Capability stands for; None for a value the vocabulary does not know."""
    try:
        return vocabulary.licenses_for(capability)
    except vocabulary.UnknownValue:
        return None


#: The licences a calling plan brings, given to a user who placed user outbound calls while
#: their rows name none (only MCOPSTNPP, say): Teams lets no one call out without them.
CALLING_PLAN = frozenset({"phone_system", "domestic_calling_plan"})
_ORDER = ("phone_system", "domestic_calling_plan", "international_calling_plan", "audio_conferencing",
          "communications_credits")


def user_licenses(capabilities: set[str], placed_user_calls: bool) -> tuple[list[str], bool]:
    """A user's licences from the capabilities their calls name, in SPEC §2's order, and
    whether a calling plan had to be assumed (`CALLING_PLAN`) for their outbound calls."""
    found: set[str] = set()
    for capability in capabilities:
        found |= capability_licenses(capability) or frozenset()
    assumed = placed_user_calls and not found & {"domestic_calling_plan", "international_calling_plan"}
    if assumed:
        found |= CALLING_PLAN
    return [name for name in _ORDER if name in found], assumed


def domestic_minutes(capabilities: set[str]) -> int | None:
    """The plan minutes a user's capabilities fix (MCOPSTN5: 120, MCOPSTN6: 240), else None."""
    fixed = [vocabulary.CAPABILITY_DOMESTIC_MINUTES[c.strip().upper()] for c in capabilities
             if c.strip().upper() in vocabulary.CAPABILITY_DOMESTIC_MINUTES]
    return max(fixed) if fixed else None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def user_ids(upns: list[str]) -> dict[str, str]:
    """UPN -> a scenario user id: the vocabulary's `user_id_from_upn` (the part before the last
    "@"), other characters than letters, digits, ".", "_" and "-" turned into "-"; a clash
    takes "-2", "-3", ... in the order of the sorted UPNs, so one export always gives one set
    of ids, and callsim's own ids (`staff-0001`) come back unchanged."""
    taken: Counter[str] = Counter()
    used: set[str] = set()
    ids: dict[str, str] = {}
    for upn in sorted(set(upns)):
        base = _UNSAFE.sub("-", vocabulary.user_id_from_upn(upn)).strip("-") or "user"
        taken[base] += 1
        candidate = base if taken[base] == 1 else f"{base}-{taken[base]}"
        while candidate in used:  # "a-2" may be a UPN's own base
            taken[base] += 1
            candidate = f"{base}-{taken[base]}"
        used.add(candidate)
        ids[upn] = candidate
    return ids


def org_id(domains: Counter[str]) -> str:
    """The org's id from the most common UPN domain: "contoso" for "@contoso.onmicrosoft.com"
    (`domains`: calls per lower-case domain)."""
    if not domains:
        return "org"
    domain = min(domains, key=lambda d: (-domains[d], d))
    return _UNSAFE.sub("-", domain.split(".")[0]).strip("-") or "org"
