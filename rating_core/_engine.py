"""RatingEngine: the sans-IO core.  Arrivals and a target instant in; CDRs and ledger events out.

The caller (the Trio switch, the server, a test) feeds arrivals window by
window with `advance(arrivals, until)`; the engine processes every instant
before `until` in SPEC §3 order and returns the calls that ended and the
ledger events.  Results do not depend on how the timeline is cut into windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._admission import Admission
from ._calls import CallTable
from ._charging import Charger, OrgInstants, WindowOutcome
from ._events import EventColumns
from ._increments import ceil_cost
from ._ledger import NEVER, Ledger
from ._model import (
    CDR_DTYPES,
    Arrivals,
    CdrBatch,
    EndReason,
    LedgerEvent,
    RatingSetup,
    Tables,
)
from ._tuning import Tuning
from ._users import UserIds

MAX_WINDOW_MS = 3_600_000  # bounds the rows an org's slow path may expand in one window ...
QUIET_CALL_HOURS = 1_024  # ... unless so few calls are connected that this many call-hours ...
LONGEST_WINDOW_MS = 7 * 24 * 3_600_000  # ... allow a longer one, up to this
FOREVER_MS = 2**62  # hang-up instant of a call whose holding time is unknown (server mode)


@dataclass
class Step:
    """What one `advance` produced, in output order."""

    cdrs: CdrBatch
    events: EventColumns = field(default_factory=EventColumns.empty)
    increments: int = 0  # increments paid


class RatingEngine:
    """Rates calls for every org of a `RatingSetup` as simulated time advances.

    Time is integer ms since the setup's start; the engine only moves forward.
    Results (CDRs and ledger events) depend only on the setup and the arrivals,
    never on how `advance` cuts the timeline into windows nor on the tuning.
    """

    def __init__(self, setup: RatingSetup, tuning: Tuning = Tuning()) -> None:
        """Build the ledger (pools, balances, initial lots) and the admission tables.

        Args:
          setup: the orgs, users, tariffs, plans and simulated span to rate.
          tuning: sizes of the fast paths (`Tuning`); they change speed, never results.
        """
        self.setup = setup
        self.ledger = Ledger(setup)
        self.admission = Admission(setup, self.ledger, tuning.small_batch)
        self.calls = CallTable(tuning.watch_ms)
        self._charger = Charger(self.ledger, self.calls, len(setup.orgs), tuning, setup.end_ms)
        self.now = 0
        self._fixed_done = -1
        self._start_events = self.ledger.start_events()
        self.tables = Tables(
            org_ids=tuple(o.id for o in setup.orgs),
            user_ids=UserIds(org.users for org in setup.orgs),
            countries=self.admission.countries,
            zones=self.admission.zones,
            pool_names=self.ledger.pool_names,
            pool_orgs=tuple(int(o) for o in self.ledger.pool_org),
        )

    # -- public API -----------------------------------------------------
    def advance(self, arrivals: Arrivals, until: int) -> Step:
        """Process every instant in [now, until) in SPEC §3 order and move `now` to `until`.

        Args:
          arrivals: the calls set up in [now, until), in call_id order (ascending t_ms).
          until: the instant to advance to (ms); clamped to the setup's `end_ms`.  An
            `until` at or before `now` processes nothing.

        Returns:
          A `Step`: the CDRs of the calls that ended (rejected, refused or hung up), sorted
          by (end_ms, call_id); the ledger events, sorted by (time_ms, org); and the number
          of increments paid.

        Raises:
          ValueError: an arrival lies outside [now, until).
        """
        until = min(until, self.setup.end_ms)
        if len(arrivals) and (arrivals.t_ms[0] < self.now or arrivals.t_ms[-1] >= until):
            raise ValueError("arrivals must lie in [now, until)")
        parts: list[CdrBatch] = []
        events: list[EventColumns] = []
        increments = 0
        t, pos = self.now, 0
        while t < until:
            fixed_events, touched = self._fixed_events(t)
            t1 = min(until, self.ledger.next_refill_after(t), t + self._quiet_span(t, arrivals, pos))
            end = int(np.searchsorted(arrivals.t_ms, t1, side="left"))
            cdrs, ev, n = self._window(t, t1, arrivals.take(slice(pos, end)), touched, fixed_events)
            parts.append(cdrs)
            events.append(ev)
            increments += n
            t, pos = t1, end
        self.now = max(self.now, until)
        return Step(_concat(parts), EventColumns.concat(events), increments)

    def hangup(self, call_ids: NDArray[np.int64], t_ms: int | NDArray[np.int64]) -> None:
        """Bring forward the hang-up instant of connected calls (server mode).

        Args:
          call_ids: the calls that hang up; ids of calls not connected (ended, unknown) are
            ignored, and a call keeps the earlier of its hang-up instants.
          t_ms: one instant for every call, or one per call (a server tick's hang-ups).

        Raises:
          ValueError: an instant is before `now`.
        """
        call_ids = np.asarray(call_ids, dtype=np.int64)
        t = np.asarray(t_ms, dtype=np.int64)
        if t.ndim == 0:
            t = np.full(call_ids.shape, t)
        if len(t) and int(t.min()) < self.now:
            raise ValueError("cannot hang up in the past")
        ids = self.calls.view("call_id")
        if not len(ids):
            return
        pos = np.minimum(np.searchsorted(ids, call_ids), len(ids) - 1)
        ok = (ids[pos] == call_ids) & self.calls.view("alive")[pos]
        np.minimum.at(self.calls.col["hangup_ms"], pos[ok], t[ok])
        self.calls.watch(pos[ok])

    def finish(self, at_ms: int | None = None) -> Step:
        """End the simulation: every call still connected ends at `at_ms`.

        Args:
          at_ms: the end instant, `end_ms` when None; an earlier one (= `now`) ends a run
            early, as on Ctrl-C.  Calls whose hang-up falls on it end `hangup`, the others
            `simulation_end`.

        Returns:
          A `Step` with those calls' CDRs (in call_id order) and no events.

        Raises:
          ValueError: the engine has not advanced to the end instant yet.
        """
        end = self.setup.end_ms if at_ms is None else at_ms
        if self.now < end:
            raise ValueError("advance to the end of the simulation before finishing")
        rows = self.calls.active()
        reason = np.where(
            self.calls.col["hangup_ms"][rows] == end, EndReason.HANGUP, EndReason.SIMULATION_END
        )
        cdrs = self._ended_cdrs(rows, np.full(len(rows), end, dtype=np.int64), reason)
        self.calls.end(rows)
        return Step(cdrs)

    def next_due_ms(self) -> int:
        """The next instant at which something is due without a new arrival (for idle waits).

        Returns:
          The earliest of the next refill or lot expiry, increment boundary and hang-up,
          capped at `end_ms`; a lower bound when only the call table's watch is consulted,
          never later than the true instant.
        """
        nxt = self.ledger.next_fixed_after(self.now - 1)
        c = self.calls
        bound = c.next_due_bound() if c.watch_until > self.now else None
        if bound is not None:  # the watch answers without a pass over the table
            nxt = min(nxt, bound)
        elif c.n > c.dead:  # one pass over the table, no masked copies
            due = np.minimum(c.view("next_ms"), c.view("hangup_ms"))
            nxt = min(nxt, int(due.min(where=c.view("alive"), initial=NEVER)))
        return min(nxt, self.setup.end_ms)

    def balances(self) -> NDArray[np.int64]:
        """A copy of every org's balance (micro-units), by org index."""
        return self.ledger.balance.copy()

    def pool_remaining(self) -> NDArray[np.int64]:
        """A copy of every pool's remaining seconds, by pool index (`tables.pool_names`)."""
        return self.ledger.pool_remaining.copy()

    def active_by_type(self) -> NDArray[np.int64]:
        """Connected calls per CallType code."""
        alive = self.calls.view("alive")
        return np.bincount(self.calls.view("call_type")[alive], minlength=5)

    # -- one window -----------------------------------------------------
    def _quiet_span(self, t: int, arrivals: Arrivals, pos: int) -> int:
        """How far the next window may reach: an hour, longer when few calls are connected
        (`QUIET_CALL_HOURS`: each window has a fixed cost, which at a few calls an hour was most
        of the work).  When no call is connected, as far past the next arrival as one
        connected call allows: nothing can happen before it but refills, which end windows
        anyway, and lot expiries, which the charger finds inside a window (a window is never
        longer than a month, so no lot bought in it expires in it)."""
        connected = self.calls.n - self.calls.dead
        span = min(LONGEST_WINDOW_MS, max(1, QUIET_CALL_HOURS // max(connected, 1)) * MAX_WINDOW_MS)
        if connected:
            return span
        first = int(arrivals.t_ms[pos]) if pos < len(arrivals) else NEVER
        return first - t + span

    def _fixed_events(self, t: int) -> tuple[list[LedgerEvent], NDArray[np.bool_]]:
        touched = np.zeros(len(self.setup.orgs), dtype=bool)
        events: list[LedgerEvent] = []
        if t == 0 and self._fixed_done < 0:
            events += self._start_events
            touched[:] = True
        if t > self._fixed_done:
            ev, tch = self.ledger.apply_refill(t)
            events += ev
            touched |= tch
            self._fixed_done = t
        return events, touched

    def _window(self, t0, t1, arr: Arrivals, touched, events):
        # Parts that are empty are skipped rather than built: in server mode a window is one
        # millisecond with a few arrivals, and each empty pass costs as much as a full one.
        parts: list[CdrBatch] = []
        if len(arr):
            adm = self.admission.admit(arr)
            rejected = adm.reject >= 0
            ok: NDArray[np.bool_] | slice = slice(None)  # every arrival goes on to be charged
            if rejected.any():
                parts.append(self._rejected_cdrs(arr, adm, rejected))
                ok = ~rejected
            self._connect(arr, adm, ok)
        t_orgs = np.flatnonzero(touched)
        other = OrgInstants(
            org=np.concatenate([arr.org.astype(np.int64), t_orgs]),
            t=np.concatenate([arr.t_ms, np.full(len(t_orgs), t0, dtype=np.int64)]),
        )
        candidates = self.calls.due_candidates(t1)  # after _connect: the new rows are in it
        outcome = self._charger.charge_window(t0, t1, other, candidates)
        if outcome.ended:
            parts.append(self._failed_cdrs(outcome))
        parts.append(self._hangup_cdrs(t1, candidates))
        self.calls.compact()
        if candidates is None:
            self.calls.rewatch(t1)
        else:
            self.calls.prune_watch()
        cdrs = _concat(parts)
        if len(cdrs) > 1:
            order = np.lexsort((cdrs.call_id, cdrs.end_ms))
            if not np.array_equal(order, np.arange(len(order))):  # a tick's hang-ups often are
                cdrs = cdrs.take(order)
        # a bulk recharge ends its org instant: after the instant's other events
        events = EventColumns.concat([EventColumns.from_events(events + outcome.events), *outcome.recharges])
        events = events.in_time_order()  # stable: in-instant order kept
        return cdrs, events, outcome.increments

    def _connect(self, arr: Arrivals, adm, ok: NDArray[np.bool_] | slice) -> None:
        t = arr.t_ms[ok]
        self.calls.append(
            {
                "call_id": arr.call_id[ok],
                "org": arr.org[ok],
                "user": arr.user[ok],
                "call_type": adm.call_type[ok],
                "from_number": arr.from_number[ok],
                "to_number": arr.to_number[ok],
                "country": adm.country[ok],
                "zone": adm.zone[ok],
                "start_ms": t,
                "hangup_ms": t + np.minimum(arr.holding_ms[ok], FOREVER_MS),
                "next_ms": t,
                "inc_s": adm.first_s[ok],
                "next_s": adm.next_s[ok],
                "inc_cost": ceil_cost(adm.rate[ok], adm.first_s[ok]),
                "next_cost": ceil_cost(adm.rate[ok], adm.next_s[ok]),
                "pool": adm.pool[ok],
                "credits_ok": adm.credits_ok[ok],
                "rate": adm.rate[ok],
                "billed_s": 0,
                "pool_s": 0,
                "credits_micro": 0,
                "alive": True,
            }
        )

    # -- CDRs -------------------------------------------------------------
    def _rejected_cdrs(self, arr: Arrivals, adm, m: NDArray[np.bool_]) -> CdrBatch:
        n = int(m.sum())
        zeros = np.zeros(n, dtype=np.int64)
        return CdrBatch(
            call_id=arr.call_id[m], org=arr.org[m].astype(np.int32), user=arr.user[m],
            call_type=adm.call_type[m], from_number=arr.from_number[m], to_number=arr.to_number[m],
            country=adm.country[m], zone=adm.zone[m], start_ms=arr.t_ms[m], end_ms=arr.t_ms[m],
            billed_s=zeros, pool=np.full(n, -1, dtype=np.int32), pool_s=zeros, credits_micro=zeros,
            end_reason=adm.reject[m],
        )

    def _failed_cdrs(self, outcome: WindowOutcome) -> CdrBatch:
        return self._ended_cdrs(*outcome.ended.arrays())

    def _hangup_cdrs(self, t1: int, candidates: NDArray[np.intp] | None) -> CdrBatch:
        c = self.calls
        if candidates is None:
            rows = np.flatnonzero(c.view("alive") & (c.view("hangup_ms") < t1))
        else:
            rows = candidates[c.col["alive"][candidates] & (c.col["hangup_ms"][candidates] < t1)]
        if not len(rows):
            return _NO_CDRS
        cdrs = self._ended_cdrs(rows, c.col["hangup_ms"][rows], np.full(len(rows), EndReason.HANGUP))
        c.end(rows)
        return cdrs

    def _ended_cdrs(self, rows, end_ms, reason) -> CdrBatch:
        col = self.calls.col
        pool_s = col["pool_s"][rows]
        return CdrBatch(
            call_id=col["call_id"][rows], org=col["org"][rows].astype(np.int32),
            user=col["user"][rows], call_type=col["call_type"][rows],
            from_number=col["from_number"][rows], to_number=col["to_number"][rows],
            country=col["country"][rows], zone=col["zone"][rows], start_ms=col["start_ms"][rows],
            end_ms=end_ms, billed_s=col["billed_s"][rows],
            pool=np.where(pool_s > 0, col["pool"][rows], -1).astype(np.int32), pool_s=pool_s,
            credits_micro=col["credits_micro"][rows], end_reason=np.asarray(reason, dtype=np.int8),
        )


# An empty batch with the dtypes every CDR part has (shared: nothing writes to empty arrays).
_NO_CDRS = CdrBatch(*(np.empty(0, dtype=dt) for dt in CDR_DTYPES))


def _concat(parts: list[CdrBatch]) -> CdrBatch:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _NO_CDRS
    if len(parts) == 1:
        return parts[0]
    return CdrBatch.concat(parts)
