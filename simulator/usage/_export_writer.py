"""callsim's CDRs in the Teams admin center PSTN usage export's layout (`--cdr-format teams`).

Why this exists: spreadsheets and Power BI reports built on the admin center's export
(`PSTN.calls.*.csv`) should read a simulated month unchanged, and `callsim import` should
read it back.  The rules of every column are `_vocabulary`'s; this module lays them out a
whole column at a time, as cdrs.csv is (`outputs.csv_columns`, `outputs.RowJoiner`): a
formatter a row at a time would cost a run a third of its speed.

Per run, the strings that depend on a user (UPN, display name, location, object id), on a
country (its name) or on a call type (Call Type, Number Type) are encoded once, and rows
take them by index; the Capability comes from a small table by (the user's licence set,
call type, kind of pool used), filled by `_vocabulary.capability`.

GUIDs are deterministic, so that a scenario and seed give the same bytes: UsageId and
Call ID from the seed and the call id, AAD ObjectId from the seed and the user's index,
each through SplitMix64 (a bijective mix of 64-bit integers: distinct ids, distinct GUIDs)
with a salt per column, laid out as version-4 GUIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, CallType, CdrBatch, RatingSetup, Tables

from ..outputs import ByteTable, Field, RowJoiner, csv_columns, fast_width, used_pool
from ..units import epoch_ms
from ._vocabulary import (
    CALL_TYPE_TO_TEAMS,
    EXPORT_HEADER,
    EXPORTED_END_REASONS,
    capability,
    default_domain,
    destination_dialed,
    domestic_international,
    export_file_name,
    number_type,
    upn,
)

__all__ = ["ExportUser", "TeamsExport", "TeamsExportFile", "guids", "teams_export"]

_ROW_END = b"\r\n"
# Rows encoded at a time: bounds one batch's field matrices (~1 KB a row).
_CHUNK_ROWS = 32_768
_POOL_KINDS = ("domestic", "international", "dial_out", "")  # by the pool name's part before ":"
_SALT_USAGE_ID, _SALT_CALL_ID, _SALT_OBJECT_ID = 0x5553_4147, 0x4341_4C4C, 0x4141_4400


# --- GUIDs --------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
# each byte's two hex digits, one 2-byte item per byte value
_HEX_PAIRS = np.array([f"{b:02x}".encode() for b in range(256)], dtype="S2").view(np.dtype((np.void, 2)))
# a GUID's groups of hex digits (8-4-4-4-12) as (first digit, last digit + 1)
_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


def _splitmix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser, element-wise (uint64 arithmetic wraps, as the algorithm wants)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _scalar_mix(value: int) -> int:
    return int(_splitmix(np.array([value & _MASK64], dtype=np.uint64))[0])


def _guid_digits(seed: int, salt: int, ids: NDArray[np.integer]) -> NDArray[np.uint8]:
    """The 32 hex digits of each id's GUID (see `guids`), one row per id."""
    key = _scalar_mix(seed * 0x9E3779B97F4A7C15 + salt)
    high = _splitmix(ids.astype(np.uint64) + np.uint64(key))
    # the second half from the first and a key of its own (from one key unrelated to `key`)
    low = _splitmix(high ^ np.uint64(_scalar_mix(key ^ 0x632BE59BD9B4E019)))
    raw = np.empty((len(ids), 16), dtype=np.uint8)
    raw[:, :8] = high.astype(">u8").view(np.uint8).reshape(-1, 8)
    raw[:, 8:] = low.astype(">u8").view(np.uint8).reshape(-1, 8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    return _HEX_PAIRS.take(raw).view(np.uint8).reshape(len(ids), 32)


def _lay_out(digits: NDArray[np.uint8], text: NDArray[np.uint8], offset: int) -> None:
    """Write GUIDs' digits into columns offset..offset+36 of `text`, whose dashes are there."""
    for group, (first, last) in enumerate(_GROUPS):
        text[:, offset + first + group:offset + last + group] = digits[:, first:last]


def guids(seed: int, salt: int, ids: NDArray[np.integer]) -> NDArray[np.uint8]:
    """One lowercase version-4 GUID per id, as a (len(ids), 36) matrix of ASCII bytes, from
    the seed, a salt (one per column) and the ids: the same inputs, the same GUIDs."""
    text = np.full((len(ids), 36), ord("-"), dtype=np.uint8)
    _lay_out(_guid_digits(seed, salt, ids), text, 0)
    return text


def _call_guids(seed: int, call_id: NDArray[np.int64]) -> Field:
    """"UsageId,Call ID," of each call: both GUIDs and their commas as one field."""
    text = np.full((len(call_id), 74), ord("-"), dtype=np.uint8)
    text[:, 36] = text[:, 73] = ord(",")
    _lay_out(_guid_digits(seed, _SALT_USAGE_ID, call_id), text, 0)
    _lay_out(_guid_digits(seed, _SALT_CALL_ID, call_id), text, 37)
    return Field.of(text)


# --- the run's tables ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExportUser:
    """What the export shows of one user (global user index order)."""

    org: int
    id: str
    country: str
    licenses: frozenset[str]  # effective (e5 expanded)


@dataclass(frozen=True)
class TeamsExport:
    """The export file of one run (an `outputs.ExtraCdrFile`): where, and what its rows need.

    Picklable: a big run formats it in a worker process (`outputs.CdrWorkers(extra=True)`).
    """

    path: Path
    tables: Tables
    start: datetime
    currency: str
    seed: int
    users: tuple[ExportUser, ...]
    domains: tuple[str, ...]  # per org: the UPNs' domain

    def open(self) -> "TeamsExportFile":
        return TeamsExportFile(self)


def teams_export(setup: RatingSetup, tables: Tables, seed: int, out_dir: Path, label: str) -> TeamsExport:
    """The export of a run of `setup` (whose engine has `tables`) into
    `out_dir`/`export_file_name(label)` (label: the scenario's name); UPNs in each org's
    `default_domain`."""
    users = tuple(ExportUser(org, user.id, user.country, user.effective_licenses) for org, user in setup.users())
    domains = tuple(default_domain(org.id) for org in setup.orgs)
    return TeamsExport(out_dir / export_file_name(label), tables, setup.start, setup.currency, seed, users, domains)


_WHERE = ("domestic", "international", "toll_free")  # Domestic/International: the word of each


def _joined(rows: Sequence[Sequence[str]], fields: int) -> ByteTable:
    """A table whose entry i is row i's fields as CSV, each quoted as it must be and followed
    by ","; index -1 gives `fields` empty ones."""
    entries = [b"".join(csv_columns.quoted(f) + b"," for f in row) for row in rows] + [b"," * fields]
    return ByteTable(entries, False, fast_width(max(map(len, entries))))


class _Lookups:
    """The per-run strings and index tables the rows take from."""

    def __init__(self, export: TeamsExport) -> None:
        tables, users = export.tables, export.users
        self.epoch_ms = epoch_ms(export.start)
        # Neighbouring columns that depend on one index are one table of their joined fields:
        # a row takes one entry instead of several (the joiner's cost grows with the fields).
        # User Location, AAD ObjectId, UPN, User Display Name by user (-1, none: all empty)
        object_ids = guids(export.seed, _SALT_OBJECT_ID, np.arange(len(users), dtype=np.int64))
        self.user = _joined([[u.country, bytes(guid).decode(), upn(u.id, export.domains[u.org]), u.id]
                             for u, guid in zip(users, object_ids)], 4)
        # Call Type, Number Type, Domestic/International by call type x 3 + (domestic,
        # international, neither)
        self.call_kind = _joined([
            [CALL_TYPE_TO_TEAMS.get(name, ""), number_type(name) if name in CALL_TYPE_TO_TEAMS else "", word]
            for name in CALL_TYPE_NAMES for word in (domestic_international(w, "", "") for w in _WHERE)], 3)
        self.destination = csv_columns.TextTable([destination_dialed(c) for c in tables.countries], b",")
        self.currency = b"," + csv_columns.quoted(export.currency) + b","
        # each user's country as an index into tables.countries (-2: none there), then -2 for
        # "no user": a conference dial-out is domestic where the destination's index matches
        country_index = {c: i for i, c in enumerate(tables.countries)}
        self.user_country = np.array([country_index.get(u.country, -2) for u in users] + [-2], dtype=np.int32)
        self.pool_kind = np.array([_POOL_KINDS.index(name.partition(":")[0]) for name in tables.pool_names]
                                  + [_POOL_KINDS.index("")], dtype=np.int8)
        self._capabilities(users)
        self.exported = np.zeros(len(END_REASON_NAMES), dtype=bool)
        self.exported[[END_REASON_NAMES.index(r) for r in EXPORTED_END_REASONS]] = True

    def _capabilities(self, users: Sequence[ExportUser]) -> None:
        """`by_licenses[set, call type, pool kind]` -> index into `capability` (a TextTable),
        over the distinct licence sets (few, whatever the number of users); the last set is
        the none of a toll-free row."""
        sets: dict[frozenset[str], int] = {}
        self.user_set = np.array([sets.setdefault(u.licenses, len(sets)) for u in users] + [len(sets)],
                                 dtype=np.int32)
        names: list[str] = []
        table = np.zeros((len(sets) + 1, len(CALL_TYPE_NAMES), len(_POOL_KINDS)), dtype=np.int16)
        for licenses, index in [*sets.items(), (frozenset(), len(sets))]:
            for t, call_type in enumerate(CALL_TYPE_NAMES):
                for k, pool in enumerate(_POOL_KINDS):
                    name = capability(call_type, pool, licenses)
                    if name not in names:
                        names.append(name)
                    table[index, t, k] = names.index(name)
        self.by_licenses = table
        self.capability = csv_columns.TextTable(names, _ROW_END)


def _parts(batch: CdrBatch, seed: int, lookups: _Lookups) -> list[bytes | Field]:
    """The batch's export rows (exported end reasons only) as `RowJoiner` parts."""
    user, call_type = batch.user, batch.call_type.astype(np.intp)
    where = np.full(len(batch), 2, dtype=np.intp)  # "" (toll-free)
    where[call_type == CallType.DOMESTIC] = 0
    where[call_type == CallType.INTERNATIONAL] = 1
    dial_out = call_type == CallType.CONFERENCE_DIAL_OUT
    where[dial_out] = np.where(batch.country[dial_out] == lookups.user_country[user[dial_out]], 0, 1)
    pool_kind = lookups.pool_kind[used_pool(batch)]
    cap = lookups.by_licenses[lookups.user_set[user], call_type, pool_kind]
    connected_s = (batch.end_ms - batch.start_ms + 500) // 1000  # to the nearest second, half up
    cents = (batch.credits_micro + 5_000) // 10_000  # numeric(16, 2), half a cent up
    return [
        _call_guids(seed, batch.call_id), b",",  # no Conference ID
        lookups.user.take(user),
        csv_columns.prefixed_digits(batch.from_number, b"+"), b",",
        lookups.call_kind.take(call_type * len(_WHERE) + where),
        lookups.destination.take(batch.country),
        csv_columns.prefixed_digits(batch.to_number, b"+"), b",",
        # ":SS.mmm0" keeps the last piece 8 bytes wide (numpy's fast copies), the rest is constant
        *csv_columns.instants(batch.start_ms + lookups.epoch_ms, "0"), b"000Z,",
        *csv_columns.instants(batch.end_ms + lookups.epoch_ms, "0"), b"000Z,",
        csv_columns.integers(connected_s), b",0.00,",
        csv_columns.decimals(cents, 2), lookups.currency,
        lookups.capability.take(cap),
    ]


class TeamsExportFile:
    """The export file, open: the header now, then each batch's connected calls (an
    `outputs.CdrSink`).  Batches come in cdrs.csv's order, and so do the rows."""

    def __init__(self, export: TeamsExport) -> None:
        self._seed = export.seed
        self._lookups = _Lookups(export)
        self._joiner = RowJoiner()
        self._file = open(export.path, "wb")
        self._file.write(EXPORT_HEADER)
        self._file.flush()  # a run stopped before its first batch still leaves the header

    def write(self, batch: CdrBatch) -> None:
        batch = batch.take(self._lookups.exported[batch.end_reason])
        for first in range(0, len(batch), _CHUNK_ROWS):
            chunk = batch.take(slice(first, first + _CHUNK_ROWS))
            self._joiner.write(_parts(chunk, self._seed, self._lookups), self._file)
        self._file.flush()  # a killed run's file ends at a batch, not inside a buffered row

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
