"""The `[[expect]]` tables of a scenario: their shape, their values, and what they refer to.

An expectation is one of three kinds, told apart by its keys (docs/expectations.md):

* **call** -- `call = N` (the N-th `[[calls]]` entry, from 1) or `call_id = N` (a CDR's id):
  what that call's CDR says (`end_reason`, `end_at`, `billed_s`, ...);
* **event** -- `event = "..."`: how many matching lines events.jsonl has (`count`, at least one
  when omitted), optionally only for one `org`, `at` one instant or window, or with given
  `amount`, `balance` or `reason`;
* **totals** -- anything else: summary.json's figures for one `org`, or for the whole run
  when `org` is omitted.

Every number may be exact (`billed_s = 600`) or a range (`{ min = 100, max = 200 }`, either
bound optional, both inclusive) -- ranges are for generated traffic, whose figures QA pins
loosely.  Money is a decimal string and time an offset from the start, with the scenario's own
parsers (`simulator.units`), so an expectation means exactly what the same text means in `[[calls]]`.

Checked like the rest of the scenario: one table at a time, every problem with its place
(`expect[3].end_at`), all reported together before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from rating_core import pool_capacities
from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, RatingSetup
from .. import units
from ._schema import validate
from ..units import format_micro, is_integer, show

__all__ = [
    "Bound",
    "CallExpectation",
    "Context",
    "EVENT_KINDS",
    "EventExpectation",
    "Expectation",
    "Expected",
    "TotalsExpectation",
    "parse_expectations",
    "pool_problems",
    "say_ms",
]

#: events.jsonl kinds and the fields each carries besides time, org_id and event (SPEC §4).
#: Kept in step with `simulator.outputs.EVENT_FIELDS` by a test; not imported from there, so
#: that loading a scenario does not load the output writers.
EVENT_KINDS: dict[str, tuple[str, ...]] = {
    "credits_purchased": ("amount", "balance"),
    "recharge_succeeded": ("amount", "balance"),
    "recharge_failed": ("reason", "balance"),
    "balance_exhausted": ("balance",),
    "credits_expired": ("amount", "balance"),
    "pools_refilled": (),
}

MAX_COUNT = 2**63 - 1  # counts and seconds are int64 in every output

Unit = Literal["count", "seconds", "money", "time"]


def say_ms(ms: int) -> str:
    """A duration for people: 3_920_000 -> "1h 5m 20s", 20_601 -> "20.601s", 0 -> "0s"."""
    parts = []
    rest = ms
    for unit in ("d", "h", "m"):
        n, rest = divmod(rest, units.MS_PER_UNIT[unit])
        if n:
            parts.append(f"{n}{unit}")
    s, milli = divmod(rest, 1_000)
    if milli:
        parts.append(f"{s}.{milli:03d}".rstrip("0") + "s")
    elif s or not parts:
        parts.append(f"{s}s")
    return " ".join(parts)


@dataclass(frozen=True)
class Bound:
    """An expected number: `low <= value <= high`, either side open (None); exact if equal.

    Values are in the unit's integer form: micro-units for money, ms for time.
    """

    low: int | None
    high: int | None
    unit: Unit

    def holds(self, value: int) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def say(self, value: int) -> str:
        """One value of this unit, as the diff shows it."""
        if self.unit == "money":
            return format_micro(value)
        if self.unit == "time":
            return say_ms(value)
        return str(value)

    def __str__(self) -> str:
        if self.exact:
            assert self.low is not None
            return self.say(self.low)
        if self.high is None:
            assert self.low is not None
            return f"at least {self.say(self.low)}"
        if self.low is None:
            return f"at most {self.say(self.high)}"
        return f"{self.say(self.low)} to {self.say(self.high)}"


# -- parsed expectations ---------------------------------------------------------------------

Expected = Bound | str  # a number (exact or range) or an exact piece of text


@dataclass(frozen=True)
class CallExpectation:
    """What one call's CDR must say; `checks` maps a CDR field to its expected value."""

    index: int  # position in [[expect]], from 0
    call: int | None  # the N-th [[calls]] entry, from 1
    call_id: int | None
    checks: Mapping[str, Expected]


@dataclass(frozen=True)
class EventExpectation:
    """How many events.jsonl lines match `event`, `org`, `at` and `fields`."""

    index: int
    event: str
    org: str | None  # None: any org
    at: Bound | None  # None: any time
    fields: Mapping[str, Expected]  # amount, balance (Bound) or reason (str)
    count: Bound  # at least 1 when not written


@dataclass(frozen=True)
class TotalsExpectation:
    """summary.json figures of one org (None: the run's "total"); nested keys joined by ".".

    `checks` is keyed like `final_balance` or `calls_by_end_reason.hangup`.
    """

    index: int
    org: str | None
    checks: Mapping[str, Bound]


Expectation = CallExpectation | EventExpectation | TotalsExpectation


@dataclass(frozen=True)
class Context:
    """What expectations may refer to, from the rest of the scenario."""

    org_ids: Sequence[str | None]  # None: an org whose id was itself a mistake
    calls: int  # number of [[calls]] entries
    end_ms: int | None  # None: [simulation] had problems, so times are not checked against it


# -- values ----------------------------------------------------------------------------------


def _whole_number(value: object) -> int:
    if is_integer(value) and 0 <= value <= MAX_COUNT:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    if is_integer(value):
        raise ValueError(f"must be a whole number >= 0, got {show(value)}")
    raise ValueError(f"expected a whole number, got {show(value)}")


def _money(value: object) -> int:
    return units.parse_money_micro(value)


def _time(value: object) -> int:
    ms = units.parse_duration_ms(value)
    if ms < 0:
        raise ValueError(f"must not be negative, got {show(value)}")
    return ms


_PARSERS: dict[Unit, Callable[[object], int]] = {
    "count": _whole_number,
    "seconds": _whole_number,
    "money": _money,
    "time": _time,
}
_EXAMPLES: dict[Unit, str] = {
    "count": "{ min = 100, max = 200 }",
    "seconds": "{ min = 3600, max = 7200 }",
    "money": '{ min = "10.00", max = "20.00" }',
    "time": '{ min = "1h", max = "2h" }',
}


def _bound(unit: Unit) -> Callable[[object], Bound]:
    """An exact value of `unit`, or `{ min = ..., max = ... }` with at least one bound."""
    parse = _PARSERS[unit]

    def check(value: object) -> Bound:
        if isinstance(value, dict):
            extra = [k for k in value if k not in ("min", "max")]
            if extra:
                raise ValueError(
                    f'a range has only "min" and "max", got {show(extra[0])}; '
                    f"write it like {_EXAMPLES[unit]}"
                )
            if not value:
                raise ValueError(f'a range needs "min", "max" or both, like {_EXAMPLES[unit]}')
            ends: dict[str, int | None] = {"min": None, "max": None}
            for key in ends:
                if key in value:
                    try:
                        ends[key] = parse(value[key])
                    except ValueError as exc:
                        raise ValueError(f"{key}: {exc}") from None
            low, high = ends["min"], ends["max"]
            if low is not None and high is not None and low > high:
                raise ValueError(
                    f"min {show(value['min'])} is greater than max {show(value['max'])}"
                )
            return Bound(low, high, unit)
        if isinstance(value, str) and ".." in value:
            raise ValueError(f"write a range as {_EXAMPLES[unit]}, got {show(value)}")
        exact = parse(value)
        return Bound(exact, exact, unit)

    return check


def _one_of(choices: Sequence[str]) -> PlainValidator:
    def check(value: object) -> str:
        if isinstance(value, str) and value in choices:
            return value
        listed = ", ".join(f'"{c}"' for c in choices)
        raise ValueError(f"expected one of {listed}, got {show(value)}")

    return PlainValidator(check)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {show(value)}")


_time_bound = _bound("time")
Count = Annotated[Bound, PlainValidator(_bound("count"))]
Seconds = Annotated[Bound, PlainValidator(_bound("seconds"))]
Money = Annotated[Bound, PlainValidator(_bound("money"))]
Time = Annotated[Bound, PlainValidator(_time_bound)]
EndReason = Annotated[str, _one_of(END_REASON_NAMES)]
CallType = Annotated[str, _one_of(CALL_TYPE_NAMES)]
EventKind = Annotated[str, _one_of(tuple(EVENT_KINDS))]
AnyText = Annotated[str, PlainValidator(_text)]  # may be empty: `pool = ""` is "no pool"
Text = Annotated[str, Field(min_length=1)]
CallNumber = Annotated[int, Field(ge=1, le=MAX_COUNT)]


# -- tables ----------------------------------------------------------------------------------


class _Table(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CallModel(_Table):
    call: CallNumber | None = None
    call_id: CallNumber | None = None
    end_reason: EndReason | None = None
    call_type: CallType | None = None
    end_at: Time | None = None
    duration: Time | None = None
    billed_s: Seconds | None = None
    pool: AnyText | None = None
    pool_s: Seconds | None = None
    credits_charged: Money | None = None


class EventModel(_Table):
    event: EventKind
    org: Text | None = None
    at: Time | None = None
    count: Count | None = None
    amount: Money | None = None
    balance: Money | None = None
    reason: AnyText | None = None


class TotalsModel(_Table):
    """Named like summary.json's keys, so a value can be copied from a run's summary."""

    org: Text | None = None
    calls: Count | None = None
    calls_by_end_reason: dict[EndReason, Count] | None = None
    calls_by_call_type: dict[CallType, Count] | None = None
    billed_s: Seconds | None = None
    pool_s_by_pool: dict[Text, Seconds] | None = None
    pool_remaining_s: dict[Text, Seconds] | None = None
    credits_charged: Money | None = None
    recharges_succeeded: Count | None = None
    recharges_failed: Count | None = None
    credits_purchased: Money | None = None
    credits_expired: Money | None = None
    final_balance: Money | None = None


_CALL_FIELDS = tuple(k for k in CallModel.model_fields if k not in ("call", "call_id"))
_TOTALS_FIELDS = tuple(k for k in TotalsModel.model_fields if k != "org")
_TIME_FIELDS = ("end_at", "at")  # instants: must not be after the end of the simulation


# -- parsing ---------------------------------------------------------------------------------


def parse_expectations(
    items: Sequence[object], context: Context
) -> tuple[list[Expectation], list[tuple[str, str]]]:
    """Check every `[[expect]]` item: (the valid ones, [(place, problem), ...])."""
    parsed: list[Expectation] = []
    problems: list[tuple[str, str]] = []
    for i, raw in enumerate(items):
        place = f"expect[{i}]"
        found: list[tuple[str, str]] = []
        expectation = _parse_one(i, raw, place, context, found)
        problems += found
        if expectation is not None and not found:
            parsed.append(expectation)
    return parsed, problems


def _parse_one(
    i: int, raw: object, place: str, context: Context, problems: list[tuple[str, str]]
) -> Expectation | None:
    if not isinstance(raw, dict):
        problems.append((place, f"expected a table, got {show(raw)}"))
        return None
    if "call" in raw or "call_id" in raw:
        return _call(i, raw, place, context, problems)
    if "event" in raw:
        return _event(i, raw, place, context, problems)
    return _totals(i, raw, place, context, problems)


def _call(
    i: int, raw: dict[str, Any], place: str, context: Context, problems: list[tuple[str, str]]
) -> CallExpectation | None:
    model, found = validate(CallModel, raw, place)
    problems += found
    if "call" in raw and "call_id" in raw:
        problems.append((place, 'give either "call" (a [[calls]] entry) or "call_id", not both'))
    call = raw.get("call")
    if is_integer(call) and context.calls < call <= MAX_COUNT:
        have = f"has {context.calls}" if context.calls else "has none"
        problems.append((f"{place}.call", f"no [[calls]] entry {call} (the scenario {have})"))
    if not any(k in raw for k in _CALL_FIELDS):
        problems.append((place, "nothing to check: add " + _some(_CALL_FIELDS)))
    _check_times(place, raw, context, problems)
    if model is None:
        return None
    checks = {k: getattr(model, k) for k in raw if k in _CALL_FIELDS}  # in the file's order
    return CallExpectation(i, model.call, model.call_id, checks)


def _event(
    i: int, raw: dict[str, Any], place: str, context: Context, problems: list[tuple[str, str]]
) -> EventExpectation | None:
    model, found = validate(EventModel, raw, place)
    problems += found
    _check_org(place, raw, context, problems)
    carried = EVENT_KINDS.get(raw["event"]) if isinstance(raw["event"], str) else None
    for key in ("amount", "balance", "reason"):
        if key in raw and carried is not None and key not in carried:
            has = f"only {' and '.join(carried)}" if carried else "nothing but time and org_id"
            problems.append((f"{place}.{key}", f"{raw['event']} events carry {has}"))
    _check_times(place, raw, context, problems)
    if model is None:
        return None
    fields = {k: getattr(model, k) for k in raw if k in ("amount", "balance", "reason")}
    count = model.count if model.count is not None else Bound(1, None, "count")
    return EventExpectation(i, model.event, model.org, model.at, fields, count)


def _totals(
    i: int, raw: dict[str, Any], place: str, context: Context, problems: list[tuple[str, str]]
) -> TotalsExpectation | None:
    model, found = validate(TotalsModel, raw, place)
    problems += found
    if not any(k in raw for k in _TOTALS_FIELDS):
        # A typo in "call" or "event" lands here: say what a table needs, besides "unknown key".
        problems.append((place, 'nothing to check: give "call" or "call_id" (one call), '
                                '"event" (events), or totals like final_balance or '
                                "calls_by_end_reason (docs/expectations.md)"))
        return None
    _check_org(place, raw, context, problems)
    if model is None:
        return None
    checks: dict[str, Bound] = {}
    for key in (k for k in raw if k in _TOTALS_FIELDS):  # in the file's order
        value = getattr(model, key)
        if isinstance(value, dict):
            checks.update((f"{key}.{name}", bound) for name, bound in value.items())
        elif value is not None:
            checks[key] = value
    if not checks:  # only empty tables, like calls_by_end_reason = {}
        problems.append((place, "nothing to check: the tables given are empty"))
    return TotalsExpectation(i, model.org, checks)


def _some(fields: Sequence[str]) -> str:
    return ", ".join(fields[:-1]) + " or " + fields[-1]


def _check_org(
    place: str, raw: dict[str, Any], context: Context, problems: list[tuple[str, str]]
) -> None:
    org = raw.get("org")
    if isinstance(org, str) and org and org not in context.org_ids:
        problems.append((f"{place}.org", f"unknown org {show(org)}"))


def _check_times(
    place: str, raw: dict[str, Any], context: Context, problems: list[tuple[str, str]]
) -> None:
    """Instants after the end can never be seen; say so now rather than fail after the run."""
    if context.end_ms is None:
        return
    for key in _TIME_FIELDS:
        if key not in raw:
            continue
        try:
            bound = _time_bound(raw[key])
        except ValueError:
            continue  # the model has said what is wrong with it
        earliest = bound.low if bound.low is not None else 0
        if earliest > context.end_ms:
            problems.append(
                (f"{place}.{key}", f"{say_ms(earliest)} is after the end of the simulation "
                                   f"({say_ms(context.end_ms)})")
            )


def pool_problems(expectations: Sequence[Expectation], setup: RatingSetup) -> list[tuple[str, str]]:
    """Pools named by expectations must exist, as the ledger names them (`pool_capacities`).

    Separate from `parse_expectations` because an org's pools follow from its users' licenses
    and the plans, which are known only once the rest of the scenario is valid.
    """
    named = [
        e for e in expectations
        if (isinstance(e, CallExpectation) and e.checks.get("pool"))
        or (isinstance(e, TotalsExpectation) and any(k.startswith("pool") for k in e.checks))
    ]
    if not named:
        return []  # pool_capacities walks every user: skip it when no pool is named
    pools = [(o, name) for o, name, _ in pool_capacities(setup)]
    every = list(dict.fromkeys(name for _, name in pools))
    org_ids = [org.id for org in setup.orgs]
    problems = []
    for e in named:
        place = f"expect[{e.index}]"
        if isinstance(e, CallExpectation):
            pool = e.checks["pool"]
            if pool not in every:
                problems.append((f"{place}.pool", f"no pool {show(pool)} in the scenario "
                                 f'(pools: {_listed(every)}; "" for none)'))
            continue
        assert isinstance(e, TotalsExpectation)
        if e.org is None:
            own, whose = every, "the scenario has"
        else:
            o = org_ids.index(e.org)
            own = [name for org, name in pools if org == o]
            whose = f"org {show(e.org)} has"
        for key in e.checks:
            group, _, name = key.partition(".")
            if group in ("pool_s_by_pool", "pool_remaining_s") and name not in own:
                problem = f"no pool {show(name)}: {whose} {_listed(own)}"
                problems.append((f"{place}.{group}", problem))
    return problems


def _listed(names: Sequence[str]) -> str:
    return ", ".join(show(n) for n in names) if names else "no pools"
