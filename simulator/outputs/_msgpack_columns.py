"""msgpack maps from numpy columns: one record per row, encoded a column at a time.

Why this exists: cdrs.msgpack holds one msgpack map per CDR, and every msgpack
library (msgspec, the fastest, included) encodes Python objects, so each row
first had to become some 17 Python objects: ~3 µs a row, more of the CPU than a
300k calls/s run has for a whole call.  Here each value column becomes a
`Field`, a byte matrix with one row per record plus a mask of the bytes in use,
in a few numpy passes, and `RowJoiner` lays the records out one after another
with a single boolean-mask selection (both in `_byte_columns`, shared with the
CSV); this module holds the msgpack forms of the values.

The bytes are msgspec's, to the byte: the smallest integer form, float 64,
fixstr strings, the Timestamp extension in the 32/64/96-bit form msgspec picks,
and keys and table strings encoded by msgspec itself.  tests/simulator/outputs/test_msgpack_columns.py
checks this against `msgspec.msgpack.encode` on random columns: msgspec stays the
definition of the format, this module is a faster way to the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from ._byte_columns import ByteTable, segmented, Field, RowJoiner, column_view, digits, divmod_by, used, zero_padded

__all__ = [  # Field and RowJoiner too: the writers that pack msgpack take them from here
    "Field",
    "RowJoiner",
    "StringTable",
    "decimals",
    "floats",
    "integers",
    "map_header",
    "prefixed_digits",
    "timestamps",
]

_NIL = 0xC0
_FLOAT64 = 0xCB
_FIXSTR = 0xA0
_FIXSTR_MAX = 31
_TIMESTAMP = 0xFF  # the Timestamp extension's type, -1
_NS_PER_MS = 1_000_000
_MS_PER_S = 1_000
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


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
    column_view(data, 1, 8)[:] = _big_endian(v << np.minimum(8 * (8 - payload), 56), ">i8")
    return Field.of(data, used(9, 1 + payload))


def floats(values: NDArray[np.floating]) -> Field:
    """Floats as float 64, the form msgspec uses for every Python float."""
    data = np.empty((len(values), 9), dtype=np.uint8)
    data[:, 0] = _FLOAT64
    column_view(data, 1, 8)[:] = _big_endian(values, ">f8")
    return Field.of(data)


def timestamps(epoch_ms: NDArray[np.int64]) -> Field:
    """Milliseconds since the Unix epoch as the Timestamp extension, as msgspec encodes a UTC datetime.

    32-bit form for whole seconds in [0, 2**32), 64-bit for the other instants
    in [0, 2**34) s, 96-bit for the rest (before 1970 or from 2514 on).
    """
    seconds, ms = divmod_by(epoch_ms.astype(np.int64, copy=False), _MS_PER_S)
    nanos = ms * _NS_PER_MS
    in_34_bits = (seconds >= 0) & (seconds < 1 << 34)
    form32 = in_34_bits & (nanos == 0) & (seconds < 1 << 32)
    data = np.empty((len(seconds), 15), dtype=np.uint8)
    data[:, 0] = np.where(form32, 0xD6, 0xD7)
    data[:, 1] = _TIMESTAMP
    word = np.where(form32, seconds << 32, (nanos << 34) | seconds)  # the 32-bit form: its 4 bytes lead
    column_view(data, 2, 8)[:] = _big_endian(word, ">i8")
    length = np.where(form32, 6, 10)
    if not in_34_bits.all():
        outside = ~in_34_bits
        data[outside, :3] = (0xC7, 12, _TIMESTAMP)
        column_view(data, 3, 4)[outside] = _big_endian(nanos[outside], ">u4")
        column_view(data, 7, 8)[outside] = _big_endian(seconds[outside], ">i8")
        length[outside] = 15
    return Field.of(data, used(15, length))


class StringTable(ByteTable):
    """Strings (None for nil) packed once by msgspec, then taken by index per row."""

    def __init__(self, texts: Sequence[str | None], extra: Sequence[str | None] = ()) -> None:
        super().__init__(segmented(texts, msgspec.msgpack.encode,
                                   extra=[msgspec.msgpack.encode(t) for t in extra]))


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
    return Field.of(data, used(1 + len(sign), np.where(signed, 1 + len(sign), 1)))


def prefixed_digits(values: NDArray[np.int64], prefix: bytes) -> list[Field]:
    """The text `prefix` + decimal digits of each positive value (a number "+4930..."); nil if not positive."""
    nil = values <= 0
    number, count = digits(np.maximum(values, 0), nil)
    return [_head(_fixstr_header(len(prefix) + count, nil), prefix, ~nil), number]


def decimals(values: NDArray[np.int64], places: int) -> list[bytes | Field]:
    """Integers in units of 10**-places as text with all `places` decimals: 1 -> "0.000001" (places=6)."""
    if len(values) and int(values.min()) == _INT64_MIN:
        raise ValueError("-2**63 has no absolute value in int64")
    negative = values < 0
    whole, fraction = divmod_by(np.abs(values), 10**places)
    whole_digits, count = digits(whole)
    quads = -(-places // 4)
    fraction_digits = column_view(zero_padded(fraction, quads), 4 * quads - places, places)
    header = _fixstr_header(negative + count + 1 + places)
    return [_head(header, b"-", negative), whole_digits, b".", Field(fraction_digits)]
