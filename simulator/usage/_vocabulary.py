"""The Teams admin center PSTN usage export's vocabulary, and how it maps onto callsim's.

One home for these rules: `callsim run --cdr-format teams` writes with them and `callsim
import` reads with them, so a file written by the one reads back in the other.

What the export is (Microsoft's "Microsoft Teams PSTN usage report" page, section
"Exporting PSTN usage report", and Graph's `pstnCallLogRow`, the same rows as JSON):

- **Export to Excel** gives `Calls.Export.{identifier}.zip` holding `PSTN.calls.{UTC date}.csv`
  (Calling Plans; a Direct Routing file beside it when the tenant has both, not read here) and
  `parameters.json` (the time range and capabilities chosen).
- The CSV is RFC 4180, "opened in Excel ... without requiring any transformations"; its first
  row holds the column names, `EXPORT_COLUMNS`, in that order, one row per call after it.
- Column types (the page gives their SQL Server types): GUIDs for `UsageId` and
  `AAD ObjectId`; `Call ID` a string "not guaranteed to be unique"; `User Location` ISO 3166
  alpha-2; `Caller ID` and `Destination Number` E.164; `Start Time` / `End Time`
  `datetimeoffset`, UTC, ISO 8601; `Duration Seconds` an integer (connected time); `Connection
  Fee` and `Charge` `numeric(16, 2)`; `Currency` ISO 4217; `Capability` the licence the call
  used.  User columns are empty for bot call types (`ucap_in`, `ucap_out`).

What callsim writes where the page leaves a choice is marked *(callsim)* below and in
docs/outputs.md; a reader must accept more than a writer writes (BOM or none, CRLF or LF,
numbers with or without "+", any ISO 8601 offset, any case of the enumerated values).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone

import pycountry

__all__ = [
    "ARCHIVE_GLOB", "ARCHIVE_PARAMETERS", "CALL_TYPE_TO_TEAMS", "CAPABILITY_DOMESTIC_MINUTES",
    "CAPABILITY_LICENSES", "CHARGE_DECIMALS", "CREDITS_PAID_ALL", "DOMESTIC", "EXPORTED_END_REASONS", "EXPORT_COLUMNS",
    "EXPORT_ENCODING", "EXPORT_FILE_GLOB", "EXPORT_HEADER", "EXPORT_LINE_END", "GRAPH_FIELDS", "INTERNATIONAL",
    "NOT_RATED_CALL_TYPES", "NUMBER_TYPE_SERVICE", "NUMBER_TYPE_TOLL_FREE", "NUMBER_TYPE_USER",
    "OUTBOUND_CALL_TYPES", "TEAMS_CALL_TYPES", "TIME_FORMAT", "UnknownValue", "callsim_call_type",
    "capability", "charge_text", "country_code", "default_domain", "destination_dialed",
    "domestic_international", "export_file_name", "format_time", "licenses_for", "number_digits",
    "number_kind", "number_type", "parse_time", "upn", "user_id_from_upn",
]


class UnknownValue(ValueError):
    """A value the export's vocabulary does not have (an unknown Call Type or Capability, ...).

    The message names the column and the value; the importer adds the row number.
    """

    def __init__(self, column: str, value: str, known: Iterable[str]) -> None:
        self.column, self.value = column, value
        super().__init__(f"{column}: unknown value {value!r} (known: {', '.join(sorted(known))})")


# --- the file -----------------------------------------------------------------------------

#: The export's columns, in the file's order (the page's "Fields in the export", 0 to 19).
EXPORT_COLUMNS: tuple[str, ...] = (
    "UsageId", "Call ID", "Conference ID", "User Location", "AAD ObjectId", "UPN", "User Display Name",
    "Caller ID", "Call Type", "Number Type", "Domestic/International", "Destination Dialed",
    "Destination Number", "Start Time", "End Time", "Duration Seconds", "Connection Fee", "Charge",
    "Currency", "Capability",
)

#: *(callsim)* UTF-8 with a byte order mark: the page promises the file opens in Excel without
#: transformations, and Excel reads UTF-8 (display names beyond ASCII) only with the mark.
#: Readers take the file with or without it.
EXPORT_ENCODING = "utf-8-sig"
#: *(callsim)* CRLF, RFC 4180's line break; readers take LF too.
EXPORT_LINE_END = "\r\n"
#: The header line as written, mark included: no name needs quoting.
EXPORT_HEADER: bytes = ",".join(EXPORT_COLUMNS).encode(EXPORT_ENCODING) + EXPORT_LINE_END.encode()

EXPORT_FILE_GLOB = "PSTN.calls.*.csv"
ARCHIVE_GLOB = "Calls.Export.*.zip"
ARCHIVE_PARAMETERS = "parameters.json"

_UNSAFE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def export_file_name(label: str) -> str:
    """`PSTN.calls.{label}.csv`; the admin center puts the export's UTC date as the label,
    callsim the scenario's name (characters no file name may hold become "_")."""
    return f"PSTN.calls.{_UNSAFE_NAME.sub('_', label) or 'run'}.csv"


#: Graph's `getPstnCalls` field -> the export column it fills (`tenantCountryCode` has none).
GRAPH_FIELDS: dict[str, str] = {
    "id": "UsageId", "callId": "Call ID", "conferenceId": "Conference ID", "usageCountryCode": "User Location",
    "userId": "AAD ObjectId", "userPrincipalName": "UPN", "userDisplayName": "User Display Name",
    "callerNumber": "Caller ID", "callType": "Call Type", "inventoryType": "Number Type",
    "destinationContext": "Domestic/International", "destinationName": "Destination Dialed",
    "calleeNumber": "Destination Number", "startDateTime": "Start Time", "endDateTime": "End Time",
    "duration": "Duration Seconds", "connectionCharge": "Connection Fee", "charge": "Charge",
    "currency": "Currency", "licenseCapability": "Capability",
}


# --- Call Type ----------------------------------------------------------------------------

#: The Calling Plans call types the page lists (Direct Routing's `dr_*` are another file).
TEAMS_CALL_TYPES = frozenset({
    "user_in", "user_out", "user_out_conf", "user_out_transfer", "user_out_forwarding",
    "conf_in", "conf_out", "ucap_in", "ucap_out",
})
#: A user's outbound PSTN legs: placed, added to a call, transferred or forwarded to a number.
#: callsim rates each as an outbound call of that user (domestic or international).
OUTBOUND_CALL_TYPES = frozenset({"user_out", "user_out_conf", "user_out_transfer", "user_out_forwarding"})
#: Calls callsim does not rate, whose rows `callsim_call_type` gives None: inbound to a user or
#: service number (not toll-free: free of charge in Teams, outside callsim's model), and a bot's
#: outbound call (`ucap_out`: no user to hold the licences callsim admits a call with).
NOT_RATED_CALL_TYPES = frozenset({"user_in", "conf_in", "ucap_in", "ucap_out"})

DOMESTIC = "Domestic"
INTERNATIONAL = "International"

#: callsim's call_type -> the Call Type written.  A toll-free call is `user_in` on a toll-free
#: Number Type (callsim does not model who answers it: its user columns stay empty).
CALL_TYPE_TO_TEAMS: dict[str, str] = {
    "domestic": "user_out", "international": "user_out", "conference_dial_out": "conf_out", "toll_free": "user_in",
}

#: The end reasons of calls the export lists: it holds connected calls only (its Duration is
#: "how long the call was connected"; a call refused before it connects is billed nothing
#: and leaves no usage row), so blocked, unlicensed and unroutable calls are not written.
EXPORTED_END_REASONS = ("hangup", "dropped_balance_exhausted", "simulation_end")


def callsim_call_type(call_type: str, number_type: str, domestic_international: str) -> str | None:
    """callsim's call type of an export row: "domestic", "international", "conference_dial_out",
    "toll_free", or None for a call callsim does not rate (`NOT_RATED_CALL_TYPES`).

    - `user_out` and the other `OUTBOUND_CALL_TYPES`: domestic or international by the
      Domestic/International column (the page: "based on the user's location");
    - `conf_out`: conference_dial_out;
    - `user_in`, `conf_in`, `ucap_in` on a toll-free Number Type: toll_free (the tenant pays
      for calls to its toll-free numbers from communications credits, SPEC §3);
      on any other number: None.

    Values are matched without regard to case or surrounding spaces.  Raises `UnknownValue`
    for a Call Type outside `TEAMS_CALL_TYPES`, an outbound row whose Domestic/International is
    neither, or an unknown Number Type on an inbound row.
    """
    kind = call_type.strip().lower()
    if kind not in TEAMS_CALL_TYPES:
        raise UnknownValue("Call Type", call_type, TEAMS_CALL_TYPES)
    if kind in OUTBOUND_CALL_TYPES:
        where = domestic_international.strip().lower()
        if where not in (DOMESTIC.lower(), INTERNATIONAL.lower()):
            raise UnknownValue("Domestic/International", domestic_international, (DOMESTIC, INTERNATIONAL))
        return where
    if kind == "conf_out":
        return "conference_dial_out"
    if kind.endswith("_in") and number_kind(number_type) == "toll_free":
        return "toll_free"
    return None


def domestic_international(call_type: str, user_country: str, destination_country: str) -> str:
    """The Domestic/International written for a callsim call: the call type's word for
    outbound calls, by the destination against the user's country for a conference dial-out
    (the page: "based on the user's location"), empty for an inbound toll-free call (as Graph
    writes `destinationContext` null on inbound rows)."""
    if call_type in ("domestic", "international"):
        return DOMESTIC if call_type == "domestic" else INTERNATIONAL
    if call_type == "conference_dial_out":
        return DOMESTIC if destination_country and destination_country == user_country else INTERNATIONAL
    return ""


# --- Number Type --------------------------------------------------------------------------

#: *(callsim)* The Number Type written: Graph writes a user's number as "Subscriber"; a
#: conference bridge dials out from a service number; toll-free numbers as "Toll Free".
NUMBER_TYPE_USER = "Subscriber"
NUMBER_TYPE_SERVICE = "Service"
NUMBER_TYPE_TOLL_FREE = "Toll Free"

_NUMBER_KINDS = {"subscriber": "user", "user": "user", "service": "service", "tollfree": "toll_free",
                 "servicetollfree": "toll_free", "tollfreeservice": "toll_free", "": ""}


def number_kind(number_type: str) -> str:
    """"user", "service", "toll_free", or "" (empty) for a Number Type as exports spell it:
    case, spaces, hyphens and underscores do not matter ("Toll Free", "toll-free", "TollFree",
    "Service Toll-Free").  Raises `UnknownValue` for anything else."""
    key = re.sub(r"[\s_\-]+", "", number_type).lower()
    if key not in _NUMBER_KINDS:
        raise UnknownValue("Number Type", number_type, (NUMBER_TYPE_USER, NUMBER_TYPE_SERVICE, NUMBER_TYPE_TOLL_FREE))
    return _NUMBER_KINDS[key]


def number_type(call_type: str) -> str:
    """The Number Type written for a callsim call type."""
    return {"toll_free": NUMBER_TYPE_TOLL_FREE, "conference_dial_out": NUMBER_TYPE_SERVICE}.get(call_type,
                                                                                             NUMBER_TYPE_USER)


# --- Capability ---------------------------------------------------------------------------

#: Capability (the licence a call used) -> the callsim licences it stands for.  A calling plan
#: implies phone_system (Teams sells no calling plan without it; callsim admits an outbound
#: call only with both, SPEC §3).  MCOMEETACPEA, pay-per-minute audio conferencing, is
#: audio conferencing whose dial-outs credits pay; callsim's nearest is both licences (its
#: users also feed the dial-out pool, which the real licence has none of).
CAPABILITY_LICENSES: dict[str, frozenset[str]] = {
    "MCOPSTN1": frozenset({"phone_system", "domestic_calling_plan"}),
    "MCOPSTN2": frozenset({"phone_system", "international_calling_plan"}),
    "MCOPSTN5": frozenset({"phone_system", "domestic_calling_plan"}),
    "MCOPSTN6": frozenset({"phone_system", "domestic_calling_plan"}),
    "MCOPSTNPP": frozenset({"communications_credits"}),
    "MCOMEETADD": frozenset({"audio_conferencing"}),
    "MCOMEETACPEA": frozenset({"audio_conferencing", "communications_credits"}),
}

#: Capabilities whose calls credits pay in full: a Charge on any other (a calling plan's, or
#: audio conferencing's) is the part beyond what a pool covered (`capability` below).
CREDITS_PAID_ALL = frozenset({"MCOPSTNPP", "MCOMEETACPEA"})

#: The domestic minutes per user per month of the plans that fix them: MCOPSTN5 and MCOPSTN6
#: are the 120- and 240-minute domestic plans.  MCOPSTN1 (and MCOPSTN2's domestic part) gives
#: the country's full plan (3000 min in the US, 1200 in the EU and UK: callsim's
#: `plans.domestic_minutes`, default 3000), so it has no entry here.
#:
#: callsim sets domestic minutes per *country* (`[plans] domestic_minutes = {US = 120}`): its
#: pool `domestic:CC` holds 60 x the sum of its users' minutes (SPEC §3 Pools).  Where a
#: country's users hold one kind of plan, that is its figure; where they mix, the importer
#: writes the users' mean (rounded), which keeps the pool's size (n x mean) and says so in a
#: comment.  callsim's writer cannot tell the plans apart: it writes MCOPSTN1.
CAPABILITY_DOMESTIC_MINUTES: dict[str, int] = {"MCOPSTN5": 120, "MCOPSTN6": 240}


def licenses_for(capability: str) -> frozenset[str]:
    """The callsim licences of a Capability (any case, spaces trimmed); raises `UnknownValue`."""
    key = capability.strip().upper()
    if key not in CAPABILITY_LICENSES:
        raise UnknownValue("Capability", capability, CAPABILITY_LICENSES)
    return CAPABILITY_LICENSES[key]


def capability(call_type: str, pool: str, licenses: frozenset[str]) -> str:
    """The Capability written for a callsim call: the licence that paid it.

    `pool` is the kind of pool the call took seconds from ("domestic", "international",
    "dial_out", or "" for none); `licenses` the user's effective licences (e5 expanded).

    1. toll_free: MCOPSTNPP, the org's communications credits (SPEC §3: credits always pay it);
    2. a domestic pool: MCOPSTN2 for a user with the international plan (it includes the
       domestic minutes), else MCOPSTN1; an international pool: MCOPSTN2; the dial-out
       pool: MCOMEETADD;
    3. no pool: MCOPSTNPP when the user has communications credits (they paid, if anything);
       else the licence that admitted the call (the calling plan, or MCOMEETADD).

    So a user's rows name the plan that admitted their calls where a pool paid, and the
    credits that paid beyond the pools.  A call's type says the rest: a user with `user_out`
    rows holds phone_system and a calling plan, one with `conf_out` rows audio_conferencing
    (SPEC §3 admission), whatever paid for those calls.
    """
    plan = "MCOPSTN2" if "international_calling_plan" in licenses else "MCOPSTN1"
    if call_type == "toll_free":
        return "MCOPSTNPP"
    if pool == "domestic":
        return plan
    if pool == "international":
        return "MCOPSTN2"
    if pool == "dial_out":
        return "MCOMEETADD"
    if "communications_credits" in licenses:
        return "MCOPSTNPP"
    return "MCOMEETADD" if call_type == "conference_dial_out" else plan


# --- users --------------------------------------------------------------------------------


def default_domain(org_id: str) -> str:
    """*(callsim)* The UPN domain of an org without `domain`: `{org id}.onmicrosoft.com`, the
    form of a tenant's initial domain."""
    return f"{org_id}.onmicrosoft.com"


def upn(user_id: str, domain: str) -> str:
    """The UPN written for a callsim user: `{user id}@{domain}`."""
    return f"{user_id}@{domain}"


def user_id_from_upn(text: str) -> str:
    """The callsim user id of a UPN: the part before its last "@" (the whole text without one),
    spaces trimmed.  `upn`'s inverse for any user id."""
    text = text.strip()
    return text.rpartition("@")[0] if "@" in text else text


# --- numbers, places, money, time ---------------------------------------------------------


def number_digits(text: str) -> int:
    """An E.164 number's digits as callsim keeps them (int64), from the text with or without
    "+", spaces trimmed: "+12125550100" and "12125550100" -> 12125550100; "" -> 0 (none).
    Raises ValueError for anything but up to 15 digits (E.164's longest)."""
    digits = text.strip().removeprefix("+")
    if not digits:
        return 0
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 15:
        raise ValueError(f"not an E.164 number: {text!r}")
    return int(digits)


def destination_dialed(country: str) -> str:
    """The Destination Dialed ("Country or region dialed") for an ISO 3166 alpha-2 code: its
    English short name as Graph's `destinationName` writes it ("United States", "Germany"),
    the common name where ISO's official one is long ("South Korea", "Taiwan"); a code ISO
    does not know stays as it is, and "" gives ""."""
    if not country:
        return ""
    entry = pycountry.countries.get(alpha_2=country.upper())
    if entry is None:
        return country
    return getattr(entry, "common_name", None) or entry.name


def country_code(name: str) -> str | None:
    """`destination_dialed`'s inverse: the alpha-2 code of a country name (or of a code), None
    when no ISO 3166 country has it."""
    name = name.strip()
    if not name:
        return None
    try:
        entry = pycountry.countries.lookup(name)
    except LookupError:
        entry = next((c for c in pycountry.countries if getattr(c, "common_name", None) == name), None)
    return entry.alpha_2 if entry is not None else None


#: *(callsim)* `Start Time` / `End Time` as written: UTC with seven fractional digits and "Z",
#: as Graph writes `startDateTime` (.NET's round-trip form); callsim's instants are whole
#: milliseconds, so the last four digits are 0.  Readers take any ISO 8601 with an offset.
TIME_FORMAT = "YYYY-MM-DDTHH:MM:SS.fffffffZ"


def format_time(epoch_ms: int) -> str:
    """An instant in ms since the Unix epoch as `TIME_FORMAT`: 0 -> "1970-01-01T00:00:00.0000000Z"."""
    seconds, ms = divmod(epoch_ms, 1000)
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms:03d}0000Z"


def parse_time(text: str) -> datetime:
    """An export time as an aware datetime: ISO 8601 with "Z" or an offset, any fraction
    (Python keeps microseconds: a seventh digit is dropped).  A time without an offset is
    refused (ValueError): the export's are UTC, and a guess would shift every call."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        raise ValueError(f"no UTC offset in time {text!r}")
    return moment


#: `Charge` and `Connection Fee` are `numeric(16, 2)`: two decimals.
CHARGE_DECIMALS = 2


def charge_text(micro: int) -> str:
    """A charge in micro-units as the export writes it: two decimals, half a cent rounded up
    (away from zero for a negative amount): 1_234_999 -> "1.23", 5_000 -> "0.01", 0 -> "0.00"."""
    cents, rest = divmod(abs(micro), 10_000)
    cents += rest >= 5_000
    sign = "-" if micro < 0 and cents else ""
    return f"{sign}{cents // 100}.{cents % 100:02d}"
