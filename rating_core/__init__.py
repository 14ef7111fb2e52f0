"""callsim's rating core: pure, synchronous, vectorised (numpy), no I/O and no Trio.

Arrivals and simulated time go in; CDRs and ledger events come out.  The rules
it implements are SPEC §3, published as docs/rating-rules.md.  `RatingEngine`
is the door; `Tuning` sizes its fast paths (speed only, never results).

General layout
--------------
``_engine``      RatingEngine: windows of time, SPEC §3 order within an instant, CDRs.
``_admission``   admission of arrivals: the rules per call, tabulated once.
``_charging``    paying due increments: bulk passes for the ordinary orgs, exact
                 one-at-a-time stepping (``_stepper``) for orgs with special
                 instants every few increments.
``_stepper``     stepping orgs: the loop's input listed in SPEC §3 order, its outcome applied.
``_stepping``    the stepping loop, run by Python or compiled by numba, calling the
                 rules' own functions.
``_recharges``   a window's auto-recharges in closed form (bulk path).
``_expiries``    a window's lot expiries and the rests they remove (bulk path).
``_increments``  the increment rules, shared by the bulk and the stepping paths.
``_ledger``      pools, balances, lots, refills, expiries and the recharge rule.
``_calendar``    months, lot expiry, card validity as integer ms.
``_calls``       connected calls as columns; ``_columns`` grows columns by doubling.
``_model``       the setup, arrivals, CDR batches and ledger events (data only).
``_users``       an org's users with each group kept whole (``Users``).
``_routing``     longest-prefix match of numbers to tariff rows.
``_tuning``      the Tuning knobs.

Where each SPEC §3 rule lives (edit that one function; every path calls it)
------------------------------------------------------------------------------
=====================================  ==============================================
Admission 1, route                     ``_routing.PrefixTable.match`` (toll-free
                                       numbers: ``_admission.Admission._is_toll_free_number``)
Admission 1-2, rejection               ``_admission._reject``
Admission 2, license                   ``_admission._licensed``
Admission 3, call type                 ``_admission._call_type``
Admission 4, pool kind                 ``_admission._pool_kind``
Admission 4, credits allowed           ``_admission._credits_ok``
Pools, capacities                      ``_ledger.pool_capacities``
Pools, monthly refill                  ``_ledger.Ledger.apply_refill`` (instants:
                                       ``_calendar.month_starts``)
Increments, boundary instants          ``_increments.boundary_ms``
Paying one increment, pool part        ``_increments.pool_part``
Paying one increment, credit cost      ``_increments.ceil_cost``
Paying one increment, refusal          ``_increments.refused``
Credits taken from the first lot       ``_lots.LotQueue.take`` (lots kept in expiry
                                       order: ``_lots.LotQueue.insert``)
Failing, blocked vs dropped            ``_increments.refused_reason``
balance_exhausted, once until credits  ``_increments.exhausts`` (when) and
                                       ``_ledger.Ledger.exhausted_unreported`` (once;
                                       stepped: the flag ``reported`` of ``_stepping``'s loop)
Credits, each purchase is a lot       ``_ledger.Ledger.add_lots`` (many orgs:
                                       ``_ledger.Ledger.add_lots_many``; the initial
                                       ones: ``_ledger.Ledger.start_events``)
Credits, lot expiry (12 months)        ``_calendar._twelve_months_ms``; the rest
                                       removed: ``_ledger.expired_rest`` (bulk:
                                       ``_expiries.Expired``; stepped: the loop)
Credits, auto-recharge wanted          ``_ledger.recharge_wanted`` (for orgs:
                                       ``_ledger.Ledger.wants_recharge``)
Credits, no retry wait pending         ``_ledger.attempt_allowed`` (``_ledger.Ledger.may_attempt``)
Credits, card valid (attempt succeeds) ``_ledger.card_accepts`` (``_ledger.Ledger.card_valid``)
Credits, the attempt (lot or failure)  from the three clauses above: bulk
                                       ``_recharges.recharges_along`` (with
                                       ``_charging.Charger._first_special``); stepped: the
                                       loop of ``_stepping._loop_over``; dead orgs:
                                       ``_charging.Charger._fail_recharges``
Org instant (when a check may run)     ``_engine.RatingEngine._window`` (arrivals,
                                       refills), ``_charging.Charger._hangups`` and
                                       ``_expiries.Expired`` (expiries with a rest)
Order within one instant               ``_engine.RatingEngine._window`` (bulk) and
                                       ``_stepper.Stepper.run`` with the loop of
                                       ``_stepping._loop_over`` (stepped)
Credits, no attempt before retry_after ``_ledger.next_attempt_ms``
=====================================  ==============================================

The bulk paths also hold closed forms derived from these rules, to revisit when
one changes: ``_charging._Due`` counts each call's boundaries in a window and
``_charging._Boundaries`` lists them (``boundary_ms``); ``_recharges`` counts
recharges from the trigger (``wants_recharge``); ``_expiries.Expired`` totals
the rests of lot expiries as a running maximum (``expired_rest``); ``_charging``'s dead-org
passes (``_dead_at_start``, ``_dead_orgs``) prove that an org's balance cannot
change in a window.  The differential test (tests/rating_core/test_differential.py)
compares every path with the one-event-at-a-time reference: a changed rule is
done when it passes.
"""

from ._calendar import card_valid_until_ms, lot_expiry_ms, month_starts
from ._canonical import canonical_cdrs, canonical_events
from ._runs import group_sum
from ._engine import FOREVER_MS, RatingEngine, Step
from ._events import KINDS as EVENT_KINDS
from ._events import NO_AMOUNT, NO_BALANCE, EventColumns
from ._events import REASONS as EVENT_REASONS
from ._ledger import pool_capacities
from ._model import (
    CALL_TYPE_NAMES,
    CDR_DTYPES,
    CDR_FIELDS,
    END_REASON_NAMES,
    LICENSES,
    MICRO,
    MS_PER_S,
    Arrivals,
    CallKind,
    CallType,
    CdrBatch,
    CdrBuffer,
    Credits,
    EndReason,
    LedgerEvent,
    Org,
    Plans,
    RatingSetup,
    Tables,
    Tariff,
    User,
    format_number,
    parse_number,
)
from ._routing import PrefixTable
from ._tuning import Tuning
from ._users import UserGroup, UserIds, Users, user_ids

__all__ = [
    "CALL_TYPE_NAMES", "CDR_DTYPES", "EVENT_KINDS", "EVENT_REASONS", "NO_AMOUNT", "NO_BALANCE", "CDR_FIELDS", "END_REASON_NAMES", "FOREVER_MS", "LICENSES", "MICRO", "MS_PER_S",
    "Arrivals", "CallKind", "CallType", "CdrBatch", "CdrBuffer", "Credits", "EndReason", "EventColumns", "LedgerEvent", "Org",
    "Plans", "PrefixTable", "RatingEngine", "RatingSetup", "Step", "Tables", "Tariff", "User", "UserGroup", "UserIds", "Users",
    "canonical_cdrs", "canonical_events", "card_valid_until_ms", "format_number", "lot_expiry_ms", "month_starts",
    "parse_number", "pool_capacities", "user_ids",
    "group_sum", "Tuning",
]
