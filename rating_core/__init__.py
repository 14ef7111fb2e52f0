"""callsim's rating core: pure, synchronous, vectorised (numpy), no I/O and no Trio.

Arrivals and simulated time go in; CDRs and ledger events come out.  See
SPEC §3 and docs/rating-rules.md for the rules it implements.
"""

from ._calendar import lot_expiry_ms, month_starts
from ._canonical import canonical_cdrs, canonical_events
from ._engine import FOREVER_MS, RatingEngine, Step
from ._events import EventColumns
from ._model import (
    CALL_TYPE_NAMES,
    CDR_FIELDS,
    END_REASON_NAMES,
    LICENSES,
    MICRO,
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
    "CALL_TYPE_NAMES", "CDR_FIELDS", "END_REASON_NAMES", "FOREVER_MS", "LICENSES", "MICRO",
    "Arrivals", "CallKind", "CallType", "CdrBatch", "CdrBuffer", "Credits", "EndReason", "EventColumns",
    "LedgerEvent", "Org", "Plans", "PrefixTable", "RatingEngine", "RatingSetup", "Step", "Tables", "Tariff", "User",
    "canonical_cdrs", "canonical_events", "format_number", "lot_expiry_ms", "month_starts",
    "parse_number",
]
