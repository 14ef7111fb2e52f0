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

import bisect
import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from rating_core import UserGroup

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


class Numbered(Sequence[bytes]):
    """The entries `head` + n in `width` zero-padded digits + `tail`, for n from 1 to `count`:
    a group's member ids (`sales-0001`...), laid out in a `ByteTable` by numpy, not one by one."""

    def __init__(self, head: bytes, width: int, count: int, tail: bytes = b"") -> None:
        self.head, self.width, self.count, self.tail = head, width, count, tail
        self.length = len(head) + width + len(tail)  # of every entry

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k):  # type: ignore[override]
        n = range(1, self.count + 1)[k]
        return self.head + f"{n:0{self.width}d}".encode() + self.tail

    def rows(self) -> NDArray[np.uint8]:
        """Every entry, one row each."""
        out = np.empty((self.count, self.length), dtype=np.uint8)
        out[:, :len(self.head)] = np.frombuffer(self.head, dtype=np.uint8)
        quads = -(-self.width // 4)
        n = np.arange(1, self.count + 1, dtype=np.int64)
        out[:, len(self.head):len(self.head) + self.width] = zero_padded(n, quads)[:, 4 * quads - self.width:]
        out[:, len(self.head) + self.width:] = np.frombuffer(self.tail, dtype=np.uint8)
        return out


class Segmented(Sequence[bytes]):
    """Entries given as segments one after another: lists of entries, and `Numbered` runs."""

    def __init__(self, segments: list[list[bytes] | Numbered]) -> None:
        self.segments = [s for s in segments if len(s)]
        self._starts = [0, *itertools.accumulate(len(s) for s in self.segments)]

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, k):  # type: ignore[override]
        k = range(len(self))[k]
        s = bisect.bisect_right(self._starts, k) - 1
        return self.segments[s][k - self._starts[s]]

    def lengths(self) -> NDArray[np.int64]:
        """The length of every entry."""
        return np.concatenate([np.full(len(s), s.length, dtype=np.int64) if isinstance(s, Numbered)
                               else np.array([len(e) for e in s], dtype=np.int64)
                               for s in self.segments] or [np.zeros(0, dtype=np.int64)])


def segmented(texts: Sequence[str], encode: Callable[[str], bytes], tail: bytes = b"",
              extra: Sequence[bytes] = ()) -> Segmented:
    """`encode(t) + tail` for each text, then the `extra` entries.  `rating_core.UserIds` keeps
    its groups whole (`parts`): a group whose members' entries differ only by their digits (the
    encoders here quote or prefix a text by what it holds and its length, both the same for
    every member: checked on the first, a middle and the last) is one `Numbered` run."""
    parts = getattr(texts, "parts", None)
    if parts is None:
        return Segmented([[encode(t) + tail for t in texts] + list(extra)])
    segments: list[list[bytes] | Numbered] = [[]]
    for part in parts:
        run = _numbered(part, encode, tail) if isinstance(part, UserGroup) else None
        if run is not None:
            segments += [run, []]
        elif isinstance(part, UserGroup):
            segments[-1] += [encode(t) + tail for t in part.ids()]
        else:
            segments[-1].append(encode(part) + tail)
    segments[-1] += list(extra)
    return Segmented(segments)


def _numbered(group: UserGroup, encode: Callable[[str], bytes], tail: bytes) -> Numbered | None:
    first = encode(group.id(0)) + tail
    at = first.rfind(f"{1:0{group.width}d}".encode())
    if at < 0:
        return None
    run = Numbered(first[:at], group.width, group.count, first[at + group.width:])
    checked = {0, group.count // 2, group.count - 1}
    return run if all(run[k] == encode(group.id(k)) + tail for k in checked) else None


class ByteTable:
    """Byte strings encoded once (per run, say), then taken by index per row.

    Each entry is laid out on the left of a field as wide as the longest (or
    `width`, if wider), or on the right (`right`), the padding being out of
    the mask either way.
    """

    def __init__(self, entries: Sequence[bytes], right: bool = False, width: int = 0) -> None:
        segmented = entries if isinstance(entries, Segmented) else Segmented([list(entries)])
        lengths = segmented.lengths()
        width = max(width, int(lengths.max(initial=0)), 1)
        data = np.zeros((len(segmented), width), dtype=np.uint8)
        for segment, first in zip(segmented.segments, segmented._starts):
            if isinstance(segment, Numbered):
                column = width - segment.length if right else 0
                data[first:first + len(segment), column:column + segment.length] = segment.rows()
            else:
                _lay_out(data, segment, lengths, first, right)
        self._entries = segmented
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


def _lay_out(data: NDArray[np.uint8], entries: list[bytes], lengths: NDArray[np.int64], first: int,
             right: bool) -> None:
    """Entries from row `first` on, a block at a time, not one by one (a table of a million
    user ids is normal): byte j of entry i goes to flat place i * width + j, plus the padding
    if `right`."""
    width, flat = data.shape[1], data.reshape(-1)
    for start in range(0, len(entries), _TABLE_BLOCK):
        block = slice(start, start + _TABLE_BLOCK)
        size = lengths[first + start:first + start + len(entries[block])]
        shift = np.arange(first + start, first + start + len(size)) * width - (np.cumsum(size) - size)
        if right:
            shift += width - size
        places = np.arange(int(size.sum())) + np.repeat(shift, size)
        flat[places] = np.frombuffer(b"".join(entries[block]), dtype=np.uint8)


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
