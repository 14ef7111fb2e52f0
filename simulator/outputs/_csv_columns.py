"""CSV text from numpy columns: integers, fixed decimals, "+" numbers, ISO instants, quoted strings.

Why this exists: cdrs.csv was formatted by polars (~1-1.5 CPU-µs a row, and
~0.2 s to import it in every process that writes one); these encoders build the
same text as `_byte_columns` Fields, which `RowJoiner` lays out into rows, in
about half the CPU and with numpy alone.  The text is that of the scalar
formatters in `simulator.units` (`str(int)`, `format_ms`, `format_micro`,
`format_epoch_ms_iso`), which tests/simulator/outputs/test_csv_columns.py checks on drawn values.

Numbers are laid out on the right of their fields, so that a sign or a "+"
goes just before the digits; strings from tables on either side (`TextTable`).
Fields are as wide as one of numpy's fast item sizes (`fast_width`) where
they can be: a few bytes of padding cost the row less than a slow copy.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import date

import numpy as np
from numpy.typing import NDArray

from ._byte_columns import (
    segmented,
    ByteTable,
    Field,
    digit_counts,
    divmod_by,
    fast_width,
    item_view,
    used,
    write_zero_padded,
    zero_padded,
)

__all__ = ["TextTable", "decimals", "instants", "integers", "prefixed_digits", "quoted"]

_MINUS, _DOT = ord("-"), ord(".")
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
_MS_PER_MINUTE = 60_000
_MINUTES_PER_DAY = 24 * 60
# datetime's calendar, years 1..9999, in days since 1970-01-01
_FIRST_DAY, _LAST_DAY = (date(1, 1, 1) - date(1970, 1, 1)).days, (date(9999, 12, 31) - date(1970, 1, 1)).days


# --- numbers ---------------------------------------------------------------------------------


def _int64(values: NDArray[np.integer]) -> NDArray[np.int64]:
    """The values as int64, which every encoder here computes in."""
    if values.dtype.kind == "u" and len(values) and int(values.max()) > _INT64_MAX:
        raise ValueError("integers above 2**63 - 1 are not supported")
    return values.astype(np.int64, copy=False)


def _magnitude(values: NDArray[np.integer]) -> tuple[NDArray[np.int64], NDArray[np.bool_] | None]:
    """|values| as int64, and where they are negative (None if none is: no sign to place)."""
    v = _int64(values)
    if not len(v) or int(v.min()) >= 0:
        return v, None
    if int(v.min()) == _INT64_MIN:
        raise ValueError("-2**63 has no absolute value in int64")
    return np.abs(v), v < 0


def _digit_matrix(magnitude: NDArray[np.int64], lead: int,
                  tail: int) -> tuple[NDArray[np.uint8], NDArray[np.int8], int]:
    """A byte matrix for each value's digits right-aligned in four-digit groups, `tail` columns
    before each row's end, with at least `lead` spare columns before the longest (for a sign);
    how many digits each value has; and how many groups the longest needs."""
    count = digit_counts(magnitude)
    longest = int(count.max()) if len(count) else 1
    quads = -(-longest // 4)
    width = fast_width(max(lead + longest, 4 * quads) + tail)
    return np.empty((len(magnitude), width), dtype=np.uint8), count, quads


def _put_before(data: NDArray[np.uint8], rows: NDArray[np.intp], length: NDArray[np.int8], byte: int) -> None:
    """Set `byte` in each of these rows just left of its last `length` bytes (one scatter)."""
    width = data.shape[1]
    data.reshape(-1)[rows * width + (width - 1) - length] = byte


def _signed(data: NDArray[np.uint8], length: NDArray[np.int8], negative: NDArray[np.bool_] | None) -> Field:
    """The field of each row's last `length` bytes, after a "-" where `negative`."""
    if negative is not None:
        rows = np.flatnonzero(negative)
        _put_before(data, rows, length[rows], _MINUS)
        length = length + negative
    return Field.of(data, used(data.shape[1], length, right=True))


def integers(values: NDArray[np.integer]) -> Field:
    """Integers as `str(int)` writes them: "0", "1234", "-5"."""
    magnitude, negative = _magnitude(values)
    data, count, quads = _digit_matrix(magnitude, 0 if negative is None else 1, 0)
    write_zero_padded(magnitude, data, data.shape[1] - 4 * quads, quads)
    return _signed(data, count, negative)


def decimals(values: NDArray[np.integer], places: int) -> Field:
    """Integers in units of 10**-places as text with all `places` decimals: 52_000 -> "0.052000"
    (places=6, `format_micro`), 15_175 -> "15.175" (places=3, `format_ms`), -1 -> "-0.001"."""
    magnitude, negative = _magnitude(values)
    whole, fraction = divmod_by(magnitude, 10**places)
    data, count, quads = _digit_matrix(whole, 0 if negative is None else 1, 1 + places)
    width = data.shape[1]
    # The fraction first, in whole four-digit groups that end the row: the zeros leading them
    # (one for 3 places, two for 6) are then overwritten by the integer's digits and the point.
    fraction_quads = -(-places // 4)
    write_zero_padded(fraction, data, width - 4 * fraction_quads, fraction_quads)
    write_zero_padded(whole, data, width - 1 - places - 4 * quads, quads)
    data[:, width - 1 - places] = _DOT
    return _signed(data, count + 1 + places, negative)


def prefixed_digits(values: NDArray[np.int64], prefix: bytes) -> Field:
    """`prefix` + the decimal digits of each positive value ("+4930..."); empty if not positive."""
    v = _int64(values)
    magnitude = np.maximum(v, 0)
    data, count, quads = _digit_matrix(magnitude, len(prefix), 0)
    write_zero_padded(magnitude, data, data.shape[1] - 4 * quads, quads)
    every_row = np.arange(len(v))
    for k, byte in enumerate(reversed(prefix)):
        _put_before(data, every_row, count + k, byte)
    return Field.of(data, used(data.shape[1], np.where(v > 0, count + len(prefix), 0), right=True))


# --- instants ------------------------------------------------------------------------------
# "YYYY-MM-DDTHH:MM:SS.mmmZ" is three 8-byte pieces, each a lookup: "YYYY-MM-" by day,
# "DDTHH:MM" by day of the month and minute, ":SS.mmmZ" by millisecond of the minute.


def _digits_of(numbers: NDArray[np.int64], places: int) -> NDArray[np.uint8]:
    """Each of these numbers (below 10**places <= 10**4) as `places` zero-padded ASCII digits."""
    return zero_padded(numbers, 1)[:, 4 - places:]


def _texts(pieces: Sequence[str | NDArray[np.uint8]], shape: tuple[int, ...]) -> NDArray[np.void]:
    """Fixed-width texts, one void item per cell of `shape`, laid out piece after piece: a str
    is in every text, an array holds one piece per cell (broadcast to `shape`)."""
    width = sum(len(p) if isinstance(p, str) else p.shape[-1] for p in pieces)
    data = np.empty((*shape, width), dtype=np.uint8)
    offset = 0
    for piece in pieces:
        size = len(piece) if isinstance(piece, str) else piece.shape[-1]
        data[..., offset:offset + size] = np.frombuffer(piece.encode(), np.uint8) if isinstance(piece, str) else piece
        offset += size
    return item_view(data.reshape(-1, width))


@functools.cache
def _day_minutes() -> NDArray[np.void]:
    """"DDTHH:MM" at (day of the month - 1) * 1440 + minute of the day."""
    days, hours, minutes = (_digits_of(np.arange(first, last), 2) for first, last in ((1, 32), (0, 24), (0, 60)))
    return _texts([days[:, None, None], "T", hours[None, :, None], ":", minutes[None, None, :]], (31, 24, 60))


@functools.cache
def _seconds(tail: str) -> NDArray[np.void]:
    """":SS.mmm" + `tail` for each millisecond of a minute (tail "Z": ":SS.mmmZ")."""
    seconds, ms = _digits_of(np.arange(60), 2), _digits_of(np.arange(1000), 3)
    return _texts([":", seconds[:, None], ".", ms[None, :], tail], (60, 1000))


def _civil(days: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Year, month and day of the proleptic Gregorian calendar for days since 1970-01-01:
    H. Hinnant's `civil_from_days` (https://howardhinnant.github.io/date_algorithms.html), in
    400-year eras of 146,097 days whose years start on 1 March."""
    era, day_of_era = divmod_by(days + 719_468, 146_097)
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)  # from 1 March
    shifted_month = (5 * day_of_year + 2) // 153  # 0 for March .. 11 for February
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = np.where(shifted_month < 10, shifted_month + 3, shifted_month - 9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _calendar(first_day: int, last_day: int) -> tuple[NDArray[np.void], NDArray[np.int64]]:
    """For each day since the Unix epoch in [first_day, last_day]: "YYYY-MM-", and where its
    day of the month starts in `_day_minutes`."""
    if first_day < _FIRST_DAY or last_day > _LAST_DAY:
        raise ValueError(f"an instant outside the years 1..9999 (days {first_day}..{last_day} since 1970)")
    year, month, day = _civil(np.arange(first_day, last_day + 1, dtype=np.int64))
    year_months = _texts([zero_padded(year, 1), "-", _digits_of(month, 2), "-"], (len(year),))
    return year_months, (day - 1) * _MINUTES_PER_DAY


def instants(epoch_ms: NDArray[np.int64], tail: str = "Z") -> list[Field]:
    """Unix-epoch milliseconds as `format_epoch_ms_iso` writes them, "2026-11-01T00:00:10.000Z",
    for the years 1 to 9999 (`datetime`'s); `tail` follows the milliseconds instead of "Z"
    ("0000Z": seven fractional digits, as .NET writes a UTC instant).

    The table of days spans only the days between the first and the last
    instant: for a batch of CDRs, a day or two.
    """
    minute, ms_of_minute = divmod_by(_int64(epoch_ms), _MS_PER_MINUTE)
    day, minute_of_day = divmod_by(minute, _MINUTES_PER_DAY)
    first_day, last_day = (int(day.min()), int(day.max())) if len(day) else (0, 0)
    year_months, month_days = _calendar(first_day, last_day)
    day -= first_day
    return [Field(year_months.take(day)), Field(_day_minutes().take(month_days.take(day) + minute_of_day)),
            Field(_seconds(tail).take(ms_of_minute))]


# --- strings ---------------------------------------------------------------------------------


_MUST_QUOTE = re.compile('[,"\r\n]')


def quoted(text: str) -> bytes:
    """One string as a CSV field (RFC 4180), UTF-8: quoted only if it must be, `"` doubled."""
    if _MUST_QUOTE.search(text):
        text = '"' + text.replace('"', '""') + '"'
    return text.encode()


class TextTable(ByteTable):
    """Strings as CSV fields, quoted once (`quoted`) and taken by index per row; "" and the
    index -1 are an empty field.

    `end` is appended to every entry (the separator after the field), and
    `right` lays the entries out on the right of the table's width.  The
    padding of a row's fields is out of the mask, and two neighbours' paddings
    with no byte in between are one gap for `RowJoiner`'s selection, which
    costs less than two.
    """

    def __init__(self, texts: Sequence[str], end: bytes = b"", right: bool = False) -> None:
        entries = segmented(texts, quoted, end, extra=[end])
        super().__init__(entries, right, fast_width(int(entries.lengths().max())))
