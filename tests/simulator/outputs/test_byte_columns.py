"""The format-free pieces under cdrs.csv and cdrs.msgpack: digit counts, division, digit text, tables.

The encoders' own tests (test_csv_columns.py, test_msgpack_columns.py) check whole
values; these pin the shortcuts taken for speed against the obvious way.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import User, UserGroup, UserIds, Users
from simulator.outputs._byte_columns import ByteTable, Field, RowJoiner, digit_counts, divmod_by, unmasked, zero_padded
from simulator.outputs._csv_columns import TextTable
from simulator.outputs._msgpack_columns import StringTable

INT64_MAX = 2**63 - 1
TEN_POWERS = [10**k + d for k in range(19) for d in (-1, 0, 1) if 0 <= 10**k + d <= INT64_MAX]


@given(st.lists(st.one_of(st.integers(0, INT64_MAX), st.sampled_from(TEN_POWERS + [0, INT64_MAX])), max_size=40))
def test_digit_counts_are_the_length_of_str(values: list[int]) -> None:
    assert digit_counts(np.array(values, dtype=np.int64)).tolist() == [len(str(v)) for v in values]


@given(st.lists(st.integers(-(2**62), 2**62), max_size=40), st.sampled_from([1, 7, 1_000, 10_000, 60_000, 86_400_000]))
def test_divmod_by_floors_as_divmod_does(values: list[int], divisor: int) -> None:
    quotient, rest = divmod_by(np.array(values, dtype=np.int64), divisor)
    assert list(zip(quotient.tolist(), rest.tolist())) == [divmod(v, divisor) for v in values]


@given(st.lists(st.integers(0, 10**12 - 1), max_size=40))
def test_zero_padded_keeps_leading_zeros(values: list[int]) -> None:
    text = zero_padded(np.array(values, dtype=np.int64), 3).tobytes().decode()
    assert text == "".join(f"{v:012d}" for v in values)


def test_zero_padded_refuses_a_value_too_long_for_its_groups() -> None:
    with pytest.raises(IndexError):
        zero_padded(np.array([5, 10**8], dtype=np.int64), 2)


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=6), st.booleans(), st.integers(0, 24), st.data())
def test_byte_tables_give_each_row_its_entry_whatever_the_layout(entries: list[bytes], right: bool, width: int,
                                                                 data: st.DataObject) -> None:
    index = data.draw(st.lists(st.integers(-len(entries), len(entries) - 1), min_size=1, max_size=20))
    out = io.BytesIO()
    RowJoiner(3).write([b"|", ByteTable(entries, right, width).take(np.array(index))], out)
    assert out.getvalue() == b"".join(b"|" + entries[i] for i in index)


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=6), st.booleans(), st.data())
def test_a_byte_table_column_of_one_entry_is_that_entry(entries: list[bytes], right: bool,
                                                        data: st.DataObject) -> None:
    # the rows of one org (one user, one call type...) in a chunk: the entry as constant bytes,
    # the same records as the rows taken one by one
    i = data.draw(st.integers(-len(entries), len(entries) - 1))
    rows = data.draw(st.integers(1, 9))
    index = np.full(rows, i)
    table = ByteTable(entries, right)
    assert table.column(index) == entries[i]
    joined, taken = io.BytesIO(), io.BytesIO()
    number = Field.of(np.full((rows, 1), ord("7"), dtype=np.uint8))  # a record needs a Field
    RowJoiner(4).write([table.column(index), number], joined)
    RowJoiner(4).write([table.take(index), number], taken)
    assert joined.getvalue() == taken.getvalue() == (entries[i] + b"7") * rows
    mixed = np.array([0, len(entries) - 1, 0])
    if len(entries) > 1:
        assert isinstance(table.column(mixed), Field)


def _joined(parts: list) -> bytes:
    out = io.BytesIO()
    RowJoiner(rows=3).write(parts, out)
    return out.getvalue()


@given(st.lists(st.binary(min_size=0, max_size=5), min_size=1, max_size=12), st.booleans(), st.booleans())
def test_unmasked_fields_join_into_the_same_records(entries: list[bytes], right: bool, same: bool) -> None:
    """Entries of one length lose their mask (and their padding); any other mix keeps it; the
    records are the same bytes either way, with or without the joiner's selection."""
    if same:
        entries = [e.ljust(3, b"x")[:3] for e in entries]
    table = ByteTable(entries, right=right, width=6)
    field = table.take(np.arange(len(entries)))
    plain = unmasked(field)
    one_length = len({len(e) for e in entries}) == 1 and entries[0] != b""
    assert (plain.mask is None) == one_length
    if one_length:
        assert plain.width == len(entries[0])
    records = b"".join(b"<" + e + b">\n" for e in entries)
    assert _joined([b"<", plain, b">\n"]) == _joined([b"<", field, b">\n"]) == records
    # beside a masked field: the joiner still selects, with the unmasked one in it
    assert _joined([b"<", plain, b"|", field, b">\n"]) == b"".join(b"<" + e + b"|" + e + b">\n" for e in entries)


def test_unmasked_keeps_the_mask_of_bytes_apart_and_of_none() -> None:
    data = np.frombuffer(b"a-b" * 4, dtype=np.uint8).reshape(4, 3).copy()
    apart = Field.of(data, Field.of(np.tile(np.array([True, False, True]), (4, 1))).items)
    assert unmasked(apart) is apart
    none = Field.of(data, Field.of(np.zeros((4, 3), dtype=bool)).items)
    assert unmasked(none) is none
    empty = Field.of(data[:0], Field.of(np.zeros((0, 3), dtype=bool)).items)
    assert unmasked(empty) is empty


@pytest.mark.parametrize("right", [False, True])
def test_a_table_of_many_blocks_of_entries_lays_each_out_in_its_row(right: bool) -> None:
    """A million user ids are laid out a block at a time: entries across block edges too."""
    entries = [str(i * 7919 % 100_003).encode() * (1 + i % 3) for i in range(140_000)]
    index = np.array([0, 65_535, 65_536, 65_537, 131_071, 131_072, 139_999, -1, 77])
    out = io.BytesIO()
    RowJoiner(3).write([b"|", ByteTable(entries, right, 4).take(index)], out)
    assert out.getvalue() == b"".join(b"|" + entries[i] for i in index)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(["bob", "a,b", 'q"x', "ünï"]),
    st.tuples(st.sampled_from(["g", "a,b", 'q"t', "ünï", "x" * 40]), st.integers(1, 30),
              st.integers(4, 6))), min_size=1, max_size=5), st.booleans())
def test_user_id_tables_with_groups_kept_whole_hold_every_id(parts: list, right: bool) -> None:
    """`UserIds` lays its groups out as `Numbered` runs: the same entries, CSV and msgpack, as
    the ids one by one (names that need quotes, non-ASCII, 32 bytes and longer too)."""
    users = [User(p, "US", frozenset()) if isinstance(p, str) else
             UserGroup(p[0], p[1], max(p[2], len(str(p[1]))), "US", frozenset()) for p in parts]
    ids = UserIds([Users(users)])
    plain = tuple(ids)
    index = np.arange(-1, len(plain))
    for whole, one_by_one in [(TextTable(ids, b",", right), TextTable(plain, b",", right)),
                              (StringTable(ids, extra=[None]), StringTable(list(plain) + [None]))]:
        assert _joined([b"<", whole.take(index), b">"]) == _joined([b"<", one_by_one.take(index), b">"])
        assert [whole.column(np.array([k])) for k in index] == [
            one_by_one.column(np.array([k])) for k in index]
