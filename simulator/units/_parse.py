"""Scenario values that carry a unit: durations, money, instants, dates, increments, numbers.

Each parser takes a raw value as tomllib produced it and returns the exact internal value, or
raises ValueError with a message written for the person who typed the file (the loader prints
it after the value's place).  Money and durations never pass through float: "0.1" is exactly
100_000 micro-units and "1.5s" exactly 1_500 ms, so the same file always rates the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date, datetime, timezone

from rating_core import MICRO

MS_PER_UNIT: dict[str, int] = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MONEY_DECIMALS = 6  # micro-units

# Upper bounds keep every sum the core makes (instants, hang-ups, balances, the cost of one
# increment = per_minute x seconds) far inside int64, and turn a slipped finger into a message
# instead of an overflow or an hour of generating calls.
MAX_DURATION_MS = 36_525 * MS_PER_UNIT["d"]  # 100 years
MAX_MONEY_MICRO = 1_000_000_000 * MICRO
MAX_INCREMENT_S = 3_600

# Patterns are ASCII: `\d` alone would take any script's digits ("١٢"), which int() reads too.
# Digit runs are measured before int() sees them: beyond 4300 digits int() refuses, and a
# number that long is "too large", not "not a number".
_MAX_DIGITS = 20
_DURATION = re.compile(r"(\d+)(?:\.(\d+))?(ms|s|m|h|d)", re.ASCII)
_MONEY = re.compile(r"(-?)(\d+)(?:\.(\d+))?", re.ASCII)
_INCREMENT = re.compile(r"(\d+)/(\d+)", re.ASCII)
_E164 = re.compile(r"\+[1-9]\d{1,14}", re.ASCII)
_PREFIX = re.compile(r"[1-9]\d{0,14}", re.ASCII)
_COUNTRY = re.compile(r"[A-Z]{2}", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# RFC 3339 proper: datetime.fromisoformat alone would also take "2026-11-01" or "20261101T00".
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


SHOWN_CHARS = 40  # a value longer than this is shortened in messages, which stay one line


def show(value: object) -> str:
    """Render a raw value the way it would be written in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            head = json.dumps(value[:SHOWN_CHARS], ensure_ascii=False)
            return f'{head[:-1]}…" ({len(value)} characters)'
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        if value.bit_length() > 13_000:  # over ~3,900 digits: str() refuses past 4,300
            return f"an integer of ~{int(value.bit_length() * math.log10(2)) + 1:,} digits"
        text = str(value)
        if len(text) > SHOWN_CHARS:
            return f"{text[:SHOWN_CHARS // 2]}… ({len(text.lstrip('-'))} digits)"
        return text
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def is_integer(value: object) -> bool:
    """TOML integers only: Python's bool is an int, TOML's true is not."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_duration_ms(value: object) -> int:
    """An integer of seconds, or "<number><ms|s|m|h|d>" that is a whole number of ms.

    Integers may be negative here; each field states its own lower bound.
    """
    ms = _duration_ms(value)
    if abs(ms) > MAX_DURATION_MS:
        limit = format_duration(MAX_DURATION_MS)
        raise ValueError(f"must be at most {limit} (100 years), got {show(value)}")
    return ms


def _duration_ms(value: object) -> int:
    if is_integer(value):
        return value * MS_PER_UNIT["s"]  # type: ignore[operator]
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if m:
            whole, frac, unit = m[1].lstrip("0"), (m[2] or "").rstrip("0"), m[3]
            if len(whole) > _MAX_DIGITS:
                return MAX_DURATION_MS + 1  # too large, said by the caller with its limit
            if len(frac) > _MAX_DIGITS:  # no unit has 10^20 ms: not whole ms
                raise ValueError(f"{show(value)} is not a whole number of milliseconds")
            # Integer arithmetic: exact for any number of digits, unlike Decimal's 28.
            scaled = int(whole + frac or "0") * MS_PER_UNIT[unit]
            scale = 10 ** len(frac)
            if scaled % scale:
                raise ValueError(f"{show(value)} is not a whole number of milliseconds")
            return scaled // scale
    raise ValueError(
        f'expected a duration like "90s", "15m", "2h", "1d" or an integer of seconds, '
        f"got {show(value)}"
    )


def _capped_int(digits: str, cap: int) -> int:
    """int(digits), or cap + 1 for a run of digits too long to be at most `cap` (and maybe too
    long for int() itself)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(cap)) else cap + 1


def format_duration(ms: int) -> str:
    """The shortest exact spelling of a duration, for messages: 172_800_000 -> "2d"."""
    for unit in ("d", "h", "m", "s"):
        if ms % MS_PER_UNIT[unit] == 0:
            return f"{ms // MS_PER_UNIT[unit]}{unit}"
    return f"{ms}ms"


def parse_money_micro(value: object) -> int:
    """A decimal string with at most 6 decimals, >= 0 -> integer micro-units.

    Numbers are refused even when they look harmless: a TOML float is binary, so
    `per_minute = 0.1` is not 0.1 and money must be exact.
    """
    if isinstance(value, str):
        m = _MONEY.fullmatch(value)
        if m:
            sign, whole, frac = m[1], m[2], m[3] or ""
            if sign:
                raise ValueError(f"must not be negative, got {show(value)}")
            if len(frac) > MONEY_DECIMALS:
                raise ValueError(
                    f"at most {MONEY_DECIMALS} decimals (micro-units), got {show(value)}"
                )
            whole = whole.lstrip("0")
            if len(whole) <= _MAX_DIGITS:
                micro = int(whole or "0") * MICRO + int(frac.ljust(MONEY_DECIMALS, "0"))
                if micro <= MAX_MONEY_MICRO:
                    return micro
            raise ValueError(f'too large: must be at most "{MAX_MONEY_MICRO // MICRO}", got {show(value)}')
    example = "0.02"
    if is_integer(value) or (isinstance(value, float) and math.isfinite(value)):
        written = show(value)
        if _MONEY.fullmatch(written) and not written.startswith("-"):
            example = written  # suggest quoting exactly what they wrote (when it is short)
    raise ValueError(f'expected a decimal string like "{example}", got {show(value)}')


def parse_utc_instant(value: object) -> datetime:
    """An RFC 3339 string or TOML offset date-time, in UTC, to the millisecond.

    Naive values are refused rather than assumed UTC: month refills and card expiry fall
    on UTC boundaries, and a silently shifted start would move them.
    """
    example = '"2026-11-01T00:00:00Z"'
    expected = f"expected an RFC 3339 UTC date-time like {example}, got {show(value)}"
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise ValueError(expected)
        try:
            instant = datetime.fromisoformat(value.upper())
        except ValueError:
            raise ValueError(f"not a valid date-time: {show(value)}") from None
    elif isinstance(value, datetime):
        instant = value
    else:
        raise ValueError(expected)
    offset = instant.utcoffset()
    if offset is None:
        raise ValueError(
            f'{show(value)} has no UTC offset: write it in UTC with "Z", like {example}'
        )
    if offset:
        raise ValueError(f'must be in UTC ("Z" or "+00:00"), got {show(value)}')
    if instant.microsecond % 1_000:
        raise ValueError(f"must be a whole number of milliseconds, got {show(value)}")
    return instant.replace(tzinfo=timezone.utc)


def parse_date(value: object) -> date:
    """A "YYYY-MM-DD" string or a TOML local date."""
    if isinstance(value, datetime):
        pass  # a datetime is a date subclass, but a card is valid through a whole day
    elif isinstance(value, date):
        return value
    elif isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not a valid date: {show(value)}") from None
    raise ValueError(f'expected a date like "2027-06-30", got {show(value)}')


def parse_increment(value: object) -> tuple[int, int]:
    """ "first/next" in whole seconds, both from 1 to 3600 -> (first_s, next_s)."""
    if isinstance(value, str):
        m = _INCREMENT.fullmatch(value)
        if m:
            first, nxt = (_capped_int(d, MAX_INCREMENT_S) for d in (m[1], m[2]))
            if first < 1 or nxt < 1:
                raise ValueError(f"increments must be at least 1 second, got {show(value)}")
            if first > MAX_INCREMENT_S or nxt > MAX_INCREMENT_S:
                raise ValueError(
                    f"increments must be at most {MAX_INCREMENT_S} seconds, got {show(value)}"
                )
            return first, nxt
    raise ValueError(f'expected "first/next" in whole seconds like "60/60", got {show(value)}')


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[object], str]:
    """A parser for plain text that must match `pattern`; `what` describes it to the user."""

    def check(value: object) -> str:
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        raise ValueError(f"expected {what}, got {show(value)}")

    return check


parse_e164 = _matching(_E164, 'an E.164 number like "+12125550100" (+ and 2 to 15 digits)')
parse_prefix = _matching(_PREFIX, 'a prefix of 1 to 15 digits without "+", like "44"')
parse_country = _matching(_COUNTRY, 'a 2-letter uppercase country code like "US"')
parse_currency = _matching(_CURRENCY, 'a 3-letter uppercase currency code like "USD"')
