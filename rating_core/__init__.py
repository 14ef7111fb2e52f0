"""callsim's rating core: pure, synchronous, vectorised (numpy), no I/O and no Trio.

Arrivals and simulated time go in; CDRs and ledger events come out.  See
SPEC §3 and docs/rating-rules.md for the rules it implements.
"""

from ._calendar import card_valid_until_ms, lot_expiry_ms, month_starts
from ._canonical import canonical_cdrs, canonical_events
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

__all__ = [
    "CALL_TYPE_NAMES", "CDR_DTYPES", "EVENT_KINDS", "EVENT_REASONS", "NO_AMOUNT", "NO_BALANCE", "CDR_FIELDS", "END_REASON_NAMES", "FOREVER_MS", "LICENSES", "MICRO", "MS_PER_S",
    "Arrivals", "CallKind", "CallType", "CdrBatch", "CdrBuffer", "Credits", "EndReason", "EventColumns", "LedgerEvent", "Org",
    "Plans", "PrefixTable", "RatingEngine", "RatingSetup", "Step", "Tables", "Tariff", "User",
    "canonical_cdrs", "canonical_events", "card_valid_until_ms", "format_number", "lot_expiry_ms", "month_starts",
    "parse_number", "pool_capacities",
]
