"""Pydantic models of the scenario file (SPEC §2): the shape and the value of every key.

These models check one table at a time and know nothing of the rest of the file; rules that
relate tables (an org that must exist, a user of that org, `at` before the end) belong to the
loader in `scenario.py`.  The loader validates each array item on its own, so one bad item
does not hide the problems of its neighbours.

Every model forbids unknown keys (a typo must not pass silently) and is strict (TOML has real
types: `seed = "7"` is a mistake, not a 7).  Unit-bearing values go through `simulator.units`, whose
messages are meant for people; `problems_from` turns pydantic's errors into
`(place, problem)` pairs with the same care.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from rating_core import LICENSES
from .. import units
from ..units import show

M = TypeVar("M", bound=BaseModel)

MAX_GROUP_COUNT = 1_000_000  # users are objects: a typo in count must not eat the memory
MAX_USERS = 2_000_000  # in all groups together, checked by the loader before it expands any
MAX_PLAN_MINUTES = 1_000_000  # per user per month; keeps pool seconds far inside int64
# Over 100 years this is under 10^15 calls: call ids and counters stay far inside int64.
# Whether the machine can run that many is the work estimate's question (`estimate`).
MAX_CALLS_PER_HOUR = 1e9


def _bounded(parse: Callable[[object], int], low: int, inclusive: bool) -> PlainValidator:
    """Parse a duration or amount, then hold it to its field's lower bound."""

    def check(value: object) -> int:
        parsed = parse(value)
        if parsed < low or (parsed == low and not inclusive):
            if inclusive and low == 0:
                raise ValueError(f"must not be negative, got {show(value)}")
            raise ValueError(f"must be greater than {low}, got {show(value)}")
        return parsed

    return PlainValidator(check)


def _one_of(*choices: str, hints: dict[str, str] | None = None) -> PlainValidator:
    def check(value: object) -> str:
        if isinstance(value, str) and value in choices:
            return value
        listed = ", ".join(f'"{c}"' for c in choices)
        hint = (hints or {}).get(value, "") if isinstance(value, str) else ""
        raise ValueError(f"expected one of {listed}, got {show(value)}{hint}")

    return PlainValidator(check)


def _licenses(value: object) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"expected an array of license names, got {show(value)}")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise ValueError(f"expected license names (strings), got {show(bad[0])}")
    unknown = [v for v in value if v not in LICENSES]
    if unknown:
        # One line per field, as in SPEC §2: `orgs[0].users[1].licenses: unknown license "foo"`.
        words = "license" if len(unknown) == 1 else "licenses"
        valid = ", ".join(sorted(LICENSES))
        raise ValueError(
            f"unknown {words} " + ", ".join(show(v) for v in unknown) + f" (valid: {valid})"
        )
    return value


def _printable(text: str) -> str:
    """Free text (ids, groups, tokens, zones, names) goes into CSV fields, JSON, metric labels
    and environment-variable names: a control character (NUL, newline, escape) would break
    them, or slip past a reader of the file as an invisible difference between two ids."""
    for i, char in enumerate(text):
        if unicodedata.category(char) == "Cc" or char in "\u2028\u2029":
            # The value itself is not shown: it may be a token (a secret).
            raise ValueError(f"must not contain control characters, got U+{ord(char):04X} at "
                             f"character {i + 1}")
    return text


# RFC 3261 §25.1 `user`: unreserved and user-unreserved characters.  `;` is left out (it starts
# the URI's parameters in every parser's eyes) and so is `%` (an escaped name would have two
# spellings, and the lookup compares names as written).
_SIP_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,?/]{1,64}", re.ASCII)
# A realm travels as a quoted string in WWW-/Proxy-Authenticate: no quote, backslash or control.
_SIP_REALM = re.compile(r"[\x20-\x7e]{1,64}", re.ASCII)
DEFAULT_SIP_REALM = "callsim"


def _sip_user(value: object) -> str:
    if isinstance(value, str) and _SIP_USER.fullmatch(value):
        return value
    raise ValueError("expected a SIP user name: 1 to 64 letters, digits or -_.!~*'()&=+$,?/, "
                     f"got {show(value)}")


def _sip_realm(value: object) -> str:
    if isinstance(value, str) and _SIP_REALM.fullmatch(value) and not set('"\\') & set(value):
        return value
    raise ValueError(f"expected a realm: 1 to 64 printable ASCII characters without quotes or "
                     f"backslashes, got {show(value)}")


def _network(value: object) -> IPv4Network | IPv6Network:
    """An address ("127.0.0.1", "::1") or a network ("10.0.0.0/8"), as a network."""
    if not isinstance(value, str):
        raise ValueError(f'expected an address or network like "10.0.0.0/8", got {show(value)}')
    try:
        return ip_network(value)
    except ValueError as exc:  # ipaddress says which part is wrong ("has host bits set")
        raise ValueError(f"expected an address or network like \"10.0.0.0/8\", got {show(value)} "
                         f"({exc})") from None


def calls_per_hour(value: object) -> float:
    """A rate of calls per hour: an integer or finite float, above 0, at most the maximum."""
    if not (units.is_integer(value) or isinstance(value, float)):
        raise ValueError(f"expected a number of calls per hour, got {show(value)}")
    # Compared before float(), which overflows on TOML integers past 1e308.
    if value > MAX_CALLS_PER_HOUR:  # type: ignore[operator]
        raise ValueError(f"too large: must be at most {MAX_CALLS_PER_HOUR:.0e}, got {show(value)}")
    if not value > 0:  # type: ignore[operator]  # zero, negative or NaN
        raise ValueError(f"must be a number greater than 0, got {show(value)}")
    return float(value)  # type: ignore[arg-type]


def _domestic_key(value: object) -> str:
    if value == "default":
        return "default"
    try:
        return units.parse_country(value)
    except ValueError:
        raise ValueError(
            f'expected "default" or a 2-letter uppercase country code, got key {show(value)}'
        ) from None


PositiveDuration = Annotated[int, _bounded(units.parse_duration_ms, 0, inclusive=False)]
NonNegativeDuration = Annotated[int, _bounded(units.parse_duration_ms, 0, inclusive=True)]
Money = Annotated[int, _bounded(units.parse_money_micro, 0, inclusive=True)]
PositiveMoney = Annotated[int, _bounded(units.parse_money_micro, 0, inclusive=False)]
UtcInstant = Annotated[datetime, PlainValidator(units.parse_utc_instant)]
Day = Annotated[date, PlainValidator(units.parse_date)]
Increment = Annotated[tuple[int, int], PlainValidator(units.parse_increment)]
E164 = Annotated[str, PlainValidator(units.parse_e164)]
Prefix = Annotated[str, PlainValidator(units.parse_prefix)]
Country = Annotated[str, PlainValidator(units.parse_country)]
Currency = Annotated[str, PlainValidator(units.parse_currency)]
Licenses = Annotated[list[str], PlainValidator(_licenses)]
CallsPerHour = Annotated[float, PlainValidator(calls_per_hour)]
DomesticKey = Annotated[str, PlainValidator(_domestic_key)]
Text = Annotated[str, Field(min_length=1), AfterValidator(_printable)]
Minutes = Annotated[int, Field(ge=0, le=MAX_PLAN_MINUTES)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]  # fits any RNG's and any writer's int64
SipUser = Annotated[str, PlainValidator(_sip_user)]
SipRealm = Annotated[str, PlainValidator(_sip_realm)]
Network = Annotated[IPv4Network | IPv6Network, PlainValidator(_network)]


def _destination_item(value: object) -> object:
    """A `destinations` entry: a prefix string, or a table (checked by `_traffic_schema`)."""
    if isinstance(value, str):
        return units.parse_prefix(value)
    if isinstance(value, dict):
        return value
    raise ValueError(f'expected a prefix like "44" or a table like {{ prefix = "44", weight = 2 }}, '
                     f"got {show(value)}")


DestinationItem = Annotated[object, PlainValidator(_destination_item)]
# TOML has no null, so None is only ever the default: one validator, no union to try (a union
# costs ~3 us a source, and files with 10,000 sources are normal)
OptionalCallsPerHour = Annotated[float | None, PlainValidator(calls_per_hour)]
OptionalPositiveDuration = Annotated[int | None, _bounded(units.parse_duration_ms, 0, inclusive=False)]

TRAFFIC_TYPES = ("domestic", "international", "conference_dial_out", "toll_free")
CALL_TYPES = ("outbound", "conference_dial_out", "toll_free")
_OUTBOUND_HINT = ' (explicit calls say "outbound"; domestic or international follows from `to`)'
_OUTBOUND_HINTS = {"domestic": _OUTBOUND_HINT, "international": _OUTBOUND_HINT}


class _Table(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class DocumentModel(_Table):
    """Top level: which tables exist.  Items are checked one by one by the models below."""

    simulation: Any
    plans: Any = None
    tariff: list[Any] = Field(default_factory=list)
    toll_free_tariff: list[Any] = Field(default_factory=list)
    orgs: list[Any] = Field(min_length=1)
    traffic: list[Any] = Field(default_factory=list)
    calls: list[Any] = Field(default_factory=list)
    expect: list[dict[str, Any]] = Field(default_factory=list)  # checked by its own issue


class SimulationModel(_Table):
    name: Text
    seed: Seed
    start: UtcInstant
    duration: PositiveDuration
    currency: Currency


class PlansModel(_Table):
    """Only what is written; the loader fills in SPEC's defaults."""

    domestic_minutes: dict[DomesticKey, Minutes] = Field(default_factory=dict)
    international_minutes: Minutes = 600
    dial_out_minutes: Minutes = 60
    dial_out_zones: list[Text] = Field(default_factory=lambda: ["A"])


class TollFreeTariffModel(_Table):
    """`[[toll_free_tariff]]`: rated by the caller's prefix, so no destination facts."""

    prefix: Prefix
    per_minute: Money
    increment: Increment


class TariffModel(TollFreeTariffModel):
    """`[[tariff]]`: a destination, with what admission and funding need to know about it."""

    country: Country
    zone: Text
    plan_excluded: bool = False


class CreditsModel(_Table):
    initial: Money = 0
    auto_recharge: bool = False
    recharge_below: Money | None = None  # required with auto_recharge: checked by the loader
    recharge_amount: PositiveMoney | None = None
    card_expires: Day | None = None
    retry_after: NonNegativeDuration = 24 * units.MS_PER_UNIT["h"]


class OrgSipModel(_Table):
    """`[orgs.sip]`: how the org's SIP requests are recognised (digest credentials, addresses).

    Which of the keys are required together is the loader's call (`_sip`).
    """

    username: SipUser | None = None
    password: Text | None = None
    realm: SipRealm = DEFAULT_SIP_REALM
    trusted: list[Network] = Field(default_factory=list)


class OrgModel(_Table):
    id: Text
    toll_free_numbers: list[E164] = Field(default_factory=list)
    token: Text | None = None
    credits: CreditsModel | None = None
    sip: OrgSipModel | None = None
    users: list[Any] = Field(default_factory=list)  # each checked with UserModel


#: An org's optional tables and their keys: `--set orgs.ID.credits.initial=...` may create the
#: table a file leaves out (`callsim import` writes `[orgs.credits]` commented out).
ORG_TABLE_KEYS = {"credits": frozenset(CreditsModel.model_fields), "sip": frozenset(OrgSipModel.model_fields)}
#: The keys of `[orgs.credits]` that hold money, a decimal string (`initial = "100.00"`).
CREDITS_MONEY_KEYS = frozenset({"initial", "recharge_below", "recharge_amount"})


class UserModel(_Table):
    """A single user (`id`) or a group (`group` + `count`); which one is the loader's call."""

    id: Text | None = None
    group: Text | None = None
    count: Annotated[int, Field(ge=1, le=MAX_GROUP_COUNT)] | None = None
    country: Country
    licenses: Licenses
    number: E164 | None = None  # a single user's SIP identity ...
    sip_user: SipUser | None = None
    number_base: E164 | None = None  # ... a group's: member k gets number_base + k - 1


class TrafficModel(_Table):
    """The keys of a source; which of rate and holding keys it needs, and the shape tables
    (`rate_profile`, `holding`, weighted `destinations`), are `_traffic_schema`'s."""

    org: Text
    type: Annotated[str, _one_of(*TRAFFIC_TYPES)]
    calls_per_hour: OptionalCallsPerHour = None
    holding_mean: OptionalPositiveDuration = None
    users: Text | None = None
    destinations: Annotated[list[DestinationItem], Field(min_length=1, max_length=100_000)] | None = None
    rate_profile: Any = None
    holding: Any = None


class CallModel(_Table):
    at: NonNegativeDuration
    org: Text
    user: Text | None = None
    type: Annotated[str, _one_of(*CALL_TYPES, hints=_OUTBOUND_HINTS)]
    to: E164
    from_: E164 | None = Field(default=None, alias="from")
    duration: NonNegativeDuration


def problems_from(error: ValidationError, base: str) -> list[tuple[str, str]]:
    """Pydantic's errors as (place, problem) pairs; `base` is the validated table's place."""
    return [
        (_place(base, err["loc"]), _message(err))
        for err in error.errors(include_url=False)
    ]


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def _place(base: str, loc: tuple[int | str, ...]) -> str:
    place = base
    for part in loc:
        if part == "[key]":  # a bad dict key: the key itself is the place
            continue
        if isinstance(part, int):
            place += f"[{part}]"
        else:
            # A key TOML had to quote is quoted here too: it may hold a newline or a dot.
            key = part if _BARE_KEY.fullmatch(part) else show(part)
            place = f"{place}.{key}" if place else key
    return place


def _message(err: Any) -> str:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    got = f"got {show(err.get('input'))}"
    if kind == "value_error":
        return str(ctx["error"])
    simple = {
        "missing": "required",
        "extra_forbidden": "unknown key",
        "too_short": "must not be empty",
        "string_too_short": "must not be empty",
    }
    if kind == "too_short" and ctx.get("min_length", 1) > 1:
        return f"at least {ctx['min_length']} items, got {ctx['actual_length']}"
    if kind in simple:
        return simple[kind]
    expected = {
        "string_type": "a string",
        "int_type": "an integer",
        "bool_type": "true or false",
        "list_type": "an array",
        "dict_type": "a table",
        "model_type": "a table",
    }
    if kind in expected:
        return f"expected {expected[kind]}, {got}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, {got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, {got}"
    if kind == "too_long":
        return f"at most {ctx['max_length']:,} items, got {ctx['actual_length']:,}"
    return err["msg"]  # not expected from TOML input; still better than a traceback


def validate(model: type[M], raw: object, base: str) -> tuple[M | None, list[tuple[str, str]]]:
    """(instance, []) when `raw` is valid, else (None, problems)."""
    try:
        return model.model_validate(raw), []
    except ValidationError as exc:
        return None, problems_from(exc, base)
