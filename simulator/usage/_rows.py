"""The rows of every source checked and typed, in columns: `UsageCalls`.

What is fatal (`UsageError`: exit 2, one line naming the first bad row and how many more) and
what is a counted warning (the row stays, a warning lists its first places):

| problem | kind |
|---|---|
| Start Time not ISO 8601 with an offset ("Z", "+01:00"; a space for the "T" is taken) | fatal |
| Duration Seconds not a whole number of seconds | fatal |
| Charge not a decimal >= 0 with at most 6 decimals ("" counts as 0) | fatal |
| Currency not three letters, or two currencies in the import | fatal |
| Call Type empty; Domestic/International neither on a user outbound row | fatal |
| Call Type unknown, or Number Type unknown on an inbound row | warning: the row is skipped |
| Capability unknown | warning: the user gets no licence from it |
| Destination Number / Caller ID not E.164 (with or without "+") on a simulated row | warning: the row counts for rates and holding times, not for destinations |
| UPN empty on an outbound row | warning: the row counts for rates, no user comes of it |
| Start Time outside the period parameters.json gives | warning: the row is skipped |
| UsageId (Graph: id) the same as an earlier row's, in any file of the import | warning: the row is skipped |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from . import _vocabulary as vocabulary
from ._mapping import OUTBOUND_TYPES, call_type_kind, capability_licenses, unknown_value
from ._problems import UsageError, UsageWarning
from ._sources import CSV_FIELDS, GRAPH_FIELDS, Source

_CSV_NAMES = {field: column for column, field in CSV_FIELDS.items()}
_GRAPH_NAMES = {field: name for name, field in GRAPH_FIELDS.items()}
MS_PER_HOUR = 3_600_000


@dataclass
class UsageCalls:
    """Every row of the import, typed.  `frame` columns:

    `_file` (index into `sources`), `_page`, `_row` (the place), `usage_id`, `upn`, `location`, `kind`
    (callsim traffic type, null when skipped), `start_ms` (UTC, ms since 1970), `offset_min`
    (the offset the Start Time was written with), `duration_s`, `charge_micro`, `destination`
    and `caller` (E.164 digits without "+", null when malformed or empty), `capability`.
    """

    frame: pl.DataFrame
    sources: list[Source]
    currency: str | None
    warnings: list[UsageWarning] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    rows_read: int = 0  # with the repeated rows `frame` no longer holds

    def place(self, index: int) -> str:
        file, page, row = self.frame.row(index)[:3]
        return self.sources[file].place(page, row)


def check_rows(sources: list[Source]) -> UsageCalls:
    """All sources' rows, checked and typed; raises `UsageError` at the first fatal problem."""
    frame = pl.concat([source.frame.with_columns(pl.lit(i, pl.UInt16).alias("_file"))
                       for i, source in enumerate(sources)], how="vertical_relaxed")
    frame = frame.select("_file", "_page", "_row", *[c for c in frame.columns if not c.startswith("_")])
    if frame.height == 0:
        empty = ("the export has a header and no rows" if any(not s.json for s in sources)
                 else 'the export has no rows (its "value" arrays are empty)')
        raise UsageError(", ".join(s.name for s in sources), f"no calls: {empty}")
    calls = UsageCalls(frame, sources, None, rows_read=frame.height)
    frame = calls.frame = _without_repeats(calls)
    # Surrounding spaces are dropped (a padded export is still an export); a column without
    # any is left as it is, which spares a copy of a million strings.
    padded = frame.select(pl.col(c).str.contains(r"^\s|\s$").any() for c in frame.columns
                          if not c.startswith("_")).row(0, named=True)
    typed = frame.with_columns(pl.col(c).str.strip_chars() for c, has in padded.items() if has)
    spaced = typed.select(pl.col("start").str.contains(" ", literal=True).any()).item()
    typed = typed.with_columns(
        _start_ms(pl.col("start"), spaced).alias("start_ms"),
        _offset_min(pl.col("start")).alias("offset_min"),
        pl.when(pl.col("duration").str.contains(r"^\d{1,9}$"))
          .then(pl.col("duration").cast(pl.Int64, strict=False)).alias("duration_s"),
        _charge_micro(pl.col("charge")).alias("charge_micro"),
        _digits(pl.col("destination")).alias("destination_digits"),
        _digits(pl.col("caller")).alias("caller_digits"),
    )
    _fatal(calls, typed, pl.col("start_ms").is_null(), "start",
           lambda r: f"malformed date {_q(r['start'])} (ISO 8601 with an offset expected, "
                     "e.g. 2026-11-02T09:15:03Z)")
    _fatal(calls, typed, pl.col("duration_s").is_null(), "duration",
           lambda r: f"malformed duration {_q(r['duration'])} (a whole number of seconds expected)")
    _fatal(calls, typed, pl.col("charge_micro").is_null(), "charge",
           lambda r: f"malformed charge {_q(r['charge'])} (a decimal amount >= 0 expected, e.g. 0.25)")
    _fatal(calls, typed, ~pl.col("currency").str.contains(r"^([A-Za-z]{3})?$"), "currency",
           lambda r: f"malformed currency {_q(r['currency'])} (an ISO 4217 code expected, e.g. USD)")
    calls.currency = _one_currency(calls, typed)
    _fatal(calls, typed, pl.col("call_type") == "", "call_type", lambda r: "empty call type")
    user_outbound = pl.col("call_type").str.to_lowercase().is_in(sorted(vocabulary.OUTBOUND_CALL_TYPES))
    contexts = [vocabulary.DOMESTIC.lower(), vocabulary.INTERNATIONAL.lower()]
    _fatal(calls, typed, user_outbound & ~pl.col("context").str.to_lowercase().is_in(contexts), "context",
           lambda r: f"{_q(r['context'])} on a {r['call_type']} call: expected "
                     f"{vocabulary.DOMESTIC} or {vocabulary.INTERNATIONAL}")
    typed = _with_kinds(calls, typed)
    _warn_rows(calls, typed, pl.col("kind").is_null() & pl.col("skip").is_null(),
               "unknown call type or number type (not simulated)",
               lambda r: unknown_value(r["call_type"], r["number_type"], r["context"]), quote=False)
    capabilities = typed["capability"].unique().to_list()
    unknown = [c for c in capabilities if c and capability_licenses(c) is None]
    _warn_rows(calls, typed, pl.col("capability").is_in(unknown),
               "unknown capability (no licence inferred from it)", lambda r: r["capability"])
    outbound = pl.col("kind").is_in(OUTBOUND_TYPES)
    _warn_rows(calls, typed, outbound & pl.col("destination_digits").is_null(),
               "destination number not E.164 (left out of the destination mix)", lambda r: r["destination"])
    _warn_rows(calls, typed, (pl.col("kind") == "toll_free") & pl.col("caller_digits").is_null(),
               "caller number not E.164 (left out of the toll-free callers' mix)", lambda r: r["caller"])
    _warn_rows(calls, typed, (pl.col("kind") == "toll_free") & pl.col("destination_digits").is_null(),
               "toll-free number not E.164 (not added to toll_free_numbers)", lambda r: r["destination"])
    _warn_rows(calls, typed, outbound & (pl.col("upn") == ""), "no UPN (the call counts, no user comes of it)",
               lambda r: "")
    calls.frame = typed.select(
        "_file", "_page", "_row", "usage_id", "upn", "location", "kind", "start_ms", "offset_min", "duration_s",
        "charge_micro", pl.col("destination_digits").alias("destination"),
        pl.col("caller_digits").alias("caller"), "capability", "skip")
    return calls


def _without_repeats(calls: UsageCalls) -> pl.DataFrame:
    """The rows whose UsageId (Graph: id) an earlier row has are dropped and counted as a
    warning: the same export given twice, monthly exports that overlap or a page saved twice
    would otherwise count their calls twice.  Rows without an id are all kept."""
    usage_id = pl.col("usage_id").str.strip_chars()
    repeated = (usage_id != "") & ~usage_id.is_first_distinct()
    _warn_rows(calls, calls.frame, repeated, "UsageId already read (the row is skipped)", lambda r: r["usage_id"])
    return calls.frame.filter(~repeated.fill_null(False))


def _start_ms(text: pl.Expr, spaced: bool) -> pl.Expr:
    """ISO 8601 date and time ("T" or a space between), optional fraction, and an offset ("Z",
    "+01:00", "+0100"); as the vocabulary's `parse_time`, a time without an offset is refused:
    a guess would shift every call."""
    normal = text.str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T") if spaced else text
    return normal.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_unit="ms",
                                  time_zone="UTC").dt.epoch("ms")


def _offset_min(text: pl.Expr) -> pl.Expr:
    """The offset a time is written with, in minutes ("Z" and malformed: 0), read from its
    last six characters: a whole export has a handful of distinct ones, each parsed once."""
    return text.str.slice(-6).map_batches(_tail_minutes, return_dtype=pl.Int32)


def _tail_minutes(tails: pl.Series) -> pl.Series:
    minutes = {}
    for tail in tails.unique().to_list():
        match = re.search(r"([+-])(\d{2}):?(\d{2})$", tail or "")
        value = int(match[2]) * 60 + int(match[3]) if match else 0
        minutes[tail] = -value if match and match[1] == "-" else value
    return tails.replace_strict(minutes, default=0, return_dtype=pl.Int32)


def _charge_micro(text: pl.Expr) -> pl.Expr:
    """A decimal amount with at most 6 decimals -> integer micro-units ("" is 0)."""
    text = pl.when(text == "").then(pl.lit("0")).otherwise(text)
    whole = text.str.extract(r"^(\d{1,12})(?:\.\d{0,6})?$", 1)
    fraction = text.str.extract(r"^\d{1,12}\.(\d{1,6})$", 1).fill_null("").str.pad_end(6, "0")
    return pl.when(whole.is_not_null()).then(
        whole.cast(pl.Int64) * 1_000_000 + fraction.cast(pl.Int64, strict=False).fill_null(0))


def _digits(text: pl.Expr) -> pl.Expr:
    """E.164 with or without "+" -> its digits; anything else (or "") -> null."""
    digits = text.str.strip_prefix("+")
    return pl.when(digits.str.contains(r"^[1-9]\d{1,14}$")).then(digits)


def _with_kinds(calls: UsageCalls, typed: pl.DataFrame) -> pl.DataFrame:
    """The callsim type of each row, decided once per distinct (call type, number type,
    context), then joined: a million rows have a handful of distinct combinations."""
    key = pl.concat_str(["call_type", "number_type", "context"], separator="\x1f")
    combos = typed.select("call_type", "number_type", "context").unique()
    kinds, skips = {}, {}
    for row in combos.iter_rows():
        kinds["\x1f".join(row)], skips["\x1f".join(row)] = call_type_kind(*row)
    typed = typed.with_columns(key.replace_strict(kinds, default=None, return_dtype=pl.String).alias("kind"),
                               key.replace_strict(skips, default=None, return_dtype=pl.String).alias("skip"))
    counts = typed.filter(pl.col("skip").is_not_null()).group_by("skip").len().sort("skip")
    calls.skipped = dict(counts.iter_rows())
    return typed


def _fatal(calls: UsageCalls, typed: pl.DataFrame, bad: pl.Expr, field: str, problem) -> None:
    """Raise for the first row where `bad` holds, naming how many more rows have it."""
    flagged = typed.with_row_index("_index").filter(bad)
    if flagged.height == 0:
        return
    first = flagged.row(0, named=True)
    more = f" (and {flagged.height - 1:,} more rows)" if flagged.height > 1 else ""
    raise UsageError(f"{calls.place(first['_index'])}: {_column(calls, first['_file'], field)}",
                     f"{problem(first)}{more}")


def _warn_rows(calls: UsageCalls, typed: pl.DataFrame, bad: pl.Expr, problem: str, value,
               quote: bool = True) -> None:
    flagged = typed.with_row_index("_index").filter(bad)
    if flagged.height == 0:
        return
    warning = UsageWarning(problem, flagged.height)
    for row in flagged.head(UsageWarning.SHOWN).iter_rows(named=True):
        shown = value(row)
        shown = _q(shown) if quote and shown else shown
        warning.places.append(calls.place(row["_index"]) + (f" {shown}" if shown else ""))
    calls.warnings.append(warning)


def _one_currency(calls: UsageCalls, typed: pl.DataFrame) -> str | None:
    """The import's one currency (None when no row names one); two are refused, since callsim
    converts nothing and a scenario has one currency."""
    named = typed.with_row_index("_index").filter(pl.col("currency") != "")
    if named.height == 0:
        return None
    first = named.row(0, named=True)
    other = named.filter(pl.col("currency") != first["currency"])
    if other.height:
        row = other.row(0, named=True)
        raise UsageError(f"{calls.place(row['_index'])}: {_column(calls, row['_file'], 'currency')}",
                         f"{_q(row['currency'])}, but {calls.place(first['_index'])} has "
                         f"{_q(first['currency'])}: a file mixing currencies is refused "
                         "(import each currency's calls on their own)")
    return first["currency"]


def _column(calls: UsageCalls, file: int, field: str) -> str:
    return (_GRAPH_NAMES if calls.sources[file].json else _CSV_NAMES)[field]


def _q(text: str) -> str:
    from ..units import show

    return show(text)
