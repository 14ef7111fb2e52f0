"""Usage files read into one column table of text: the admin center's CSV, the zip it comes in,
and Microsoft Graph `getPstnCalls` JSON pages.

Every source becomes a `Source`: a polars frame with the columns `FIELDS` (text as the file has
it, "" when absent), the place of each row (`_row`: the CSV row, the header being row 1, which is
the line number unless a quoted field holds a line break; or the index in a JSON page's `value`
array, `_page` the page's index in a file that holds a list of pages, -1 for a single page), and
the period the export covers when the file says it (parameters.json).  Nothing here judges a
value: `_rows` does, for all sources at once, in columns.

CSV is read by polars, in columns: 1.8 s for a million rows where the csv module takes 3.2 s
only to split them into Python lists (both measured on the shared 2-core machine at a load
average of 11), and polars' row index gives the row numbers errors name.  The header is read
first with the csv module, so a missing column is named before polars reads anything.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import IO, Any

import polars as pl

from . import _vocabulary as vocabulary
from ._problems import UsageError, plural

#: The values import reads, by its own names, in this order.
FIELDS = ("usage_id", "upn", "location", "caller", "call_type", "number_type", "context", "destination",
          "start", "duration", "charge", "currency", "capability")

#: Admin center CSV column -> field.  The other columns (the other ids, names, End Time, Connection Fee,
#: Destination Dialed) are not read: Duration Seconds is the call's length, and callsim has no
#: connection fee (docs/usage-import.md).
CSV_FIELDS = {
    "UsageId": "usage_id", "UPN": "upn", "User Location": "location", "Caller ID": "caller", "Call Type": "call_type",
    "Number Type": "number_type", "Domestic/International": "context",
    "Destination Number": "destination", "Start Time": "start", "Duration Seconds": "duration",
    "Charge": "charge", "Currency": "currency", "Capability": "capability",
}
#: Columns an export may lack: without UsageId, rows read twice cannot be told apart.
OPTIONAL_COLUMNS = frozenset({"UsageId"})
#: Graph pstnCallLogRow property -> field, through the export column it fills.
GRAPH_FIELDS = {name: CSV_FIELDS[column] for name, column in vocabulary.GRAPH_FIELDS.items()
                if column in CSV_FIELDS}
assert set(CSV_FIELDS) <= set(vocabulary.EXPORT_COLUMNS) and len(GRAPH_FIELDS) == len(CSV_FIELDS)

_HEAD_BYTES = 1 << 16  # enough for any header line the export writes
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Source:
    """One file (or one CSV inside a zip) read: its rows as text columns, and its period."""

    name: str  # as messages name it: the path, or "archive.zip:member.csv"
    frame: pl.DataFrame  # FIELDS as text, plus "_row" (u32) and "_page" (i32)
    period: tuple[datetime, datetime] | None  # [start, end) in UTC, from parameters.json
    json: bool  # places are JSON paths (`value[3]`), not CSV rows

    def place(self, page: int, row: int) -> str:
        if not self.json:
            return f"{self.name}: row {row}"
        return f"{self.name}: {'' if page < 0 else f'[{page}].'}value[{row}]"


def read_source(path: Path) -> Source:
    """Read one usage file, whatever its kind (zip, JSON or CSV: told by its first bytes).

    Raises `UsageError` for a file that cannot be read, is empty, or lacks a needed column.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEAD_BYTES)
    except OSError as err:
        raise UsageError(str(path), f"cannot read: {err.strerror or err}") from None
    if head.startswith(_ZIP_MAGIC):
        return _read_zip(path)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return _read_json(path)
    return _read_csv(str(path), path, head)


def _read_csv(name: str, data: Path | bytes, head: bytes) -> Source:
    header = _csv_header(name, head)
    missing = [column for column in CSV_FIELDS if column not in header and column not in OPTIONAL_COLUMNS]
    if missing:
        raise UsageError(name, f"not a PSTN usage export: no column {', '.join(map(_quoted, missing))} "
                               f"(the header has {plural(len(header), 'column')}: {', '.join(map(_quoted, header[:6]))}"
                               f"{', ...' if len(header) > 6 else ''})")
    duplicated = sorted({c for c in header if header.count(c) > 1 and c in CSV_FIELDS})
    if duplicated:
        raise UsageError(name, f"column {_quoted(duplicated[0])} appears twice in the header")
    # Every column is read, not only those import uses: with a projection polars would let a
    # row with too many fields (an unquoted comma) pass with its values shifted.
    try:
        frame = pl.read_csv(data if isinstance(data, bytes) else str(data), infer_schema=False,
                            row_index_name="_row", row_index_offset=2, raise_if_empty=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as err:
        raise UsageError(_ragged_place(name, data, len(header)),
                         f"not a well-formed CSV file: {_first_line(err)}") from None
    frame = frame.select("_row", *(pl.col(c) if c in frame.columns else pl.lit(None, pl.String).alias(c)
                                   for c in CSV_FIELDS))
    frame = frame.rename(CSV_FIELDS).with_columns(
        pl.col(list(FIELDS)).fill_null(""), pl.lit(-1, pl.Int32).alias("_page"))
    return Source(name, frame.select("_row", "_page", *FIELDS), None, json=False)


def _ragged_place(name: str, data: Path | bytes, columns: int) -> str:
    """The first row whose field count differs from the header's, found with the csv module
    once polars has refused the file (so the message names a row, not just the file)."""
    try:
        raw = data if isinstance(data, bytes) else Path(data).read_bytes()
        for number, record in enumerate(csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace"))), 1):
            if number > 1 and len(record) != columns and record:
                return f"{name}: row {number}: {len(record)} fields where the header has {columns}"
    except (OSError, csv.Error):
        pass
    return name


def _csv_header(name: str, head: bytes) -> list[str]:
    text = head.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise UsageError(name, "empty file: no header, no calls")
    try:
        return [column.strip() for column in next(csv.reader(io.StringIO(text)))]
    except (csv.Error, StopIteration) as err:
        raise UsageError(name, f"not a well-formed CSV header: {err}") from None


def _read_zip(path: Path) -> Source:
    """The admin center's `Calls.Export.*.zip`: `PSTN.calls.*.csv` and `parameters.json`."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            csvs = [n for n in names if PurePosixPath(n).name.lower().startswith("pstn")
                    and n.lower().endswith(".csv")]
            if len(csvs) != 1:
                found = ", ".join(map(_quoted, names)) or "nothing"
                which = "no" if not csvs else "more than one"
                raise UsageError(str(path), f"{which} PSTN.calls.*.csv in the archive (it holds {found})")
            data = archive.read(csvs[0])
            params = [n for n in names if PurePosixPath(n).name.lower() == "parameters.json"]
            period = _parameters_period(f"{path}:{params[0]}", archive.read(params[0])) if params else None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise UsageError(str(path), f"not a readable zip archive: {err}") from None
    source = _read_csv(f"{path}:{csvs[0]}", data, data[:_HEAD_BYTES])
    return Source(source.name, source.frame, period, json=False)


# parameters.json keys that can hold the period's ends, compared in lower case.
_PERIOD_STARTS = ("startdate", "start", "fromdatetime", "fromdate", "from", "startdatetime")
_PERIOD_ENDS = ("enddate", "end", "todatetime", "todate", "to", "enddatetime")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parameters_period(name: str, data: bytes) -> tuple[datetime, datetime] | None:
    """The export's [start, end) in UTC from parameters.json; a date-only end is inclusive
    (the admin center's "to" day), so the period runs to the end of that day."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(name, f"not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise UsageError(name, "expected a JSON object")
    keys = {key.lower(): value for key, value in document.items()}
    start_key = next((k for k in _PERIOD_STARTS if k in keys), None)
    end_key = next((k for k in _PERIOD_ENDS if k in keys), None)
    if start_key is None or end_key is None:
        return None
    start, end = (_parameter_instant(name, key, keys[key]) for key in (start_key, end_key))
    if _DAY.fullmatch(str(keys[end_key]).strip()):
        end = end.replace(hour=0) + (datetime(2000, 1, 2) - datetime(2000, 1, 1))
    if end <= start:
        raise UsageError(name, f"the period ends ({keys[end_key]}) before it starts ({keys[start_key]})")
    return start, end


def _parameter_instant(name: str, key: str, value: Any) -> datetime:
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(name, f"{key}: malformed date {_quoted(text)} (ISO 8601 expected)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _read_json(path: Path) -> Source:
    """Graph `getPstnCalls` output: one page `{"value": [...]}` or a list of pages.
    `@odata.nextLink` and the other `@odata` annotations are ignored."""
    name = str(path)
    try:
        with open(path, "rb") as stream:
            document = json.load(_utf8(stream))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(name, f"not valid JSON: {err}") from None
    except OSError as err:
        raise UsageError(name, f"cannot read: {err.strerror or err}") from None
    pages = [(-1, document)] if isinstance(document, dict) else list(enumerate(document)) \
        if isinstance(document, list) else []
    if not pages:
        raise UsageError(name, 'expected a getPstnCalls page {"value": [...]} or a list of them')
    columns: dict[str, list[str]] = {field: [] for field in FIELDS}
    row_index: list[int] = []
    page_index: list[int] = []
    for page_number, page in pages:
        where = "" if page_number < 0 else f"[{page_number}]"
        rows = page.get("value") if isinstance(page, dict) else None
        if not isinstance(rows, list):
            raise UsageError(name, f'{where or "the document"}: expected a page with a "value" array')
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise UsageError(name, f"{where}{'.' if where else ''}value[{i}]: expected an object "
                                       "(a pstnCallLogRow)")
            for key, field in GRAPH_FIELDS.items():
                columns[field].append(_json_text(row.get(key)))
        row_index.extend(range(len(rows)))
        page_index.extend([page_number] * len(rows))
    frame = pl.DataFrame({"_row": pl.Series(row_index, dtype=pl.UInt32),
                          "_page": pl.Series(page_index, dtype=pl.Int32),
                          **{field: pl.Series(values, dtype=pl.String) for field, values in columns.items()}})
    return Source(name, frame, None, json=True)


def _utf8(stream: IO[bytes]) -> IO[str]:
    return io.TextIOWrapper(stream, encoding="utf-8-sig")


def _json_text(value: Any) -> str:
    """A JSON value as the CSV would write it: null -> "", numbers exactly as written."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value)


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
