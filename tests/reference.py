"""Sequential reference implementation of SPEC §3 and docs/rating-rules.md: the test oracle.

Written for obviousness, not speed.  Every happening (an arrival, a call's next boundary
or hang-up, a month refill, a lot expiry, the start) is an entry in one priority queue
keyed by (time, org).  The simulation pops one *org instant* at a time and applies the
rules in the order SPEC §3 lists them:

    credits purchase (t = 0) -> refill_pools -> expire_lots -> hang_up
    -> charge_increment (by answer instant, call_id) -> recharge_check

Organisations never share state, so processing org instants in (time, org index) order
yields events.jsonl order directly (rules item 8).  Nothing here knows about windows or
vectorisation: the rating core must reproduce these results whatever batches it is fed.

Ambiguities the SPEC/rules leave open, and what this oracle decides (keep in sync with
the engine; the differential test holds them together):

* A call whose hang-up equals its answer instant (holding 0) is not charged at all: its
  first boundary `a` fails "hang-up strictly after b", and hang-ups precede charges.
  It ends `hangup` with billed 0 (after routing and licensing, which still apply).
* The expiry of a lot whose rest is already 0 is not an org instant (rules item 1: only a
  lot with a positive rest, one that emits `credits_expired`, makes one), so it carries no
  recharge check.
* A credit cost of 0 (per_minute 0) is payable whenever credits are allowed, even with a
  balance of 0 or no `[orgs.credits]` table.
"""

from __future__ import annotations

import bisect
import calendar
import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from rating_core._model import (
    CallKind,
    Credits,
    MS_PER_S,
    Org,
    RatingSetup,
    Arrivals,
    Tariff,
    User,
    format_number,
)

CdrRow = tuple
"""(call_id, org_id, user_id, call_type, from_number, to_number, destination_country, zone,
start_ms, end_ms, billed_s, pool, pool_s, credits_micro, end_reason)"""

EventRow = tuple
"""(time_ms, org_id, event, amount_micro_or_None, balance_micro_or_None, reason_or_None)"""

_ONE_MS = timedelta(milliseconds=1)


# --------------------------------------------------------------------------- calendar


def ms_between(earlier: datetime, later: datetime) -> int:
    """Whole milliseconds from `earlier` to `later` (floor)."""
    return (later - earlier) // _ONE_MS


def add_months(moment: datetime, months: int) -> datetime:
    """Same day and time `months` later, the day clamped to that month's last day."""
    year, month0 = divmod(moment.month - 1 + months, 12)
    year += moment.year
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return moment.replace(year=year, month=month0 + 1, day=min(moment.day, last_day))


def month_starts_ms(start: datetime, end_ms: int) -> list[int]:
    """Refill instants: each 1st of month 00:00 UTC strictly after start, before end (item 3)."""
    first = datetime(start.year, start.month, 1, tzinfo=timezone.utc)
    starts = []
    moment = add_months(first, 1)
    while (offset := ms_between(start, moment)) < end_ms:
        starts.append(offset)
        moment = add_months(moment, 1)
    return starts


def lot_expiry_ms(start: datetime, bought_ms: int) -> int:
    """A lot bought at `bought_ms` expires 12 calendar months later (rules item 5)."""
    bought = start + timedelta(milliseconds=bought_ms)
    return ms_between(start, add_months(bought, 12))


def card_invalid_from_ms(start: datetime, card_expires: date | None) -> int | None:
    """First instant at which the card no longer works: 00:00 UTC after `card_expires`."""
    if card_expires is None:
        return None
    midnight_after = datetime.combine(card_expires + timedelta(days=1), time(), timezone.utc)
    return ms_between(start, midnight_after)


# --------------------------------------------------------------------------- routing


def longest_prefix(tariffs: tuple[Tariff, ...], digits: int) -> Tariff | None:
    """The tariff whose prefix is the longest prefix of `digits` (None: unroutable)."""
    if digits <= 0:
        return None
    number = str(digits)
    matches = [t for t in tariffs if number.startswith(t.prefix)]
    return max(matches, key=lambda t: len(t.prefix), default=None)


def credit_cost_micro(per_minute_micro: int, seconds: int) -> int:
    """Cost of `seconds` paid from credits: ceil(per_minute × r / 60) (rules item 11)."""
    return -(-per_minute_micro * seconds // 60)


def pool_capacities_s(setup: RatingSetup, org: Org) -> dict[str, int]:
    """SPEC §3 "Pools": 60 × the sum of plan minutes of the contributing users."""
    plans = setup.plans
    minutes: dict[str, int] = {}

    def add(pool: str, m: int) -> None:
        minutes[pool] = minutes.get(pool, 0) + m

    for user in org.users:
        lic = user.effective_licenses
        domestic = plans.domestic_minutes.get(user.country, plans.domestic_minutes["default"])
        if "domestic_calling_plan" in lic or "international_calling_plan" in lic:
            add(f"domestic:{user.country}", domestic)
        if "international_calling_plan" in lic:
            add(f"international:{user.country}", plans.international_minutes)
        if "audio_conferencing" in lic:
            add("dial_out", plans.dial_out_minutes)
    return {pool: 60 * m for pool, m in minutes.items()}


# --------------------------------------------------------------------------- state


@dataclass(eq=False)
class Lot:
    """One purchase of credits.  Lots are spent and expired in expiry order, ties in purchase
    order; that is purchase order except around a leap day: a lot bought on 02-29 expires on
    02-28 of the next year at its own time of day, before a lot bought on 02-28 later in the
    day."""

    bought_ms: int
    expires_ms: int
    rest_micro: int


@dataclass
class Ledger:
    """An organisation's pools and credits."""

    index: int
    org: Org
    capacity_s: dict[str, int]
    pool_left_s: dict[str, int]
    lots: list[Lot] = field(default_factory=list)  # expiry order, ties in purchase order
    exhausted_reported: bool = False  # balance_exhausted sent since credits were last added
    no_retry_before_ms: int = 0  # after a failed recharge: t_fail + retry_after

    @property
    def credits(self) -> Credits | None:
        return self.org.credits

    @property
    def balance_micro(self) -> int:
        return sum(lot.rest_micro for lot in self.lots)


@dataclass(eq=False)
class Call:
    """One call from arrival to its CDR."""

    call_id: int
    org: int
    user: User | None
    kind: CallKind
    from_number: int
    to_number: int
    start_ms: int
    hangup_ms: int
    call_type: str = ""
    country: str = ""
    zone: str = ""
    tariff: Tariff | None = None
    pool: str | None = None
    credits_allowed: bool = False
    next_boundary_ms: int = 0
    charged_first: bool = False
    billed_s: int = 0
    pool_s: int = 0
    credits_micro: int = 0
    end_ms: int | None = None
    end_reason: str | None = None

    def increment_s(self) -> int:
        """The first increment at the answer, `next` seconds at every later boundary."""
        assert self.tariff is not None
        return self.tariff.next_s if self.charged_first else self.tariff.first_s


@dataclass
class ReferenceState:
    """Final ledger state, for tests that check balances and pools."""

    balances_micro: dict[str, int]
    pools_left_s: dict[str, dict[str, int]]
    lots: dict[str, list[tuple[int, int]]]  # (expires_ms, rest_micro) of each lot with a rest, in order


# --------------------------------------------------------------------------- simulation

# Entry kinds in the queue.  Their relative order inside one org instant is imposed by
# `org_instant`, not by these values.
START, REFILL, EXPIRY, ARRIVAL, CALL = "start", "refill", "expiry", "arrival", "call"


class ReferenceSim:
    """One run of the rules over a whole simulation, one org instant at a time."""

    def __init__(self, setup: RatingSetup, arrivals: Arrivals) -> None:
        self.setup = setup
        self.users = [user for _, user in setup.users()]
        self.ledgers = [
            Ledger(i, org, caps := pool_capacities_s(setup, org), dict(caps))
            for i, org in enumerate(setup.orgs)
        ]
        self.card_invalid_from = [
            card_invalid_from_ms(setup.start, org.credits.card_expires if org.credits else None)
            for org in setup.orgs
        ]
        self.queue: list[tuple[int, int, int, str, object]] = []
        self.seq = 0
        self.cdrs: list[Call] = []
        self.events: list[EventRow] = []
        self.active: dict[int, Call] = {}  # connected calls by call_id
        self.schedule_start_and_refills()
        for call in calls_from_arrivals(arrivals, self.users):
            assert 0 <= call.start_ms < setup.end_ms, "arrivals must lie in [0, end)"
            self.push(call.start_ms, call.org, ARRIVAL, call)

    # -- queue

    def push(self, t: int, org: int, kind: str, payload: object = None) -> None:
        """Schedule something for org `org` at `t`; at or after the end nothing happens."""
        if t < self.setup.end_ms:
            heapq.heappush(self.queue, (t, org, self.seq, kind, payload))
            self.seq += 1

    def schedule_start_and_refills(self) -> None:
        """Every org has an instant at 0 (item 1) and one at each refill (item 3)."""
        for org in range(len(self.setup.orgs)):
            self.push(0, org, START)
            for t in month_starts_ms(self.setup.start, self.setup.end_ms):
                self.push(t, org, REFILL)

    def pop_org_instant(self) -> tuple[int, int, list[tuple[str, object]]]:
        """Everything queued for the earliest (time, org)."""
        t, org, _, kind, payload = heapq.heappop(self.queue)
        entries = [(kind, payload)]
        while self.queue and self.queue[0][:2] == (t, org):
            entries.append(heapq.heappop(self.queue)[3:])
        return t, org, entries

    def run(self) -> None:
        while self.queue:
            self.org_instant(*self.pop_org_instant())
        self.end_of_simulation()

    # -- one org instant, in SPEC §3 "Order within one instant"

    def org_instant(self, t: int, org: int, entries: list[tuple[str, object]]) -> None:
        """Apply one org instant; admissions and hang-ups touch no ledger, so their mutual
        order is immaterial, but both precede every charge of the instant."""
        ledger = self.ledgers[org]
        kinds = [kind for kind, _ in entries]
        if START in kinds:
            self.buy_initial_credits(ledger)
        if REFILL in kinds:
            self.refill_pools(t, ledger)
        expiring = [lot for kind, lot in entries if kind == EXPIRY]
        is_instant = any(k != EXPIRY for k in kinds) or any(lot.rest_micro > 0 for lot in expiring)
        self.expire_lots(t, ledger, expiring)
        to_charge = []
        for kind, call in entries:
            if kind == CALL and call.hangup_ms == t:
                self.end_call(call, t, "hangup")
            elif kind == CALL:
                to_charge.append(call)
            elif kind == ARRIVAL and self.admit(call):
                if call.hangup_ms == t:  # holding 0: hang-up precedes the first charge
                    self.end_call(call, t, "hangup")
                else:
                    to_charge.append(call)
        for call in sorted(to_charge, key=lambda c: (c.start_ms, c.call_id)):
            self.charge_increment(t, ledger, call)
        if is_instant:
            self.recharge_check(t, ledger)

    # -- credits

    def event(self, t: int, ledger: Ledger, name: str, amount=None, balance=None, reason=None):
        self.events.append((t, ledger.org.id, name, amount, balance, reason))

    def buy_lot(self, t: int, ledger: Ledger, amount: int, event: str) -> None:
        """A purchase adds a lot expiring 12 months later and re-arms balance_exhausted."""
        lot = Lot(t, lot_expiry_ms(self.setup.start, t), amount)
        bisect.insort_right(ledger.lots, lot, key=lambda lot: lot.expires_ms)  # kept in expiry order
        ledger.exhausted_reported = False
        self.push(lot.expires_ms, ledger.index, EXPIRY, lot)
        self.event(t, ledger, event, amount=amount, balance=ledger.balance_micro)

    def buy_initial_credits(self, ledger: Ledger) -> None:
        """Item 4: the `initial` lot is bought first thing at t = 0, when positive."""
        if ledger.credits and ledger.credits.initial_micro > 0:
            self.buy_lot(0, ledger, ledger.credits.initial_micro, "credits_purchased")

    def expire_lots(self, t: int, ledger: Ledger, lots: list[Lot]) -> None:
        """At expiry a lot's rest is removed; the event only when the rest was positive."""
        for lot in sorted(lots, key=ledger.lots.index):
            ledger.lots.remove(lot)
            if lot.rest_micro > 0:
                self.event(t, ledger, "credits_expired", amount=lot.rest_micro,
                           balance=ledger.balance_micro)

    def take_credits(self, ledger: Ledger, cost: int) -> None:
        """Spend from the lot that expires first, spilling into the next ones."""
        for lot in ledger.lots:
            taken = min(lot.rest_micro, cost)
            lot.rest_micro -= taken
            cost -= taken
        assert cost == 0

    def recharge_check(self, t: int, ledger: Ledger) -> None:
        """After every org instant: one auto-recharge attempt if below the threshold."""
        credits = ledger.credits
        if credits is None or not credits.auto_recharge:
            return
        if ledger.balance_micro >= credits.recharge_below_micro or t < ledger.no_retry_before_ms:
            return
        invalid_from = self.card_invalid_from[ledger.index]
        if invalid_from is None or t < invalid_from:
            self.buy_lot(t, ledger, credits.recharge_amount_micro, "recharge_succeeded")
        else:
            ledger.no_retry_before_ms = t + credits.retry_after_ms
            self.event(t, ledger, "recharge_failed", balance=ledger.balance_micro,
                       reason="card_expired")

    # -- pools

    def refill_pools(self, t: int, ledger: Ledger) -> None:
        """1st of the month: every pool back to capacity, no rollover."""
        ledger.pool_left_s = dict(ledger.capacity_s)
        self.event(t, ledger, "pools_refilled")

    # -- calls

    def admit(self, call: Call) -> bool:
        """SPEC §3 admission steps 1-4; a rejected call gets its CDR at once."""
        if call.kind == CallKind.TOLL_FREE:
            return self.admit_toll_free(call)
        call.call_type = "outbound" if call.kind == CallKind.OUTBOUND else "conference_dial_out"
        tariff = longest_prefix(self.setup.tariffs, call.to_number)
        if tariff is None:
            return self.reject(call, "unroutable")
        call.tariff, call.country, call.zone = tariff, tariff.country, tariff.zone
        licenses = call.user.effective_licenses
        if call.kind == CallKind.OUTBOUND:
            domestic = tariff.country == call.user.country
            call.call_type = "domestic" if domestic else "international"
            has_plan = {"domestic_calling_plan", "international_calling_plan"} & licenses
            licensed = "phone_system" in licenses and bool(has_plan)
        else:
            licensed = "audio_conferencing" in licenses
        if not licensed:
            return self.reject(call, "not_licensed")
        call.pool = self.funding_pool(call, licenses)
        call.credits_allowed = "communications_credits" in licenses
        return True

    def admit_toll_free(self, call: Call) -> bool:
        """Rules item 10: our toll-free number, rated by the caller's prefix; always credits."""
        call.call_type = "toll_free"
        ours = {int(n.lstrip("+")) for n in self.setup.orgs[call.org].toll_free_numbers}
        tariff = longest_prefix(self.setup.toll_free_tariffs, call.from_number)
        if call.to_number not in ours or tariff is None:
            return self.reject(call, "unroutable")
        call.tariff, call.credits_allowed = tariff, True
        return True

    def funding_pool(self, call: Call, licenses: frozenset[str]) -> str | None:
        """SPEC §3 admission step 4 (pool part)."""
        if call.tariff.plan_excluded:
            return None
        if call.call_type == "domestic":
            return f"domestic:{call.user.country}"
        if call.call_type == "international" and "international_calling_plan" in licenses:
            return f"international:{call.user.country}"
        if call.call_type == "conference_dial_out" and call.zone in self.setup.plans.dial_out_zones:
            return "dial_out"
        return None

    def reject(self, call: Call, reason: str) -> bool:
        self.end_call(call, call.start_ms, reason)
        return False

    def charge_increment(self, t: int, ledger: Ledger, call: Call) -> None:
        """Pay one increment atomically from pool then credits; a failure ends the call."""
        s = call.increment_s()
        pool_s = min(ledger.pool_left_s.get(call.pool, 0), s) if call.pool else 0
        rest_s = s - pool_s
        cost = credit_cost_micro(call.tariff.per_minute_micro, rest_s) if rest_s > 0 else 0
        if rest_s > 0 and not call.credits_allowed:
            return self.fail_increment(t, call)
        if rest_s > 0 and ledger.balance_micro < cost:
            self.report_exhausted(t, ledger)
            return self.fail_increment(t, call)
        if pool_s:
            ledger.pool_left_s[call.pool] -= pool_s
        self.take_credits(ledger, cost)
        call.billed_s += s
        call.pool_s += pool_s
        call.credits_micro += cost
        call.charged_first = True
        call.next_boundary_ms = t + s * MS_PER_S
        self.schedule_next(call)

    def report_exhausted(self, t: int, ledger: Ledger) -> None:
        """Rules item 7: at most once until credits are next added."""
        if not ledger.exhausted_reported:
            ledger.exhausted_reported = True
            self.event(t, ledger, "balance_exhausted", balance=ledger.balance_micro)

    def fail_increment(self, t: int, call: Call) -> None:
        """First increment: never connected.  A later one: disconnected at this boundary."""
        if call.charged_first:
            self.end_call(call, t, "dropped_balance_exhausted")
        else:
            self.end_call(call, call.start_ms, "blocked_no_balance")

    def schedule_next(self, call: Call) -> None:
        """A connected call's next happening: its hang-up if not after its next boundary."""
        self.active[call.call_id] = call
        self.push(min(call.hangup_ms, call.next_boundary_ms), call.org, CALL, call)

    def end_call(self, call: Call, t: int, reason: str) -> None:
        call.end_ms, call.end_reason = t, reason
        self.active.pop(call.call_id, None)
        self.cdrs.append(call)

    def end_of_simulation(self) -> None:
        """Item 2: at `end` nothing is charged; a hang-up exactly at `end` is still `hangup`."""
        end = self.setup.end_ms
        for call in list(self.active.values()):
            self.end_call(call, end, "hangup" if call.hangup_ms == end else "simulation_end")

    # -- outputs

    def cdr_rows(self) -> list[CdrRow]:
        rows = [cdr_row(self.setup, call) for call in self.cdrs]
        return sorted(rows, key=lambda row: (row[9], row[0]))

    def state(self) -> ReferenceState:
        return ReferenceState(
            {lg.org.id: lg.balance_micro for lg in self.ledgers},
            {lg.org.id: dict(lg.pool_left_s) for lg in self.ledgers},
            {lg.org.id: [(lot.expires_ms, lot.rest_micro) for lot in lg.lots if lot.rest_micro > 0]
             for lg in self.ledgers},
        )


def calls_from_arrivals(arrivals: Arrivals, users: list[User]) -> list[Call]:
    """Plain-int Call objects from the struct-of-arrays batch."""
    calls = []
    for i in range(len(arrivals)):
        user_index = int(arrivals.user[i])
        start = int(arrivals.t_ms[i])
        calls.append(Call(
            call_id=int(arrivals.call_id[i]),
            org=int(arrivals.org[i]),
            user=users[user_index] if user_index >= 0 else None,
            kind=CallKind(int(arrivals.kind[i])),
            from_number=int(arrivals.from_number[i]),
            to_number=int(arrivals.to_number[i]),
            start_ms=start,
            hangup_ms=start + int(arrivals.holding_ms[i]),
        ))
    return calls


def cdr_row(setup: RatingSetup, call: Call) -> CdrRow:
    """The cdrs.csv columns of one call, as plain values (rules item 9)."""
    toll_free = call.call_type == "toll_free"
    return (
        call.call_id,
        setup.orgs[call.org].id,
        "" if call.user is None else call.user.id,
        call.call_type,
        format_number(call.from_number),
        format_number(call.to_number),
        "" if toll_free else call.country,
        "" if toll_free else call.zone,
        call.start_ms,
        call.end_ms,
        call.billed_s,
        call.pool if call.pool_s > 0 else "",
        call.pool_s,
        call.credits_micro,
        call.end_reason,
    )


def run_reference(setup: RatingSetup, arrivals: Arrivals, return_state: bool = False):
    """Rate `arrivals` under `setup` one event at a time.

    Returns (cdr rows sorted by (end_ms, call_id), event rows in events.jsonl order),
    plus a `ReferenceState` with final balances and pools when `return_state`.
    """
    sim = ReferenceSim(setup, arrivals)
    sim.run()
    if return_state:
        return sim.cdr_rows(), sim.events, sim.state()
    return sim.cdr_rows(), sim.events
