"""Values that carry a unit, both ways: the text a scenario may type parsed into exact
integers (`_parse`), and the exact text every output writes (`_text`).

General layout:

- `_parse`: durations, money, instants, dates, increments, codes and numbers as a scenario
  writes them, each parser raising ValueError with a message for the person who typed it.
- `_text`: money (micro-units) and instants (ms) as cdrs.csv, cdrs.msgpack, events.jsonl,
  summary.json, the report and the server's replies all write them, byte for byte.

Integers only: no float touches a money amount or an instant, in either direction.
"""

from ._parse import (
    MAX_DURATION_MS,
    MAX_INCREMENT_S,
    MAX_MONEY_MICRO,
    MONEY_DECIMALS,
    MS_PER_UNIT,
    SHOWN_CHARS,
    format_duration,
    is_integer,
    parse_country,
    parse_currency,
    parse_date,
    parse_duration_ms,
    parse_e164,
    parse_increment,
    parse_money_micro,
    parse_prefix,
    parse_utc_instant,
    show,
)
from ._text import (
    EPOCH,
    epoch_ms,
    format_epoch_ms_iso,
    format_micro,
    format_micro_grouped,
    format_ms,
    format_ms_iso,
)

__all__ = [
    "EPOCH", "MAX_DURATION_MS", "MAX_INCREMENT_S", "MAX_MONEY_MICRO", "MONEY_DECIMALS", "MS_PER_UNIT",
    "SHOWN_CHARS", "epoch_ms", "format_duration", "format_epoch_ms_iso", "format_micro", "format_micro_grouped",
    "format_ms", "format_ms_iso", "is_integer", "parse_country", "parse_currency", "parse_date",
    "parse_duration_ms", "parse_e164", "parse_increment", "parse_money_micro", "parse_prefix",
    "parse_utc_instant", "show",
]
