"""Read a finished run directory into arrays for the report.

The report is built from the run's files only -- summary.json, events.jsonl and
the CDRs (cdrs.csv, or cdrs.msgpack when only that is there) --
never from the scenario, so it works on a directory copied off another machine.

Everything is turned into integer columns as early as possible: times in ms
since the run start, money in micro-units, orgs / pools / call types / end
reasons as indexes into small name tables.  The CDR stream is decoded chunk by
chunk (a month-long run has over a million rows) and the rest of the report is
vectorised numpy on these columns.

A problem with the input (not a run directory, a file missing, truncated or
from another run) is a `ReportError` naming the file and the problem; the
CLI prints it as one line.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import polars as pl
from numpy.typing import NDArray

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, MICRO

from .._gc import gc_paused
from ..units import EPOCH

CDRS_MSGPACK = "cdrs.msgpack"
CDRS_CSV = "cdrs.csv"
EVENTS_JSONL = "events.jsonl"
SUMMARY_JSON = "summary.json"

#: CDR fields the report uses; the others (numbers, countries, ...) are skipped.
_FIELDS = ("org_id", "call_type", "start_time", "end_time", "pool", "pool_s",
           "credits_charged", "end_reason")
#: rows decoded per polars frame: bounds the Python objects alive at once.
_CHUNK_ROWS = 65_536
_NANOS_PER_MS = 1_000_000
_ONE_MS = timedelta(milliseconds=1)
_MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{6}$"
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"

EVENT_KINDS = ("credits_purchased", "recharge_succeeded", "recharge_failed",
               "balance_exhausted", "credits_expired", "pools_refilled")


class ReportError(Exception):
    """The report cannot be made: `path` (an input or the output) and what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Cdrs:
    """CDR columns, one element per call, in file order (end_time, call_id)."""

    org: NDArray[np.int32]  # index into RunData.org_ids
    call_type: NDArray[np.int8]  # index into CALL_TYPE_NAMES
    end_reason: NDArray[np.int8]  # index into END_REASON_NAMES
    start_ms: NDArray[np.int64]  # ms since the run start
    end_ms: NDArray[np.int64]
    pool: NDArray[np.int32]  # index into RunData.pool_names, -1: no pool used
    pool_s: NDArray[np.int64]
    credits_micro: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.start_ms)


@dataclass(frozen=True)
class Events:
    """Ledger events, in file order; amount/balance are 0 where the kind has none."""

    time_ms: NDArray[np.int64]  # ms since the run start
    org: NDArray[np.int32]
    kind: NDArray[np.int8]  # index into EVENT_KINDS
    amount_micro: NDArray[np.int64]
    balance_micro: NDArray[np.int64]

    def of(self, kind: str, org: int | None = None) -> NDArray[np.bool_]:
        """Mask of the events of one kind (and org)."""
        mask = self.kind == EVENT_KINDS.index(kind)
        return mask if org is None else mask & (self.org == org)


@dataclass(frozen=True)
class RunData:
    """One run directory, decoded."""

    out_dir: Path
    summary: dict[str, Any]
    start: datetime  # UTC
    duration_ms: int  # start .. simulated_until
    org_ids: tuple[str, ...]  # summary order (= scenario order)
    pool_names: tuple[str, ...]  # every pool name of any org
    cdrs: Cdrs
    cdr_source: str  # file name the CDRs were read from
    events: Events

    @property
    def currency(self) -> str:
        return str(self.summary["currency"])


def load_run(out_dir: Path) -> RunData:
    """Read summary.json, events.jsonl and the CDRs of `out_dir` (see module docstring)."""
    if not out_dir.is_dir():
        problem = "does not exist" if not out_dir.exists() else "is not a directory"
        raise ReportError(out_dir, f"{problem} (expected the --out directory of a `callsim run`)")
    summary_path = out_dir / SUMMARY_JSON
    summary = _read_summary(summary_path)
    try:
        start = _parse_instant(summary["start"])
        until = _parse_instant(summary["simulated_until"])
        if until < start:
            raise ValueError("simulated_until is before start")
        if not isinstance(summary["currency"], str) or not isinstance(summary["orgs"], dict):
            raise ValueError("currency or orgs of the wrong type")
        for section in [*summary["orgs"].values(), summary["total"]]:
            _check_section(section)
        org_ids = tuple(summary["orgs"])
        pool_names = tuple(dict.fromkeys(
            name for org in summary["orgs"].values() for name in org["pool_s_by_pool"]))
        expected_calls = summary["total"]["calls"]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ReportError(summary_path, f"not a callsim summary ({_describe(err)})") from None
    start_epoch_ms = (start - EPOCH) // _ONE_MS
    cdrs, source = _read_cdrs(out_dir, start_epoch_ms, org_ids, pool_names)
    if len(cdrs) != expected_calls:
        raise ReportError(out_dir / source, f"{len(cdrs)} CDRs but summary.json counts "
                               f"{expected_calls} calls (files from different runs, or truncated?)")
    events = _read_events(out_dir / EVENTS_JSONL, start_epoch_ms, org_ids)
    return RunData(out_dir, summary, start, (until - start) // _ONE_MS, org_ids, pool_names,
                   cdrs, source, events)


# --- summary.json and events.jsonl -----------------------------------------------------------


def _parse_instant(text: str) -> datetime:
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError(f"bad time {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)


def _describe(err: BaseException) -> str:
    if isinstance(err, KeyError):
        return f"no {err.args[0]!r} field"
    return str(err) or type(err).__name__


_COUNT_FIELDS = ("calls", "billed_s", "recharges_succeeded", "recharges_failed")
_MONEY_FIELDS = ("credits_charged", "credits_purchased", "credits_expired", "final_balance")
_COUNT_MAPS = ("calls_by_end_reason", "calls_by_call_type", "pool_s_by_pool")


def _check_section(section: Any) -> None:
    """The fields of an org (or total) section that the report reads, with their types."""
    if not isinstance(section, dict):
        raise ValueError("an org section is not an object")
    for field in _COUNT_FIELDS:
        if type(section[field]) is not int:
            raise ValueError(f"{field} is not a whole number")
    for field in _MONEY_FIELDS:
        try:
            micro(section[field])
        except ValueError as err:
            raise ValueError(f"{field}: {err}") from None
    for field in _COUNT_MAPS + (("pool_remaining_s",) if "pool_remaining_s" in section else ()):
        counts = section[field]
        if not isinstance(counts, dict) or any(type(v) is not int for v in counts.values()):
            raise ValueError(f"{field} is not an object of whole numbers")


def _read_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ReportError(path.parent, f"no {path.name}: not the output directory of a "
                               "finished `callsim run`")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(path, f"cannot read it ({err})") from None
    if not isinstance(summary, dict):
        raise ReportError(path, "not a callsim summary (not a JSON object)")
    return summary


def _read_events(path: Path, start_epoch_ms: int, org_ids: tuple[str, ...]) -> Events:
    """events.jsonl is small (a few events per org and month): plain Python, line by line."""
    org_index = {org: i for i, org in enumerate(org_ids)}
    kind_index = {kind: i for i, kind in enumerate(EVENT_KINDS)}
    rows: list[tuple[int, int, int, int, int]] = []
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    record = json.loads(line)
                    rows.append((
                        _epoch_ms_of(record["time"]) - start_epoch_ms,
                        org_index[record["org_id"]],
                        kind_index[record["event"]],
                        micro(record.get("amount", "0.000000")),
                        micro(record.get("balance", "0.000000")),
                    ))
                except (KeyError, TypeError, ValueError, AttributeError) as err:
                    problem = (f"unknown org or event {err.args[0]!r}" if isinstance(err, KeyError)
                               and err.args[0] not in ("time", "org_id", "event") else _describe(err))
                    raise ReportError(path, f"line {number}: not a callsim event ({problem})") from None
    except FileNotFoundError:
        raise ReportError(path.parent, f"no {path.name}: not the output directory of a "
                               "finished `callsim run`") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(path, f"cannot read it ({err})") from None
    columns = np.array(rows, dtype=np.int64).reshape(-1, 5).T
    return Events(columns[0], columns[1].astype(np.int32), columns[2].astype(np.int8),
                  columns[3], columns[4])


def _epoch_ms_of(text: str) -> int:
    return (_parse_instant(text) - EPOCH) // _ONE_MS


def micro(text: str) -> int:
    """Exact micro-units of a 6-decimal money string (events.jsonl, summary.json)."""
    if not isinstance(text, str):
        raise ValueError(f"bad amount {text!r}")
    whole, _, frac = text.partition(".")
    if len(frac) != 6 or not frac.isdigit():
        raise ValueError(f"bad amount {text!r}")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * MICRO + int(frac))


# --- CDRs ------------------------------------------------------------------------------------


def _read_cdrs(out_dir: Path, start_epoch_ms: int, org_ids: tuple[str, ...],
               pool_names: tuple[str, ...]) -> tuple[Cdrs, str]:
    msgpack_path, csv_path = out_dir / CDRS_MSGPACK, out_dir / CDRS_CSV
    # cdrs.csv first: polars reads a month's 1.1 M rows in ~1 s, where decoding the msgpack
    # stream is per-row Python (~10 s).  The two hold the same CDRs (tests/simulator/outputs/test_outputs.py).
    if csv_path.is_file():
        frame, path = _csv_frame(csv_path), csv_path
    elif msgpack_path.is_file():
        frame, path = _msgpack_frame(msgpack_path), msgpack_path
    else:
        raise ReportError(out_dir, f"no {CDRS_MSGPACK} or {CDRS_CSV}: not the output "
                          "directory of a finished `callsim run`")
    return _columns(frame, path, start_epoch_ms, org_ids, pool_names), path.name


_MSGPACK_SCHEMA = {
    "org_id": pl.String, "call_type": pl.String, "start_time": pl.Int64, "end_time": pl.Int64,
    "pool": pl.String, "pool_s": pl.Int64, "credits_charged": pl.String, "end_reason": pl.String,
}


def _msgpack_frame(path: Path) -> pl.DataFrame:
    """Stream the maps with msgpack.Unpacker (times as int epoch ns), a polars frame per chunk."""
    frames = []
    try:
        with open(path, "rb") as stream, gc_paused():
            unpacker = msgpack.Unpacker(stream, timestamp=2, max_buffer_size=64 << 20)
            while rows := list(itertools.islice(unpacker, _CHUNK_ROWS)):
                if not all(type(row) is dict for row in rows):
                    raise ReportError(path, "not a CDR stream (an element is not a map)")
                frames.append(pl.from_dicts(rows, schema=_MSGPACK_SCHEMA, strict=True))
            consumed, size = unpacker.tell(), path.stat().st_size
    except ReportError:
        raise
    except (msgpack.UnpackException, ValueError, TypeError, pl.exceptions.PolarsError) as err:
        detail = str(err) or "invalid msgpack"
        raise ReportError(path, f"not a CDR stream ({detail})") from None
    except OSError as err:
        raise ReportError(path, f"cannot read it ({err})") from None
    if consumed != size:
        raise ReportError(path, f"truncated: the last record is incomplete at byte {consumed}")
    if not frames:
        return pl.DataFrame(schema=_MSGPACK_SCHEMA)
    frame = pl.concat(frames)
    return frame.with_columns(pl.col("start_time", "end_time") // _NANOS_PER_MS)


def _csv_frame(path: Path) -> pl.DataFrame:
    """cdrs.csv with polars; ISO times parsed to epoch ms."""
    try:
        frame = pl.read_csv(path, columns=list(_FIELDS), schema_overrides={
            field: pl.String for field in _FIELDS if field != "pool_s"} | {"pool_s": pl.Int64})
        return frame.with_columns(
            pl.col(field).str.to_datetime(_ISO_FORMAT, time_unit="ms", time_zone="UTC", strict=True)
            .dt.epoch("ms") for field in ("start_time", "end_time"))
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReportError(path, f"not a callsim cdrs.csv ({first})") from None


def _columns(frame: pl.DataFrame, path: Path, start_epoch_ms: int, org_ids: tuple[str, ...],
             pool_names: tuple[str, ...]) -> Cdrs:
    """Strings -> indexes (polars Enum casts: an unknown name is an error, not a new category)."""
    problems = []
    if frame.select(pl.any_horizontal(pl.col(f).is_null() for f in _FIELDS if f != "pool").any()).item():
        problems.append("a CDR lacks a field the report needs")
    elif not frame["credits_charged"].str.contains(_MONEY_PATTERN).all():
        problems.append("credits_charged is not a 6-decimal amount")
    for field, names in (("org_id", org_ids), ("pool", pool_names),
                         ("call_type", CALL_TYPE_NAMES), ("end_reason", END_REASON_NAMES)):
        unknown = frame.filter(pl.col(field).is_not_null() & ~pl.col(field).is_in(names))[field]
        if len(unknown):
            problems.append(f"{field} {unknown[0]!r} is not in summary.json / known to callsim")
    if problems:
        raise ReportError(path, problems[0])

    def codes(field: str, names: tuple[str, ...]) -> pl.Expr:
        return pl.col(field).cast(pl.Enum(list(names))).to_physical().cast(pl.Int32).fill_null(-1)

    charged = pl.col("credits_charged").str.replace(".", "", literal=True).cast(pl.Int64)
    out = frame.select(
        codes("org_id", org_ids).alias("org"),
        codes("call_type", CALL_TYPE_NAMES).cast(pl.Int8).alias("call_type"),
        codes("end_reason", END_REASON_NAMES).cast(pl.Int8).alias("end_reason"),
        (pl.col("start_time") - start_epoch_ms).alias("start_ms"),
        (pl.col("end_time") - start_epoch_ms).alias("end_ms"),
        codes("pool", pool_names).alias("pool"),
        pl.col("pool_s"),
        charged.alias("credits_micro"),
    )
    return Cdrs(**{name: out[name].to_numpy() for name in out.columns})
