"""msgpack maps from numpy columns: one record per row, encoded a column at a time.

Why this exists: cdrs.msgpack holds one msgpack map per CDR, and every msgpack
library (msgspec, the fastest, included) encodes Python objects, so each row
first had to become some 17 Python objects: ~3 µs a row, more of the CPU than a
300k calls/s run has for a whole call.  Here each value column becomes a
`Field`, a byte matrix with one row per record plus a mask of the bytes in use,
in a few numpy passes, and `RowJoiner` lays the records out one after another
with a single boolean-mask selection.

The bytes are msgspec's, to the byte: the smallest integer form, float 64,
fixstr strings, the Timestamp extension in the 32/64/96-bit form msgspec picks,
and keys and table strings encoded by msgspec itself.  tests/test_msgpack_columns.py
checks this against `msgspec.msgpack.encode` on random columns: msgspec stays the
definition of the format, this module is a faster way to the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import msgspec
import numpy as np
from numpy.typing import NDArray

from rating_core._routing import digit_count

_NIL = 0xC0
_FLOAT64 = 0xCB
_FIXSTR = 0xA0
_FIXSTR_MAX = 31
_TIMESTAMP = 0xFF  # the Timestamp extension's type, -1
_NS_PER_MS = 1_000_000
_MS_PER_S = 1_000
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


# A field's bytes in a row are one numpy item (a void of the field's width): copying or taking
# a column of them is one strided loop, where a 2-D slice of a few bytes a row costs a loop
# call per row (~4x the time).
def _items(matrix: NDArray) -> NDArray[np.void]:
    return matrix.view(np.dtype((np.void, matrix.shape[1]))).reshape(len(matrix))


@dataclass(frozen=True)
class Field:
    """One encoded value per row: row i's bytes are those of `items[i]` where `mask[i]` is set.

    Both are 1-D arrays of void items as wide as the field (`_items` of a
    byte or bool matrix); no mask means every byte is in use.
    """

    items: NDArray[np.void]
    mask: NDArray[np.void] | None = None

    @classmethod
    def of(cls, data: NDArray[np.uint8], mask: NDArray[np.void] | None = None) -> "Field":
        return cls(_items(data), mask)

    @property
    def width(self) -> int:
        return self.items.dtype.itemsize


@functools.cache
def _masks(width: int, right: bool) -> NDArray[np.void]:
    """Item k: the first (or, `right`, the last) k of `width` bytes in use, for k in 0..width."""
    used = np.arange(width + 1)[:, None] > np.arange(width)[None, :]
    return _items(np.ascontiguousarray(used[:, ::-1]) if right else used)


def _used(width: int, count: NDArray[np.integer], right: bool = False) -> NDArray[np.void]:
    return _masks(width, right).take(count)


class RowJoiner:
    """Joins each row's parts (constant bytes or `Field`s) into records, rows one after another.

    The rows are assembled `rows` at a time in one byte matrix and one mask,
    kept from call to call, whose constant columns (map header, keys) are
    written only when the shape of the parts changes; then one mask selection
    gives the records.  A few thousand rows a pass keep both in the CPU's
    cache; the fields themselves are best encoded in bigger batches, where
    numpy's fixed cost per call vanishes.
    """

    def __init__(self, rows: int = 2048) -> None:
        self._rows = rows
        self._shape: tuple[bytes | tuple[int, bool], ...] = ()
        self._data = np.empty((0, 0), dtype=np.uint8)
        self._mask = np.empty((0, 0), dtype=bool)
        self._slots: list[tuple[NDArray[np.void], NDArray[np.void]]] = []

    def write(self, parts: Sequence[bytes | Field], out: BinaryIO) -> None:
        """Write the records to `out`, in row order."""
        fields = [p for p in parts if isinstance(p, Field)]
        if not fields:
            raise ValueError("a record needs a Field: the number of rows comes from it")
        # a field is its width, and whether it has a mask (one without keeps _prepare's all True)
        shape = tuple(p if isinstance(p, bytes) else (p.width, p.mask is not None) for p in parts)
        if shape != self._shape:
            self._prepare(shape)
        n = len(fields[0].items)
        for first in range(0, n, self._rows):
            rows = slice(first, min(first + self._rows, n))
            out.write(self._join(fields, rows))

    def _join(self, fields: list[Field], rows: slice) -> NDArray[np.uint8]:
        n = rows.stop - rows.start
        for (data, mask), field in zip(self._slots, fields):
            data[:n] = field.items[rows]
            if field.mask is not None:
                mask[:n] = field.mask[rows]
        return self._data[:n][self._mask[:n]]

    def _prepare(self, shape: tuple[bytes | tuple[int, bool], ...]) -> None:
        width = sum(len(p) if isinstance(p, bytes) else p[0] for p in shape)
        self._data = np.empty((self._rows, width), dtype=np.uint8)
        self._mask = np.ones((self._rows, width), dtype=bool)
        self._slots, offset = [], 0
        for part in shape:
            size = len(part) if isinstance(part, bytes) else part[0]
            if isinstance(part, bytes):
                self._data[:, offset:offset + size] = np.frombuffer(part, dtype=np.uint8)
            else:
                self._slots.append((_column(self._data, offset, size), _column(self._mask, offset, size)))
            offset += size
        self._shape = shape


def _column(matrix: NDArray, offset: int, size: int) -> NDArray[np.void]:
    """Columns offset..offset+size of each row as one void item: a writable view."""
    return matrix[:, offset:offset + size].view(np.dtype((np.void, size)))[:, 0]


def map_header(size: int) -> bytes:
    """The header of a map of `size` entries, as msgspec writes it: a map's bytes less its entries'."""
    keys = range(size)
    packed = msgspec.msgpack.encode(dict.fromkeys(keys))
    return packed[: len(packed) - sum(len(msgspec.msgpack.encode(k)) + 1 for k in keys)]  # + 1: None


def _big_endian(values: NDArray, dtype: str) -> NDArray[np.void]:
    """Each value's bytes in this (big-endian) dtype, as one void item a row."""
    return values.astype(dtype).view(np.dtype((np.void, np.dtype(dtype).itemsize)))


# (lowest value, header byte, payload bytes) of each integer form, by value; fixint's header is the value
_INT_FORMS = (
    (-(1 << 63), 0xD3, 8), (-(1 << 31), 0xD2, 4), (-(1 << 15), 0xD1, 2), (-(1 << 7), 0xD0, 1),
    (-32, None, 0), (128, 0xCC, 1), (1 << 8, 0xCD, 2), (1 << 16, 0xCE, 4), (1 << 32, 0xCF, 8),
)
_INT_HEADERS = np.array([h or 0 for _, h, _ in _INT_FORMS], dtype=np.uint8)
_INT_PAYLOADS = np.array([w for _, _, w in _INT_FORMS], dtype=np.int64)
_FIXINT = 4


def _count_at_least(values: NDArray[np.int64], floors: Sequence[int]) -> NDArray[np.int8]:
    """How many of `floors` each value reaches (a vectorised bisect over a few floors)."""
    count = np.zeros(len(values), dtype=np.int8)
    for floor in floors:
        count += values >= floor
    return count


def integers(values: NDArray[np.integer]) -> Field:
    """Integers in msgpack's smallest form: fixint, else 8/16/32/64-bit, unsigned unless negative."""
    if values.dtype.kind == "u" and len(values) and int(values.max()) > _INT64_MAX:
        raise ValueError("integers above 2**63 - 1 are not supported")
    v = values.astype(np.int64, copy=False)
    form = _count_at_least(v, [low for low, _, _ in _INT_FORMS[1:]])
    payload = _INT_PAYLOADS[form]
    data = np.empty((len(v), 9), dtype=np.uint8)
    data[:, 0] = np.where(form == _FIXINT, v & 0xFF, _INT_HEADERS[form])
    # shifted so that the payload's bytes lead the big-endian word
    _column(data, 1, 8)[:] = _big_endian(v << np.minimum(8 * (8 - payload), 56), ">i8")
    return Field.of(data, _used(9, 1 + payload))


def floats(values: NDArray[np.floating]) -> Field:
    """Floats as float 64, the form msgspec uses for every Python float."""
    data = np.empty((len(values), 9), dtype=np.uint8)
    data[:, 0] = _FLOAT64
    _column(data, 1, 8)[:] = _big_endian(values, ">f8")
    return Field.of(data)


def timestamps(epoch_ms: NDArray[np.int64]) -> Field:
    """Milliseconds since the Unix epoch as the Timestamp extension, as msgspec encodes a UTC datetime.

    32-bit form for whole seconds in [0, 2**32), 64-bit for the other instants
    in [0, 2**34) s, 96-bit for the rest (before 1970 or from 2514 on).
    """
    seconds, ms = np.divmod(epoch_ms.astype(np.int64, copy=False), _MS_PER_S)
    nanos = ms * _NS_PER_MS
    in_34_bits = (seconds >= 0) & (seconds < 1 << 34)
    form32 = in_34_bits & (nanos == 0) & (seconds < 1 << 32)
    data = np.empty((len(seconds), 15), dtype=np.uint8)
    data[:, 0] = np.where(form32, 0xD6, 0xD7)
    data[:, 1] = _TIMESTAMP
    word = np.where(form32, seconds << 32, (nanos << 34) | seconds)  # the 32-bit form: its 4 bytes lead
    _column(data, 2, 8)[:] = _big_endian(word, ">i8")
    length = np.where(form32, 6, 10)
    if not in_34_bits.all():
        outside = ~in_34_bits
        data[outside, :3] = (0xC7, 12, _TIMESTAMP)
        _column(data, 3, 4)[outside] = _big_endian(nanos[outside], ">u4")
        _column(data, 7, 8)[outside] = _big_endian(seconds[outside], ">i8")
        length[outside] = 15
    return Field.of(data, _used(15, length))


class StringTable:
    """Strings (None for nil) packed once by msgspec, then taken by index per row."""

    def __init__(self, texts: Sequence[str | None]) -> None:
        packed = [msgspec.msgpack.encode(t) for t in texts]
        width = max((len(p) for p in packed), default=1)
        data = np.zeros((len(packed), width), dtype=np.uint8)
        for row, p in zip(data, packed):
            row[: len(p)] = np.frombuffer(p, dtype=np.uint8)
        self._items = _items(data)
        self._mask = _used(width, np.array([len(p) for p in packed], dtype=np.int64))

    def take(self, index: NDArray[np.integer]) -> Field:
        """Row i: the string at `index[i]`; -1 is the last entry, as in numpy."""
        return Field(self._items.take(index), self._mask.take(index))


@functools.cache
def _digit_quads() -> NDArray[np.void]:
    """"0000".."9999" in ASCII, one four-byte item each."""
    return np.array([f"{i:04d}".encode() for i in range(10_000)], dtype="S4").view(np.dtype((np.void, 4)))


def _zero_padded(values: NDArray[np.int64], quads: int) -> NDArray[np.uint8]:
    """Non-negative values below 10**(4*quads) as 4*quads ASCII digits, leading zeros kept."""
    data = np.empty((len(values), 4 * quads), dtype=np.uint8)
    rest = values
    for quad in range(quads - 1, -1, -1):
        rest, last4 = np.divmod(rest, 10_000)
        _column(data, 4 * quad, 4)[:] = _digit_quads().take(last4)
    return data


def _digits(values: NDArray[np.int64], nil: NDArray[np.bool_] | None = None) -> tuple[Field, NDArray[np.int64]]:
    """Decimal digits of non-negative values, no leading zeros, right-aligned in as few
    four-digit groups as the largest value needs; and how many digits each has (0 where `nil`)."""
    count = np.maximum(digit_count(values), 1)  # 0 is written "0"
    places = int(count.max()) if len(count) else 1
    if nil is not None:
        count[nil] = 0
    quads = -(-places // 4)
    return Field.of(_zero_padded(values, quads), _used(4 * quads, count, right=True)), count


def _fixstr_header(length: NDArray[np.integer], nil: NDArray[np.bool_] | None = None) -> NDArray[np.uint8]:
    """The fixstr header of texts of these lengths (nil where `nil`); every text here is < 32 bytes."""
    if len(length) and int(length.max()) > _FIXSTR_MAX:
        raise ValueError(f"a text of {int(length.max())} bytes does not fit a fixstr")
    header = length.astype(np.uint8) | np.uint8(_FIXSTR)
    return header if nil is None else np.where(nil, np.uint8(_NIL), header)


def _head(header: NDArray[np.uint8], sign: bytes, signed: NDArray[np.bool_]) -> Field:
    """A text's header, then `sign` where `signed`."""
    data = np.empty((len(header), 1 + len(sign)), dtype=np.uint8)
    data[:, 0] = header
    data[:, 1:] = np.frombuffer(sign, dtype=np.uint8)
    return Field.of(data, _used(1 + len(sign), np.where(signed, 1 + len(sign), 1)))


def prefixed_digits(values: NDArray[np.int64], prefix: bytes) -> list[Field]:
    """The text `prefix` + decimal digits of each positive value (a number "+4930..."); nil if not positive."""
    nil = values <= 0
    digits, count = _digits(np.maximum(values, 0), nil)
    return [_head(_fixstr_header(len(prefix) + count, nil), prefix, ~nil), digits]


def decimals(values: NDArray[np.int64], places: int) -> list[bytes | Field]:
    """Integers in units of 10**-places as text with all `places` decimals: 1 -> "0.000001" (places=6)."""
    if len(values) and int(values.min()) == _INT64_MIN:
        raise ValueError("-2**63 has no absolute value in int64")
    negative = values < 0
    whole, fraction = np.divmod(np.abs(values), 10**places)
    digits, count = _digits(whole)
    quads = -(-places // 4)
    fraction_digits = _column(_zero_padded(fraction, quads), 4 * quads - places, places)
    header = _fixstr_header(negative + count + 1 + places)
    return [_head(header, b"-", negative), digits, b".", Field(fraction_digits)]
