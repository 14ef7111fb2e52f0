"""Records of bytes from numpy columns: a column at a time, then one selection for all rows.

Why this exists: cdrs.csv and cdrs.msgpack hold a million records in a month's
run, and any formatter that works a value at a time in Python costs microseconds
a row, most of the CPU a 300k calls/s run has for a whole call.  Here each
value column becomes a `Field`, a byte matrix with one row per record plus a
mask of the bytes in use, in a few numpy passes (digits from a table of
"0000".."9999", strings from a table encoded once per run), and `RowJoiner`
lays the records out one after another with a single boolean-mask selection.

This module knows nothing of either format: `_msgpack_columns` and
`_csv_columns` build their values' bytes from these pieces.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ENCODE_ROWS",
    "ByteTable",
    "Field",
    "RowJoiner",
    "column_view",
    "digit_counts",
    "digits",
    "divmod_by",
    "fast_width",
    "item_view",
    "unmasked",
    "used",
    "write_zero_padded",
    "zero_padded",
]


#: Rows a formatter encodes at a time.  Each value column becomes a few byte matrices a few
#: times its size (~0.3 KB a CSV row in all), which `RowJoiner` reads back: in pieces of
#: this many rows they are still in the CPU's cache then, where 65,536 rows cost events.jsonl
#: ~70 % and cdrs.csv ~50 % more time a row (tests/simulator/outputs: the bytes do not depend on it).
ENCODE_ROWS = 16_384


# A field's bytes in a row are one numpy item (a void of the field's width): copying or taking
# a column of them is one strided loop, where a 2-D slice of a few bytes a row costs a loop
# call per row (~4x the time).
def item_view(matrix: NDArray) -> NDArray[np.void]:
    """Each row of a C-contiguous 2-D matrix as one void item."""
    return matrix.view(np.dtype((np.void, matrix.shape[1]))).reshape(len(matrix))


def column_view(matrix: NDArray, offset: int, size: int) -> NDArray[np.void]:
    """Columns offset..offset+size of each row as one void item: a writable view."""
    return matrix[:, offset:offset + size].view(np.dtype((np.void, size)))[:, 0]


@dataclass(frozen=True)
class Field:
    """One encoded value per row: row i's bytes are those of `items[i]` where `mask[i]` is set.

    Both are 1-D arrays of void items as wide as the field (`item_view` of a
    byte or bool matrix); no mask means every byte is in use.
    """

    items: NDArray[np.void]
    mask: NDArray[np.void] | None = None

    @classmethod
    def of(cls, data: NDArray[np.uint8], mask: NDArray[np.void] | None = None) -> "Field":
        return cls(item_view(data), mask)

    @property
    def width(self) -> int:
        return self.items.dtype.itemsize


def unmasked(field: Field) -> Field:
    """`field` with no mask when every row uses the same run of its bytes (a money column whose
    values all have as many digits, say): `RowJoiner` then lays records of only such fields
    out as they are, with no mask selection, the costliest step of a record."""
    mask = field.mask
    if mask is None or not len(mask) or not (mask == mask[0]).all():
        return field
    in_use = np.flatnonzero(np.frombuffer(mask[0].tobytes(), dtype=bool))
    first, stop = (int(in_use[0]), int(in_use[-1]) + 1) if len(in_use) else (0, 0)
    if stop - first != len(in_use) or not len(in_use):  # bytes apart, or none: keep the mask
        return field
    matrix = field.items.view(np.uint8).reshape(len(field.items), field.width)
    return Field.of(np.ascontiguousarray(matrix[:, first:stop]))


@functools.cache
def _masks(width: int, right: bool) -> NDArray[np.void]:
    """Item k: the first (or, `right`, the last) k of `width` bytes in use, for k in 0..width."""
    in_use = np.arange(width + 1)[:, None] > np.arange(width)[None, :]
    return item_view(np.ascontiguousarray(in_use[:, ::-1]) if right else in_use)


def used(width: int, count: NDArray[np.integer], right: bool = False) -> NDArray[np.void]:
    """Masks of `width` bytes with the first (`right`: the last) `count[i]` bytes of row i in use."""
    return _masks(width, right).take(count)


class RowJoiner:
    """Joins each row's parts (constant bytes or `Field`s) into records, rows one after another.

    The rows are assembled `rows` at a time in one byte matrix and one mask,
    kept from call to call, whose constant columns (map header, keys,
    separators) are written only when the shape of the parts changes; then one
    mask selection gives the records.  A few thousand rows a pass keep both in
    the CPU's cache; the fields themselves are best encoded in bigger batches,
    where numpy's fixed cost per call vanishes.
    """

    def __init__(self, rows: int = 2048) -> None:
        self._rows = rows
        self._shape: tuple[bytes | tuple[int, bool], ...] = ()
        self._data = np.empty((0, 0), dtype=np.uint8)
        self._mask = np.empty((0, 0), dtype=bool)
        self._slots: list[tuple[NDArray[np.void], NDArray[np.void]]] = []
        self._every_byte = True  # no field has a mask: every byte of the matrix is in use

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
        if self._every_byte:  # records of one width: the rows as they are
            return self._data[:n]
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
                self._slots.append((column_view(self._data, offset, size), column_view(self._mask, offset, size)))
            offset += size
        self._shape = shape
        self._every_byte = not any(isinstance(part, tuple) and part[1] for part in shape)


# numpy copies and takes items of these sizes in its fast loops, ~4x faster than those of any
# other size (a memmove each): a field is cheaper a few bytes wider, on one of these widths.
_FAST_WIDTHS = (1, 2, 4, 8, 16)


def fast_width(width: int) -> int:
    """The narrowest of numpy's fast item sizes that holds `width` bytes; `width` itself past 16."""
    return next((w for w in _FAST_WIDTHS if w >= width), width)


_TABLE_BLOCK = 65_536  # entries a `ByteTable` lays out at a time: bounds its index arrays


class ByteTable:
    """Byte strings encoded once (per run, say), then taken by index per row.

    Each entry is laid out on the left of a field as wide as the longest (or
    `width`, if wider), or on the right (`right`), the padding being out of
    the mask either way.
    """

    def __init__(self, entries: Sequence[bytes], right: bool = False, width: int = 0) -> None:
        lengths = np.array([len(e) for e in entries], dtype=np.int64)
        width = max(width, int(lengths.max(initial=0)), 1)
        data = np.zeros((len(entries), width), dtype=np.uint8)
        # entries a block at a time, not one by one (a table of a million user ids is normal):
        # byte j of entry i goes to flat place i * width + j, plus the padding if `right`
        flat = data.reshape(-1)
        for first in range(0, len(entries), _TABLE_BLOCK):
            block = slice(first, first + _TABLE_BLOCK)
            size = lengths[block]
            shift = np.arange(first, first + len(size)) * width - (np.cumsum(size) - size)
            if right:
                shift += width - size
            places = np.arange(int(size.sum())) + np.repeat(shift, size)
            flat[places] = np.frombuffer(b"".join(entries[block]), dtype=np.uint8)
        self._entries = list(entries)
        self._items = item_view(data)
        self._mask = used(width, lengths, right)

    def take(self, index: NDArray[np.integer]) -> Field:
        """Row i: the entry at `index[i]`; -1 is the last entry, as in numpy."""
        return Field(self._items.take(index), self._mask.take(index))

    def column(self, index: NDArray[np.integer]) -> "bytes | Field":
        """`take`, or the entry itself when every row has the same (one org, one call type in a
        chunk, say): constant bytes cost `RowJoiner` nothing a row, a field a copy and its padding."""
        if len(index) and int(index.min()) == int(index.max()):
            return self._entries[int(index[0])]
        return self.take(index)


@functools.cache
def _digit_quads() -> NDArray[np.void]:
    """"0000".."9999" in ASCII, one four-byte item each."""
    return np.array([f"{i:04d}".encode() for i in range(10_000)], dtype="S4").view(np.dtype((np.void, 4)))


def divmod_by(values: NDArray[np.integer], divisor: int) -> tuple[NDArray[np.integer], NDArray[np.integer]]:
    """`np.divmod(values, divisor)`, floored the same way, in a third of the time: numpy divides
    by a scalar with libdivide in `//`, not in `divmod` (~2 against ~7 ns a value)."""
    quotient = values // divisor
    return quotient, values - quotient * divisor


def write_zero_padded(values: NDArray[np.int64], out: NDArray[np.uint8], offset: int, quads: int) -> None:
    """Write non-negative values below 10**(4*quads) as 4*quads ASCII digits, leading zeros kept,
    into columns offset.. of `out` (one row per value); a larger value is an IndexError."""
    rest = values
    for quad in range(quads - 1, 0, -1):
        rest, last4 = divmod_by(rest, 10_000)
        column_view(out, offset + 4 * quad, 4)[:] = _digit_quads().take(last4)
    column_view(out, offset, 4)[:] = _digit_quads().take(rest)


def zero_padded(values: NDArray[np.int64], quads: int) -> NDArray[np.uint8]:
    """Non-negative values below 10**(4*quads) as 4*quads ASCII digits, leading zeros kept."""
    data = np.empty((len(values), 4 * quads), dtype=np.uint8)
    write_zero_padded(values, data, 0, quads)
    return data


_POWERS_OF_TEN = [10**k for k in range(1, 19)]


def digit_counts(values: NDArray[np.int64]) -> NDArray[np.int8]:
    """How many decimal digits each non-negative value is written with (1 for 0).

    One comparison per power of ten up to the largest value, summed in int8:
    ~5x cheaper than a binary search over all 19 (`np.searchsorted`).
    """
    count = np.ones(len(values), dtype=np.int8)
    largest = int(values.max()) if len(values) else 0
    for power in _POWERS_OF_TEN:
        if power > largest:
            break
        count += values >= power
    return count


def digits(values: NDArray[np.int64], nil: NDArray[np.bool_] | None = None) -> tuple[Field, NDArray[np.int8]]:
    """Decimal digits of non-negative values, no leading zeros, right-aligned in as few
    four-digit groups as the largest value needs; and how many digits each has (0 where `nil`)."""
    count = digit_counts(values)
    quads = -(-int(count.max(initial=1)) // 4)
    if nil is not None:
        count[nil] = 0
    return Field.of(zero_padded(values, quads), used(4 * quads, count, right=True)), count
